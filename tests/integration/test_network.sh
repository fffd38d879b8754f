#!/usr/bin/env bash
# Sandbox networking (docs/network.md), performed as an attacker would, on
# this machine only: the whole test runs in a network namespace of its own
# (unshare -n) whose only way out is a veth pair into nothing, with the
# addresses the attacks aim at (a host address, a private range, the cloud
# metadata address 169.254.169.254) on it, and "trap" listeners there that
# record every connection that would have got through. Nothing leaves this
# machine even if the enforcement were broken: the test would see it in the
# traps and fail.
#
#   - an allowed name (from --egress-hosts) is fetched; another name is
#     refused at DNS (NXDOMAIN) and a denied connection fails at once;
#   - every always-denied class: silod's own API port (via the gateway that
#     maps the host's loopback), another host loopback port, a host address,
#     a private address, 169.254.169.254, and a name the host resolves to
#     loopback (DNS rebinding); each denial counted, audited with its rule and
#     published as an event;
#   - port forwarding to a server in the sandbox (TCP and unix socket);
#   - the same on qemu, and pip install from a local index in the python image.
set -u
if [ -z "${SILO_NET_TEST_NS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs root (network namespaces, namespace provider)"; exit 0; fi
	for b in passt pasta; do
		command -v $b > /dev/null || { echo "1..0 # SKIP $b not installed (Debian package passt)"; exit 0; }
	done
	exec env SILO_NET_TEST_NS=1 unshare -n bash "$0" "$@"
fi
. "$(dirname "$0")/silod-lib.sh"

# ---- this test's own little internet ----
ip link set lo up
ip link add nt0 type veth peer name nt1
ip addr add 10.99.0.1/24 dev nt0            # the gateway side (private)
ip addr add 203.0.114.9/32 dev nt0          # "a public address of the host" (never routed off this namespace)
ip addr add 192.168.77.1/24 dev nt0         # a private range
ip addr add 169.254.169.254/32 dev nt0      # cloud metadata
ip link set nt0 up
ip link set nt1 up
ip route add default via 10.99.0.2 dev nt0  # a default route (the stack wants one) into nothing

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# trap ADDR PORT: a listener that records every connection in $TMP/trap.ADDR.PORT
trap_listener() {
	python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
open(sys.argv[3],"w").close()
while True:
    c,a=s.accept()
    with open(sys.argv[3],"a") as f: f.write("%s\n" % a[0])
    c.close()' "$1" "$2" "$TMP/trap.$1.$2" &
	PIDS="$PIDS $!"
}
trapped() { [ -s "$TMP/trap.$1.$2" ]; }   # did a connection reach the trap?

PIDS=
TP=$(free_port)
trap_listener 169.254.169.254 80
trap_listener 192.168.77.1 "$TP"
trap_listener 203.0.114.9 "$TP"
LP=$(free_port)
trap_listener 127.0.0.1 "$LP"              # a host loopback port nobody allowed

# the files and the package index, served on the host's loopback
HP=$(free_port)
mkdir -p "$TMP/www/simple/silo-probe"
echo "hello from files.test" > "$TMP/www/x"
python3 - "$TMP/www" <<'PY'
import base64, hashlib, sys, zipfile
root = sys.argv[1]
name = "silo_probe-1.0-py3-none-any.whl"
files = {"silo_probe/__init__.py": b"MARK = 'installed from files.test'\n",
         "silo_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: silo-probe\nVersion: 1.0\n",
         "silo_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: silo-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = []
for p, d in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    rec.append("%s,sha256=%s,%d" % (p, h, len(d)))
rec.append("silo_probe-1.0.dist-info/RECORD,,")
files["silo_probe-1.0.dist-info/RECORD"] = ("\n".join(rec) + "\n").encode()
with zipfile.ZipFile("%s/simple/silo-probe/%s" % (root, name), "w") as z:
    for p, d in files.items():
        z.writestr(p, d)
with open("%s/simple/silo-probe/index.html" % root, "w") as f:
    f.write('<html><body><a href="%s">%s</a></body></html>\n' % (name, name))
with open("%s/simple/index.html" % root, "w") as f:
    f.write('<html><body><a href="silo-probe/">silo-probe</a></body></html>\n')
PY
(cd "$TMP/www" && exec python3 -m http.server "$HP" --bind 127.0.0.1 > /dev/null 2>&1) &
PIDS="$PIDS $!"
printf '127.0.0.1 files.test other.test\n' > "$TMP/hosts"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HP/x" > /dev/null && break; sleep 0.1; done
for f in "169.254.169.254.80" "192.168.77.1.$TP" "203.0.114.9.$TP" "127.0.0.1.$LP"; do
	for _ in $(seq 1 50); do [ -e "$TMP/trap.$f" ] && break; sleep 0.1; done
done
trap 'echo "1..$N"; for p in $PIDS; do kill $p 2>/dev/null; done; cleanup' EXIT

# silo run output helpers: $R = stdout, $E = stderr, $RC, $T = seconds
srun() {
	local t0; t0=$(date +%s.%N)
	R=$("$SILO" run "$@" 2> "$TMP/err"); RC=$?
	E=$(cat "$TMP/err")
	T=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")
}
fast() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$T" "$1"; }

embedded_suite() { # embedded_suite PROVIDER [boot limit s]
	local P=$1 lim=$2
	srun --provider "$P" --egress "files.test:$HP" --egress-hosts "$TMP/hosts" -- wget -qO- "http://files.test:$HP/x"
	check "$P: silo run fetches http://files.test:$HP/x through an allowed name (rc $RC: $E)" \
		test "$RC $R" = "0 hello from files.test"
	srun --provider "$P" --egress "files.test:$HP" --egress-hosts "$TMP/hosts" -- \
		sh -c "nslookup other.test 127.0.0.1; echo nslookup=\$?; wget -qO- http://other.test:$HP/x; echo wget=\$?"
	check "$P: DNS of a name no entry allows is NXDOMAIN" eval 'echo "$R" | grep -q "NXDOMAIN" && echo "$R" | grep -q "nslookup=1"'
	check "$P: fetching it fails" eval 'echo "$R" | grep -q "wget=1"'
	check "$P: the denial is told on stderr with the reason" \
		eval 'echo "$E" | grep -q "egress denied: dns other.test: no egress entry allows the name"'
	srun --provider "$P" --egress "files.test:$HP" --egress-hosts "$TMP/hosts" -- \
		sh -c "wget -qO- http://10.0.2.2:$LP/; echo wget=\$?"
	check "$P: a denied connection fails at once, not after a timeout (${T}s for boot + attempt)" \
		eval 'echo "$R" | grep -q "wget=1" && fast '"$lim"
	# (no name was resolved in this sandbox: nothing binds the gateway's loopback to an entry)
	if echo "$E" | grep -qF "egress denied: connect 127.0.0.1:$LP: 127.0.0.1 is a loopback address; only an IP/CIDR entry naming it allows it"; then
		ok "$P: ... and is reported with the reason"
	else
		notok "$P: ... and is reported with the reason" "stderr: $E"
	fi
	check "$P: ... and nothing reached the host's loopback port" eval '! trapped 127.0.0.1 $LP'
	srun --provider "$P" -- sh -c 'ls /sys/class/net'
	check "$P: without --network the sandbox has no eth0 ($(echo $R))" eval '! echo "$R" | grep -q eth0'
}

# ---------------- embedded (no silod), per provider that runs here ----------------
runs_here() { # runs_here PROVIDER: 0 if silo run works with it (else a skip line)
	"$SILO" run --provider "$1" -- true 2> "$TMP/perr" && return 0
	ok "# SKIP $1 unavailable: $(head -c 200 "$TMP/perr")"
	return 1
}
NS_OK=; Q_OK=
runs_here namespace && NS_OK=1 && embedded_suite namespace 30   # busybox wget waits 900 s for a dropped SYN: 30 s is "at once" even on a loaded host
runs_here qemu && Q_OK=1 && embedded_suite qemu 60

# ---------------- through silod: the always-denied classes ----------------
export SILO_API_TOKEN=net-test-token-0123456789abcdef
silod_port() { sed -n 's/.*listening on .* and 127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/silod.log" | tail -1; }
start_daemon --listen 127.0.0.1:0 --egress-hosts "$TMP/hosts" --error-threshold 1000 \
	--max-sandboxes 8 --capacity-memory-mb 8192 || { notok "silod starts"; exit 1; }
SP=$(silod_port)
check "silod listens on TCP (port $SP)" test -n "$SP"
curl -sN --unix-socket "$SOCK" "http://silod/v1/events" > "$TMP/events" 2>/dev/null &
PIDS="$PIDS $!"

run_in() { exec_json "$1" "$(python3 -c 'import json,sys; print(json.dumps({"argv":["sh","-c",sys.argv[1]],"cwd":"/"}))' "$2")" | ndjson_out; }

attack_suite() { # attack_suite PROVIDER ID
	local P=$1 ID=$2 r
	r=$(run_in "$ID" "wget -qO- http://files.test:$HP/x")
	check "$P/silod: the allowed name works ($r)" test "$r" = "hello from files.test||0"
	# each attack: a connection that must fail fast and reach nothing
	local a dest trapaddr
	for a in "10.0.2.2 $SP silod" "10.0.2.2 $LP lo" "203.0.114.9 $TP host" "192.168.77.1 $TP private" \
		 "169.254.169.254 80 metadata"; do
		set -- $a
		r=$(run_in "$ID" "t0=\$(date +%s); nc -w 10 $1 $2 </dev/null; echo rc=\$?; echo s=\$(( \$(date +%s) - t0 ))")
		check "$P/silod: connect to $1:$2 ($3) is refused at once (${r//$'\n'/ })" \
			eval 'echo "$r" | grep -Eq "s=[0-2]\b"'
	done
	check "$P/silod: nothing reached 169.254.169.254:80" eval '! trapped 169.254.169.254 80'
	check "$P/silod: nothing reached the private address" eval '! trapped 192.168.77.1 $TP'
	check "$P/silod: nothing reached the host's address" eval '! trapped 203.0.114.9 $TP'
	check "$P/silod: nothing reached the host's loopback" eval '! trapped 127.0.0.1 $LP'
	# DNS rebinding: "localhost" is allowed by name, the host resolves it to 127.0.0.1
	r=$(run_in "$ID" "nslookup localhost 127.0.0.1; echo ns=\$?")
	check "$P/silod: a name the host resolves to loopback gets NXDOMAIN" eval 'echo "$r" | grep -q "ns=1"'
	r=$(run_in "$ID" "nslookup other.test 127.0.0.1 >/dev/null 2>&1; echo ns=\$?")
	check "$P/silod: a name no entry allows gets NXDOMAIN" test "$r" = "ns=1||0"
	sleep 0.5   # denial records travel asynchronously
	python3 - "$SILO_STATE_DIR/audit.jsonl" "$ID" "$SP" "$LP" "$TP" > "$TMP/audit.check" <<'PY'
import json, sys
path, sid, sp, lp, tp = sys.argv[1:]
recs = [json.loads(l) for l in open(path)]
d = [r["details"] for r in recs if r["event"] == "egress-denied" and r["sandbox_id"] == sid]
want = {"127.0.0.1:%s" % sp: "silod's own API port", "127.0.0.1:%s" % lp: "not allowed by the entry",
        "203.0.114.9:%s" % tp: "address of the host", "192.168.77.1:%s" % tp: "private",
        "169.254.169.254:80": "link-local", "localhost": "resolves to a loopback address",
        "other.test": "no egress entry allows the name"}
for dest, why in want.items():
    hit = [x for x in d if x["destination"] == dest and why in x["reason"]]
    print(dest, "ok" if hit else "missing", hit[0]["rule"] if hit else "")
PY
	check "$P/silod: every denial is audited with destination, reason and rule" eval '! grep -q missing "$TMP/audit.check"'
	grep missing "$TMP/audit.check" | sed 's/^/# /'
	check "$P/silod: the closest rule is recorded (127.0.0.1:$LP: files.test:$HP)" \
		grep -q "^127.0.0.1:$LP ok files.test:$HP" "$TMP/audit.check"
}

# issue 15's "done when", verbatim, with silod up (silo run goes through it): the
# allowed name prints the file, the other name fails and its denial is audited
done_when() { # done_when PROVIDER
	local P=$1 before
	srun --provider "$P" --network --egress "files.test:$HP" -- wget -qO- "http://files.test:$HP/x"
	check "$P/silod: silo run --network --egress files.test:$HP -- wget prints the file (rc $RC: $E)" \
		test "$RC $R" = "0 hello from files.test"
	before=$(grep -c '"destination":"other.test"' "$SILO_STATE_DIR/audit.jsonl")
	srun --provider "$P" --network --egress "files.test:$HP" -- wget -qO- "http://other.test:$HP/x"
	check "$P/silod: ... http://other.test:$HP/x fails (rc $RC)" test "$RC" != 0 -a -z "$R"
	sleep 0.5   # denial records travel asynchronously
	check "$P/silod: ... and the denial of other.test is audited" \
		test "$(grep -c '"destination":"other.test"' "$SILO_STATE_DIR/audit.jsonl")" -gt "$before"
}

NET_SPEC() { # NET_SPEC PROVIDER NAME [IMAGE]
	python3 -c 'import json,sys
b={"provider":sys.argv[1],"name":sys.argv[2],"vcpus":1,"memory_mb":512,"network":True,
   "egress":["files.test:%s" % sys.argv[3], "localhost"]}
if len(sys.argv) > 4: b["image"]=sys.argv[4]
print(json.dumps(b))' "$@"
}

if [ -n "$NS_OK" ]; then
	ID=$(api POST /v1/sandboxes -H 'Content-Type: application/json' -d "$(NET_SPEC namespace net-ns "$HP")" | jget 'j.get("id","")')
	check "namespace/silod: a sandbox with network and an allow-list is created ($(cat "$TMP/body" | head -c 300))" test -n "$ID"
	[ -n "$ID" ] && attack_suite namespace "$ID"
	done_when namespace
	m=$(curl -s --unix-socket "$SOCK" http://silod/metrics | sed -n 's/^silo_egress_denials_total \([0-9]*\)/\1/p')
	check "denials are counted in silo_egress_denials_total ($m)" test "${m:-0}" -ge 7
	check "denials are published as egress-denied events" grep -q '"type":"egress-denied"' "$TMP/events"
	# an egress entry that is not one
	api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d '{"provider":"namespace","name":"bad","network":true,"egress":["[::1]:80"]}' > /dev/null
	expect_error "an IPv6 egress entry is refused naming the field" 400 INVALID_CONFIG "network.egress[0]" "IPv6"
	api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d '{"provider":"namespace","name":"bad","network":true,"egress":["a.*.com"]}' > /dev/null
	expect_error "a malformed wildcard is refused naming the field" 400 INVALID_CONFIG "network.egress[0]"
	# kill -9 of silod: the sandbox's network lives on; the next silod takes it over
	if [ -n "$ID" ]; then
		kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
		check "after kill -9 of silod, the sandbox's silo-net is still there" eval 'pgrep -f "silo-net --id $ID" > /dev/null'
		start_daemon --listen 127.0.0.1:0 --egress-hosts "$TMP/hosts" --error-threshold 1000 \
			--max-sandboxes 8 --capacity-memory-mb 8192 || notok "silod restarts"
		SP=$(silod_port)
		r=$(run_in "$ID" "wget -qO- http://files.test:$HP/x")
		check "after the restart the sandbox resolves and fetches again ($r)" test "$r" = "hello from files.test||0"
		run_in "$ID" "nslookup after.restart 127.0.0.1 >/dev/null 2>&1" > /dev/null
		sleep 0.5
		check "... and its denials reach the new silod's audit log" \
			grep -q '"destination":"after.restart"' "$SILO_STATE_DIR/audit.jsonl"
	fi
	[ -n "$ID" ] && api DELETE "/v1/sandboxes/$ID?grace_ms=0" > /dev/null
	check "namespace/silod: after delete no silo-net or stack process of the sandbox is left" \
		eval '! pgrep -f "silo-$ID" > /dev/null'

	# ---------------- port forwarding ----------------
	PF=$(api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d '{"provider":"namespace","name":"pf","vcpus":1,"memory_mb":256}' | jget 'j.get("id","")')
	r=$(run_in "$PF" 'mkdir -p /tmp/www && echo "served from inside" > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www && echo up')
	check "port forward: a server runs in the sandbox (no network at all)" test "$r" = "up||0"
	A=$("$SILO" port "$PF" 8080 2> "$TMP/err")
	check "silo port ID 8080 prints a loopback address ($A $(cat "$TMP/err"))" eval 'echo "$A" | grep -Eq "^127\.0\.0\.1:[0-9]+$"'
	check "... which reaches the sandbox's server" test "$(curl -s --max-time 10 "http://$A/")" = "served from inside"
	U="$TMP/pf.sock"
	"$SILO" port "$PF" 8080 --unix "$U" > /dev/null 2> "$TMP/err"
	check "silo port ID 8080 --unix PATH serves on a unix socket" \
		test "$(curl -s --max-time 10 --unix-socket "$U" http://x/)" = "served from inside"
	check "the unix socket is mode 0600" test "$(stat -c %a "$U")" = 600
	"$SILO" port "$PF" > "$TMP/ports"
	check "silo port ID lists both forwards" test "$(grep -c '^8080 -> ' "$TMP/ports")" = 2
	B=$("$SILO" port "$PF" 9090)
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$B/")
	check "a forward to a port nobody listens on resets the client at once (curl: $code)" test "$code" = 000
	"$SILO" port "$PF" 8080 --rm > /dev/null
	check "silo port ID 8080 --rm closes the listeners" eval '! curl -s --max-time 3 "http://$A/" > /dev/null && ! [ -e "$U" ]'
	"$SILO" port "$PF" 8080 --listen 203.0.114.9:0 > /dev/null 2> "$TMP/err"
	check "a forward may only listen on loopback" grep -q "not a loopback address" "$TMP/err"
	C=$("$SILO" port "$PF" 8080)
	api DELETE "/v1/sandboxes/$PF?grace_ms=0" > /dev/null
	check "deleting the sandbox closes its forwards" eval '! curl -s --max-time 3 "http://$C/" > /dev/null'
	grep -q '"event":"port-forward"' "$SILO_STATE_DIR/audit.jsonl"
	check "forwards are audited" test $? = 0
	# through create
	CR=$("$SILO" create --provider namespace --name pf2 --publish 8080 2> "$TMP/err")
	check "silo create --publish 8080 tells the forward ($(cat "$TMP/err"))" grep -Eq "port 8080 -> 127.0.0.1:[0-9]+" "$TMP/err"
	[ -n "$CR" ] && api DELETE "/v1/sandboxes/$CR?grace_ms=0" > /dev/null
fi

# ---------------- qemu ----------------
if [ -n "$Q_OK" ]; then
	ID=$(api POST /v1/sandboxes -H 'Content-Type: application/json' -d "$(NET_SPEC qemu net-q "$HP")" | jget 'j.get("id","")')
	check "qemu/silod: a VM with network and an allow-list is created ($(head -c 300 "$TMP/body"))" test -n "$ID"
	[ -n "$ID" ] && attack_suite qemu "$ID"
	done_when qemu
	[ -n "$ID" ] && api DELETE "/v1/sandboxes/$ID?grace_ms=0" > /dev/null
	# pip install of a wheel from the local index, in the python image
	srun --provider qemu --image python --egress "files.test:$HP" -- sh -c \
		"python3 -m pip install --disable-pip-version-check --no-cache-dir --break-system-packages -q \
		 --trusted-host files.test --index-url http://files.test:$HP/simple silo-probe && python3 -c 'import silo_probe; print(silo_probe.MARK)'"
	check "qemu: pip install from a local index through an allowed name (rc $RC, ${T}s: $(echo "$E" | tail -3 | tr '\n' ' '))" \
		test "$R" = "installed from files.test"
	srun --provider qemu --image python --egress "files.test:$HP" -- sh -c \
		"python3 -m pip install --disable-pip-version-check --no-cache-dir --break-system-packages -q \
		 --retries 0 --timeout 5 --trusted-host other.test --index-url http://other.test:$HP/simple silo-probe; echo pip=\$?"
	check "qemu: pip from a denied name fails fast (${T}s)" eval 'echo "$R" | grep -q "pip=1" && fast 60'
fi
