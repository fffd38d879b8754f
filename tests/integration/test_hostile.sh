#!/usr/bin/env bash
# Hostile input against a real silod and real namespace sandboxes: malformed
# HTTP and JSON, path traversal in the file API, symlink tricks from the guest
# (a guest symlink to a host path is never followed on the host: not by
# uploads, downloads, nor by cleanup), and a guest flooding output at a client
# that does not read (silod memory stays bounded, the guest process is held
# back, nothing is lost).
# Every case: a clear error, silod still serving, no fd leak, no escape, and a
# clean exit with no sanitizer report. TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT

# ASan keeps freed memory in a quarantine (256 MiB by default), which would hide
# what silod itself holds: keep it small so RSS measures silod's own bound.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
start_daemon || { notok "silod starts"; exit 1; }
fds() { ls "/proc/$DPID/fd" | wc -l; }
alive() { [ "$(api GET /v1/health | jget 'j.get("status","")')" = ok ]; }
raw() { # raw BYTES(python literal) -> the status line silod answers (or "closed")
	python3 - "$SOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
try:
    s.sendall(eval(sys.argv[2]))
    s.shutdown(socket.SHUT_WR)
    d = b""
    while True:
        b = s.recv(65536)
        if not b: break
        d += b
    print(d.split(b"\r\n")[0].decode(errors="replace") if d else "closed")
except (ConnectionResetError, BrokenPipeError):
    print("closed")
PY
}
fd0=$(fds)

# ---------------------------------------------------------------- malformed HTTP
# bad_http NAME WANT_ERE BYTES(python literal): the status line silod answers the raw request
# with ("closed" if it hangs up) matches WANT_ERE
bad_http() { local r; r=$(raw "$3"); if [[ $r =~ $2 ]]; then ok "$1 ($r)"; else notok "$1 ($r)" "wanted: $2"; fi; }
bad_http "binary garbage request line: 400 or closed" '400|^closed$' 'b"\x00\xff\xfe garbage\r\n\r\n"'
bad_http "1 MiB header: refused (431/413/400 or closed)" '(431|413|400)|^closed$' \
	'b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"'
r=$(raw 'b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"provider\":"')
check "truncated body (client closes early): no answer needed, silod survives" alive
bad_http "bad chunk size: 400 or closed" '400|^closed$' \
	'b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\nabc\r\n0\r\n\r\n"'
bad_http "unknown method: 4xx" ' 4[0-9][0-9] ' 'b"BREW /v1/sandboxes HTTP/1.1\r\nHost: x\r\n\r\n"'
bad_http "5000-byte sandbox id: 4xx" ' 4[0-9][0-9] ' 'b"GET /v1/sandboxes/" + b"A" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"'
bad_http "encoded traversal in the id: 4xx" ' 4[0-9][0-9] ' 'b"GET /v1/sandboxes/..%2F..%2Fetc HTTP/1.1\r\nHost: x\r\n\r\n"'
check "silod still serves after malformed HTTP" alive

# ---------------------------------------------------------------- malformed JSON
# bad_json NAME STATUS_ERE [GREP ARGS...]: POST $TMP/bad.json as a create; the status matches
# STATUS_ERE and, with GREP ARGS, the body matches them
bad_json() {
	local name=$1 want=$2 b; shift 2
	b=$(api POST /v1/sandboxes -H 'Content-Type: application/json' --data-binary @"$TMP/bad.json")
	if [[ $(status) =~ ^($want)$ ]] && { [ $# = 0 ] || grep -q "$@" <<<"$b"; }; then
		ok "$name"
	else
		notok "$name" "status $(status), body: ${b:0:300}" "wanted: $want $*"
	fi
}
python3 -c 'print("[" * 200000 + "]" * 200000)' > "$TMP/bad.json"
bad_json "200000-deep JSON nesting: 400 INVALID_CONFIG" 400 INVALID_CONFIG
printf '{"provider":"namespace","name":"\xff\xfe"}' > "$TMP/bad.json"
bad_json "invalid UTF-8: 400 naming the byte offset or position" 400 -iE 'utf|position|column'
printf '{"provider":"namespace","vcpus":1e999}' > "$TMP/bad.json"
bad_json "number overflow: 400" 400
printf '{"provider":"namespace","vcpus":-1}' > "$TMP/bad.json"
bad_json "negative vcpus: 400 naming vcpus" 400 vcpus
printf '{"provider":"namespace","name":"a\\u0000b"}' > "$TMP/bad.json"
bad_json "NUL inside a JSON string: 400" 400
printf '{"provider":"namespace","provider":"qemu"}' > "$TMP/bad.json"
bad_json "duplicate keys: 400 (not last-one-wins)" 400
printf '[1,2,3]' > "$TMP/bad.json"
bad_json "a non-object body: 400" 400
head -c 3000000 /dev/zero | tr '\0' ' ' > "$TMP/bad.json"
bad_json "3 MB body: 413 or 400 with a clear error" '413|400'
check "silod still serves after malformed JSON" alive

namespace_available || { trap 'echo "1..$N"; cleanup' EXIT; notok "namespace provider available (needed for the guest cases)"; exit 1; }
A=$(create_ns hostile)
check "sandbox created" test -n "$A"
RA=$(api GET "/v1/sandboxes/$A" | jget 'j.get("rundir","")')
run() { exec_json "$A" "$(python3 -c 'import json,sys; print(json.dumps({"argv":sys.argv[1:]}))' "$@")" | ndjson_out; }

# ---------------------------------------------------------------- path traversal
HOSTDIR="$TMP/hostonly"   # exists on the host, not in the guest
mkdir -p "$HOSTDIR"; echo "host secret" > "$HOSTDIR/secret"
echo "payload" > "$TMP/payload"
esc="/tmp/../../../../../../..$HOSTDIR/escaped"
api PUT "/v1/sandboxes/$A/files?path=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))' "$esc")" \
	--data-binary @"$TMP/payload" > /dev/null
check "upload to /tmp/../../..$HOSTDIR/escaped never reaches the host" test ! -e "$HOSTDIR/escaped"
b=$(api GET "/v1/sandboxes/$A/files?path=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))' "/../../..$HOSTDIR/secret")")
check "download of /../../..$HOSTDIR/secret does not return the host file" bash -c "test $(status) -ge 400 && ! grep -q 'host secret' <<<'$b'"
b=$(api GET "/v1/sandboxes/$A/files?path=relative/x")
check "relative path: 400 naming path" bash -c "test $(status) = 400 && grep -q path <<<'$b'"
b=$(api GET "/v1/sandboxes/$A/files")
check "missing path: 400" test "$(status)" = 400
b=$(api GET "/v1/sandboxes/$A/files?path=/etc/hostname%00/../../x")
check "%00 inside path: 400 naming path (not silently truncated)" bash -c "test $(status) = 400 && grep -q path <<<'$b'"
b=$(api GET "/v1/sandboxes/$A/files?path=/$(head -c 5000 /dev/zero | tr '\0' a)")
check "5000-byte path: 400" test "$(status)" = 400

# ---------------------------------------------------------------- symlink tricks from the guest
out=$(run sh -c "ln -s $HOSTDIR /etc/hostlink && ln -s $HOSTDIR/secret /etc/secretlink && ln -s / /etc/rootlink && echo made")
check "guest made symlinks pointing at host paths" test "$out" = "made||0"
api PUT "/v1/sandboxes/$A/files?path=/etc/hostlink/planted" --data-binary @"$TMP/payload" > /dev/null
check "upload through a guest symlink to a host dir does not write on the host" test ! -e "$HOSTDIR/planted"
b=$(api GET "/v1/sandboxes/$A/files?path=/etc/secretlink")
check "download through a guest symlink to a host file does not return it" bash -c "! grep -q 'host secret' <<<'$b'"
b=$(api GET "/v1/sandboxes/$A/files?path=/etc/rootlink$HOSTDIR/secret")
check "download through a guest symlink to / resolves in the guest, not the host" bash -c "! grep -q 'host secret' <<<'$b'"
# the guest's writable layer is its own filesystem, never under the run dir
# (lib/providers/ns-disk.c): no tree the cleanup removes holds its symlinks
check "the guest's symlinks are not in the run dir (its writable layer is not on the host's tree)" \
	test -d "$RA" -a -z "$(find "$RA" -name hostlink 2>/dev/null | head -1)"

# ---------------------------------------------------------------- a guest flooding output at a client that does not read
exec_client "$A" 12 sh -c "head -c 104857600 /dev/zero" > "$TMP/flood.out" &
FPID=$!
base=$(awk '/VmRSS/ {print $2}' "/proc/$DPID/status")
peak=0
for _ in $(seq 1 26); do
	r=$(awk '/VmRSS/ {print $2}' "/proc/$DPID/status")
	[ "$r" -gt "$peak" ] && peak=$r
	sleep 0.5
done
wait $FPID
echo "# silod RSS before the flood $((base / 1024)) MiB, peak during it $((peak / 1024)) MiB"
check "silod RSS grows by < 64 MiB while a guest floods 100 MiB at a non-reading client" test $((peak - base)) -lt 65536
echo "# flood client: $(cat "$TMP/flood.out")"
check "then every byte arrives (104857600) and the exit line says 0" grep -q '^104857600 [0-9a-f]* {"exit_code":0' "$TMP/flood.out"
check "silod still serves after the flood" alive

d=$(api DELETE "/v1/sandboxes/$A?grace_ms=0")
check "delete after the symlink tricks: host clean" bash -c "test $(status) = 200"
check "cleanup did not follow the guest's symlinks: the host files survive" test -f "$HOSTDIR/secret"
check "no file escaped to the host at any point" test ! -e "$HOSTDIR/escaped" -a ! -e "$HOSTDIR/planted"
sleep 0.3
fd1=$(fds)
check "no fd leak in silod across all hostile requests ($fd0 -> $fd1)" test "$fd1" -le $((fd0 + 2))
stop_daemon
check_clean_exit "silod exits cleanly, no sanitizer report"
exit $((FAILED > 0))
