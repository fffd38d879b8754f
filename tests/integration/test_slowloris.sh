#!/usr/bin/env bash
# Slowloris on silod's TCP listener (issue 21; daemon/api_guard.h, docs/security.md).
# A real silod with small limits: --header-timeout-s 2, --max-connections 40
# (so at most 20 unauthenticated), --max-connections-per-ip 8. Each attack is
# performed from its own 127.x.y.z address (all of 127.0.0.0/8 is loopback);
# clients use 127.0.0.1. Then a short run of bench/slowloris (200 slow
# connections, 3 clients doing create/exec/delete) must see no client error.
. "$(dirname "$0")/silod-lib.sh"

TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$TMP/token"
start_daemon --listen 127.0.0.1:0 --token-file "$TMP/token" --header-timeout-s 2 --max-connections 40 \
	--max-connections-per-ip 8 --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 4000 ||
	{ notok "silod starts"; echo "1..$N"; exit 1; }
trap 'echo "1..$N"; cleanup' EXIT
PORT=$(sed -n 's/.* and 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/silod.log" | head -1)
check "silod reports the TCP port it bound for --listen 127.0.0.1:0 ($PORT)" test -n "$PORT" -a "${PORT:-0}" != 0

authed() { # authed: an authenticated request from 127.0.0.1 on a fresh connection -> HTTP status
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/health"
}
guard() { api GET /v1/health | jget "j['tcp_connections']['$1']"; }

# Attacks, in Python on raw sockets: attack NAME [args] prints one result line.
attack() {
	python3 - "$PORT" "$@" <<'EOF'
import os, socket, sys, time
port, what = int(sys.argv[1]), sys.argv[2]
def conn(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s
def closed(s, wait):
    s.settimeout(wait)
    try:
        return s.recv(4096) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
if what == "trickle-head":        # one header byte every 200 ms, never the end of the head
    s = conn("127.0.2.1"); t0 = time.time(); sent = 0
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10000
    while time.time() - t0 < 10:
        try:
            s.send(head[sent:sent + 1]); sent += 1
        except OSError:
            break
        if closed(s, 0.2):
            break
    print("%.2f %d" % (time.time() - t0, sent))
elif what == "trickle-body":      # a complete head without a token, then the body byte by byte
    s = conn("127.0.2.2"); t0 = time.time(); sent = 0; reply = b""
    s.send(b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    while time.time() - t0 < 10:
        s.settimeout(0.2)
        try:
            d = s.recv(4096)
            if not d:
                break
            reply += d
        except socket.timeout:
            pass
        except OSError:
            break
        try:
            s.send(b"{"); sent += 1
        except OSError:
            break
    print("%.2f %d %s" % (time.time() - t0, sent, reply.split(b"\r\n")[0].decode().replace(" ", "_") or "-"))
elif what == "401-closes":
    s = conn("127.0.2.3")
    s.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5); data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    first = data.split(b"\r\n")[0].decode()
    print("%s|%s" % (first, "closed" if b"connection: close" in data.lower() else "open"))
elif what == "per-ip":            # 12 idle connections from one address: the cap is 8
    socks = [conn("127.0.3.1") for _ in range(12)]
    time.sleep(0.5)
    print(sum(1 for s in socks if closed(s, 0.05)))
elif what == "flood":             # 60 half-open connections from 30 addresses (2 each, under the cap)
    socks = []
    for i in range(60):
        socks.append(conn("127.0.4.%d" % (1 + i // 2)))
        socks[-1].send(b"GET /v1/health HTTP/1.1\r\n")
        time.sleep(0.005)
    open(sys.argv[3] + ".ready", "w").close()
    while not os.path.exists(sys.argv[3] + ".go"):   # held until the test has made its requests
        time.sleep(0.05)
    print(sum(1 for s in socks if closed(s, 0.01)))
elif what == "full":              # 40 authenticated keep-alive connections fill --max-connections 40
    tok = sys.argv[3].encode(); socks = []
    for i in range(40):
        s = conn("127.0.5.%d" % (1 + i // 8))
        s.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\n\r\n")
        s.settimeout(5); s.recv(65536); socks.append(s)
    extra = conn("127.0.5.9")
    print("refused" if closed(extra, 1.0) else "accepted")
elif what == "authed-idle":       # an authenticated keep-alive connection idles past the deadline
    s = conn("127.0.0.1"); tok = sys.argv[3].encode()
    req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\n\r\n"
    s.send(req); s.settimeout(5); first = s.recv(65536)
    time.sleep(3.5)
    s.send(req); second = s.recv(65536)
    print(first.split(b"\r\n")[0].decode(), "|", second.split(b"\r\n")[0].decode())
EOF
}

# -- the header deadline is a total deadline, not an idle timeout
read -r secs bytes <<< "$(attack trickle-head)"
check "a client trickling a header byte every 200 ms is dropped at the 2 s deadline (after ${secs}s, $bytes bytes)" \
	python3 -c "import sys; sys.exit(0 if 1.8 <= $secs <= 3.5 and $bytes >= 8 else 1)"
read -r secs bytes first <<< "$(attack trickle-body)"
check "an unauthenticated request with a body is answered 401 at its head and closed, its body unread (after ${secs}s: $first)" \
	bash -c "test '$first' = HTTP/1.1_401_Unauthorized && python3 -c 'import sys; sys.exit(0 if $secs < 1.5 else 1)'"
check "the server counted the trickled head as a header timeout" test "$(guard header_timeouts)" -ge 1
r=$(attack 401-closes)
check "401 without a token, and the connection is closed after it ($r)" test "$r" = "HTTP/1.1 401 Unauthorized|closed"
r=$(attack authed-idle "$TOKEN")
check "an authenticated keep-alive connection is not held to the deadline ($r)" \
	test "$r" = "HTTP/1.1 200 OK | HTTP/1.1 200 OK"

# -- per-address cap
r=$(attack per-ip)
check "12 connections from one address: the 4 beyond --max-connections-per-ip 8 are closed at once ($r)" test "$r" = 4

# -- a flood of half-open connections from many addresses
attack flood "$TMP/flood" > "$TMP/flood.out" &
FLOOD=$!
for _ in $(seq 1 200); do [ -e "$TMP/flood.ready" ] && break; sleep 0.05; done
ok_n=0
for _ in $(seq 1 10); do [ "$(authed)" = 200 ] && ok_n=$((ok_n + 1)); done
check "during the flood, 10 of 10 authenticated requests succeed ($ok_n)" test "$ok_n" = 10
check "the unix socket is served during the flood" test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	--unix-socket "$SOCK" http://silod/v1/health)" = 200
unauth=$(guard unauthenticated); evicted=$(guard evicted)
check "no more than 20 unauthenticated connections were held ($unauth); old ones made room ($evicted evicted)" \
	test "$unauth" -le 20 -a "$evicted" -ge 40
touch "$TMP/flood.go"
wait "$FLOOD"
dropped=$(cat "$TMP/flood.out")
check "the attacker saw its connections dropped ($dropped of 60)" test "${dropped:-0}" -ge 40

# -- the total cap: only when no unauthenticated connection is left to drop is a new one refused
r=$(attack full "$TOKEN")
check "with 40 authenticated connections open (--max-connections 40), a 41st is refused ($r)" test "$r" = refused
check "... and counted" test "$(guard refused)" -ge 1
for _ in $(seq 1 50); do [ "$(guard open)" -lt 40 ] && break; sleep 0.1; done   # their threads wind down
check "once they are closed, clients are served again" test "$(authed)" = 200

# -- the benchmark, short: 200 slow connections while 3 clients create/exec/delete
if namespace_available; then
	out=$(timeout 600 "$BUILD/bench/slowloris" --slow 200 --clients 3 --cycles 3 --baseline-cycles 1 --addrs 20 \
		--silod "$SILOD" --silod-arg --header-timeout-s --silod-arg 3 --silod-arg --max-connections \
		--silod-arg 256 2> "$TMP/bench.err")
	rc=$?
	check "bench/slowloris (200 slow connections, 3 clients): exit 0, no client error" \
		python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["client_errors"]==0 and j["sandboxes_left"]==0
assert j["server"]["evicted"] > 0 and j["attacker"]["max_open"] >= 128, j["server"]' "$out"
	[ $rc = 0 ] || echo "$out" | tail -30 | sed 's/^/# /'
else
	N=$((N + 1)); echo "ok $N - bench/slowloris # SKIP namespace provider unavailable"
fi
stop_daemon
check_clean_exit "silod exits cleanly after the attacks (no sanitizer report)"
