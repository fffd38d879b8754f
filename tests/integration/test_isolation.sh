#!/usr/bin/env bash
# Isolation properties, tested rather than assumed (docs/policy.md): through a
# real silod, for the namespace provider and (when it can run here) qemu:
#   - no network: inside, no interface is up but lo and there is no route; a
#     listener on the host (every host IPv4 address) is unreachable, and the
#     listener sees no connection (a control connection from the host proves
#     it was listening);
#   - no shared filesystem: a file written in one sandbox (through the file
#     API and by a process, in /tmp and in the root layer) is invisible in
#     another; changing the shared read-only base layer from inside changes
#     nothing on the host or in the other sandbox; host files are not visible.
. "$(dirname "$0")/silod-lib.sh"

start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; [ -n "${LPID:-}" ] && kill $LPID 2>/dev/null; cleanup' EXIT

# A TCP listener on every host address that records each connection.
PORT=$((20000 + RANDOM % 20000))
python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c,a=s.accept()
    with open(sys.argv[2],"a") as f: f.write("%s\n" % a[0])
    c.close()' "$PORT" "$TMP/conns" &
LPID=$!
for _ in $(seq 1 50); do python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$PORT" 2>/dev/null && break; sleep 0.1; done
HOST_IPS=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | tr '\n' ' ')
check "control: the host listener accepts a connection from the host" test "$(wc -l < "$TMP/conns" 2>/dev/null)" = 1
run_in() { exec_json "$1" "$(python3 -c 'import json,sys; print(json.dumps({"argv":["sh","-c",sys.argv[1]],"cwd":"/"}))' "$2")" | ndjson_out; }

isolation_suite() { # isolation_suite PROVIDER ID_A ID_B
	local P=$1 A=$2 B=$3 r
	# -- network
	r=$(run_in "$A" 'for i in /sys/class/net/*; do n=${i##*/}; [ "$n" = lo ] && continue; [ "$(cat $i/operstate)" = down ] || [ "$(cat $i/carrier 2>/dev/null)" != 1 ] && continue; echo "$n"; done')
	check "$P: no interface but lo is up with a carrier (${r%%|*})" test "$r" = "||0"
	r=$(run_in "$A" 'cat /proc/net/route | tail -n +2 | wc -l; cat /proc/net/ipv6_route 2>/dev/null | grep -v " lo$" | wc -l')
	check "$P: no IPv4 or IPv6 route" test "$(echo "$r" | tr '\n' ' ')" = "0 0||0 "
	local tries="127.0.0.1 $HOST_IPS 10.0.2.2"
	r=$(run_in "$A" "command -v nc > /dev/null && command -v wget > /dev/null || echo no-nc-or-wget; for h in $tries; do if nc -w 2 \$h $PORT < /dev/null; then echo \"reached \$h\"; fi; done 2>/dev/null; wget -q -T 2 -O /dev/null http://${HOST_IPS%% *}:$PORT/ 2>/dev/null && echo reached-http; true")
	check "$P: connecting to the host listener fails ($tries)" test "$r" = "||0"
	check "$P: the host listener saw no connection from the sandbox" test "$(wc -l < "$TMP/conns")" = 1
	# -- filesystem
	echo "secret-$P" > "$TMP/secret"
	api PUT "/v1/sandboxes/$A/files?path=/tmp/secret-api" --data-binary @"$TMP/secret" > /dev/null
	r=$(run_in "$A" 'echo x > /tmp/secret-proc && echo y > /root/secret-root && echo z > /secret-top && cat /tmp/secret-api')
	check "$P: sandbox A wrote its files" test "$r" = "secret-$P||0"
	r=$(run_in "$B" 'for f in /tmp/secret-api /tmp/secret-proc /root/secret-root /secret-top; do [ -e $f ] && echo "$f"; done; true')
	check "$P: none of them is visible in sandbox B" test "$r" = "||0"
	api GET "/v1/sandboxes/$B/files?path=/tmp/secret-api" > /dev/null
	check "$P: the file API of B does not find A's file" test "$(status)" -ge 400
	# -- the host
	HM="host-marker-$RANDOM$RANDOM"
	touch "/tmp/$HM" "/root/$HM" 2>/dev/null
	r=$(run_in "$A" "for f in /tmp/$HM /root/$HM $SILO_STATE_DIR/registry.db $SILO_RUNTIME_DIR/silod.sock /etc/debian_version /usr/bin/python3 /var/lib/dpkg; do [ -e \$f ] && echo \"\$f\"; done; true")
	rm -f "/tmp/$HM" "/root/$HM"
	check "$P: host files (markers, silod state, Debian files) are not visible" test "$r" = "||0"
	# -- the shared read-only base: A replaces /bin/busybox (last: A's shell is gone after it)
	r=$(run_in "$A" 'sha256sum /bin/busybox | cut -c1-64')
	bb=${r%%|*}
	echo corrupt > "$TMP/corrupt"
	api PUT "/v1/sandboxes/$A/files?path=/bin/busybox" --data-binary @"$TMP/corrupt" > /dev/null
	check "$P: A replaced its /bin/busybox" test "$(status)" = 200 -a "$(api GET "/v1/sandboxes/$A/files?path=/bin/busybox")" = corrupt
	r=$(run_in "$B" 'sha256sum /bin/busybox | cut -c1-64')
	check "$P: B's /bin/busybox is unchanged" test "${r%%|*}" = "$bb" -a ${#bb} = 64
}

NA=$(create_ns iso-a 128)
NB=$(create_ns iso-b 128)
check "namespace: two sandboxes" test -n "$NA" -a -n "$NB"
isolation_suite namespace "$NA" "$NB"
r=$(run_in "$NB" "cat /proc/1/cmdline | tr '\\0' ' '")
check "namespace: PID 1 is the sandbox's agent, not the host's init" test -n "$(echo "$r" | grep -F 'silo-agent --init')"
r=$(run_in "$NB" 'ls /proc | grep -c "^[0-9]"')
check "namespace: only the sandbox's own processes are visible (${r%%|*})" test "${r%%|*}" -lt 10
bad=
for f in "${SILO_CACHE_DIR:-$HOME/.cache/silo}"/ns-rootfs/*/bin/busybox; do cmp -s "$f" "$(command -v busybox)" || bad="$bad $f"; done
check "namespace: the host's copy of the base layer is unchanged" test -z "$bad"
api DELETE "/v1/sandboxes/$NA?grace_ms=0" > /dev/null
api DELETE "/v1/sandboxes/$NB?grace_ms=0" > /dev/null

qemu_ok=$(api GET /v1/providers | jget '[p for p in j["providers"] if p["name"]=="qemu"][0]["available"]')
if [ "$qemu_ok" = True ] || [ "$qemu_ok" = true ]; then
	mkq() { api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d "{\"provider\":\"qemu\",\"name\":\"$1\",\"vcpus\":1,\"memory_mb\":256}" | jget 'j.get("id","")'; }
	QA=$(mkq iso-qa)
	QB=$(mkq iso-qb)
	if [ -n "$QA" ] && [ -n "$QB" ]; then
		ok "qemu: two VMs"
		isolation_suite qemu "$QA" "$QB"
	else
		notok "qemu: two VMs" "$(cat "$TMP/body")"
	fi
	for id in $QA $QB; do api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null; done
else
	N=$((N + 1)); echo "ok $N - qemu isolation # SKIP qemu provider unavailable"
fi

ALL=$(sandbox_ids all)
check "nothing is live at the end" test "$(live_count)" = 0
check_nothing_left "no cgroup or run directory is left" $ALL
stop_daemon
check_clean_exit "silod exits cleanly"
