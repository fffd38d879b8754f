#!/usr/bin/env bash
# Red-team regression (docs/security.md "Red-team pass 2"). Request bodies of
# PUT .../files and PUT /v1/bundles/SHA are spooled to a memfd (RAM); before
# the fix the body was read before the token's scope was checked. The attack:
# any valid token, even one that may only list, opens connections that send
# the head of a large upload and then most of its body, and holds them (an
# authenticated connection is never held to the header deadline): before the
# fix 6 connections held 1.5 GB of host RAM (Shmem) with the default
# --max-upload-mb 256, and 64 per address are allowed. What must hold:
#   1. a request the token may not make is refused (403 POLICY_DENIED,
#      audited) when its head arrives: silod reads and buffers none of its body;
#   2. what silod holds of request bodies in total is bounded
#      (--max-upload-total-mb): uploads beyond it are refused when their head
#      arrives (409 RESOURCE_EXCEEDED) rather than held in memory.
# TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"

TF=$TMP/tokens.toml
LISTER=$("$SILO" token create --file "$TF" --name lister --operations list)
WRITER=$("$SILO" token create --file "$TF" --name writer --operations create,file_write,inspect,list,delete)
PORT=
spool_bytes() { # the bytes of silod's upload spools (memfds) now
	local t=0 f
	for f in /proc/"$DPID"/fd/*; do
		[[ $(readlink "$f" 2>/dev/null) == *silod-upload* ]] && t=$((t + $(stat -L -c %s "$f" 2>/dev/null || echo 0)))
	done
	echo $t
}
start_tcp() {
	start_daemon --listen 127.0.0.1:0 --tokens-file "$TF" --max-upload-mb 16 --error-threshold 4000 "$@" || return 1
	PORT=$(sed -n 's/.* and 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/silod.log" | tail -1)
}
# held TOKEN URL CONNS MIB SECONDS: CONNS connections each send the head of a
# PUT of 16 MiB and then MIB MiB of it (stopping early if silod answers), hold
# them, and print "<sum of silod's upload memfds in bytes> <answers seen>
# <their HTTP statuses, sorted, comma-separated, or ->" measured while held.
held() {
	python3 - "$PORT" "$1" "$2" "$3" "$4" "$DPID" "$5" <<'PY'
import os, socket, sys, time
port, tok, url, conns, mib, pid, hold = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7])
socks, answered, codes = [], 0, []
def status(s):
    try:
        head = s.recv(64, socket.MSG_PEEK)
        codes.append(head.split(b" ")[1].decode())
    except (OSError, IndexError):
        codes.append("reset")
for i in range(conns):
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.sendall(("PUT %s%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n"
               "Content-Type: application/octet-stream\r\n\r\n" % (url, i, tok, 16 << 20)).encode())
    s.settimeout(0.05)
    for j in range(mib):
        try:
            if s.recv(1, socket.MSG_PEEK):
                answered += 1
                status(s)
                break
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            answered += 1
            break
        try:
            s.sendall(b"z" * (1 << 20))
        except OSError:
            answered += 1
            break
    socks.append(s)
time.sleep(hold)
total = 0
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        if "silod-upload" in os.readlink("/proc/%s/fd/%s" % (pid, fd)):
            total += os.stat("/proc/%s/fd/%s" % (pid, fd)).st_size
    except OSError:
        pass
print(total, answered, ",".join(sorted(set(codes))) or "-")
PY
}

start_tcp || { notok "silod starts"; echo "1..$N"; exit 1; }
trap 'echo "1..$N"; cleanup' EXIT
SHA=$(printf 'a%.0s' $(seq 64))
read -r bytes answers codes < <(held "$LISTER" "/v1/bundles/$SHA?x=" 4 15 1)
check "a token that may not upload bundles: nothing buffered for it (held $bytes bytes)" test "$bytes" -lt $((1 << 20))
check "... each of its 4 uploads was answered 403 before its body was sent ($answers answered: $codes)" \
	test "$answers:$codes" = 4:403
denials() { grep -c "\"actor\":\"token:lister\".*\"event\":\"policy-denied\"\|\"event\":\"policy-denied\".*\"actor\":\"token:lister\"" \
	"$SILO_STATE_DIR/audit.jsonl"; }
check "... and each denial is audited ($(denials) records)" test "$(denials)" -ge 4
id=
if namespace_available; then
	id=$(create_ns holdme)
fi
if [ -n "$id" ]; then
	read -r bytes answers codes < <(held "$LISTER" "/v1/sandboxes/$id/files?path=/tmp/f" 4 15 1)
	check "a token without file_write: nothing buffered for its file uploads (held $bytes bytes)" \
		test "$bytes" -lt $((1 << 20))
	check "... each was answered 403 before its body ($answers answered: $codes)" test "$answers:$codes" = 4:403
	check "... and audited ($(denials) records in all)" test "$(denials)" -ge 8
else
	for _ in 1 2 3; do ok "# SKIP namespace provider unavailable: file uploads not exercised"; done
fi
stop_daemon

# 2. A token allowed to upload: the total silod holds is bounded.
start_tcp --max-upload-total-mb 32 || { notok "silod starts with --max-upload-total-mb 32"; exit 1; }
if namespace_available; then
	id=$(create_ns holdme2)
	held "$WRITER" "/v1/sandboxes/$id/files?path=/tmp/f" 6 15 4 > "$TMP/held.out" &
	hp=$!
	for _ in $(seq 1 150); do [ "$(spool_bytes)" -ge $((30 << 20)) ] && break; sleep 0.1; done
	# meanwhile, a chunked upload (no length declared) is held to the budget as it comes
	head -c $((15 << 20)) /dev/zero > "$TMP/f15"
	upload() { curl -s -o "$TMP/body" -w '%{http_code}' -X PUT -H "Authorization: Bearer $WRITER" \
		-H 'Content-Type: application/octet-stream' --data-binary @"$TMP/f15" "$@"; }
	code=$(upload -H 'Transfer-Encoding: chunked' "http://127.0.0.1:$PORT/v1/sandboxes/$id/files?path=/tmp/h")
	check "a chunked upload beyond the budget is refused as its bytes come ($code)" \
		bash -c "test $code = 409 && grep -q RESOURCE_EXCEEDED '$TMP/body'"
	wait $hp
	read -r bytes answers codes < "$TMP/held.out"
	check "6 uploads of 15 MiB held open by a writer: silod holds at most 32 MiB ($bytes bytes)" \
		test "$bytes" -le $((32 << 20))
	check "... the 4 beyond the budget were answered 409 before their bodies ($answers answered: $codes)" \
		test "$answers:$codes" = 4:409
	check "silod still answers" bash -c "curl -s --unix-socket '$SOCK' http://silod/v1/health | grep -q ok"
	code=$(upload "http://127.0.0.1:$PORT/v1/sandboxes/$id/files?path=/tmp/g")
	check "the held connections closed: their share came back, a 15 MiB upload passes ($code)" test "$code" = 200
else
	for _ in 1 2 3 4 5; do ok "# SKIP namespace provider unavailable"; done
fi
stop_daemon
check_clean_exit "silod exits cleanly"
