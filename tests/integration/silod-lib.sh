# Helpers for silod integration tests (sourced). TAP output; every test runs a
# real silod with a real SQLite registry in a temp state dir and cleans it up.
set -u
BUILD=${SILO_BUILD_ROOT:?SILO_BUILD_ROOT not set}
SILOD=${SILOD_BIN:-$BUILD/daemon/silod}
SILO=${SILO_BIN:-$BUILD/cli/silo}
TMP=$(mktemp -d /tmp/silod-test-XXXXXX)
export SILO_STATE_DIR=$TMP/state SILO_RUNTIME_DIR=$TMP/run SILO_LOG=${SILO_LOG:-info}
unset SILO_HOST SILO_SOCKET SILO_API_TOKEN
mkdir -p "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR"
SOCK=$SILO_RUNTIME_DIR/silod.sock
DPID=
. "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"
tap_cleanup() { cleanup; }

# JSON field extraction: jget 'expr' < json   (expr is Python on the parsed value `j`)
jget() { python3 -c "import json,sys; j=json.load(sys.stdin); v=$1; print(v if not isinstance(v,(dict,list,bool)) else json.dumps(v))"; }

api() { # api METHOD PATH [curl args...] -> body on stdout, status in $TMP/status
	local m=$1 p=$2; shift 2
	curl -s -o "$TMP/body" -w '%{http_code}' --unix-socket "$SOCK" -X "$m" "$@" "http://silod$p" > "$TMP/status"
	cat "$TMP/body"
}
tcp() { # tcp SECRET METHOD PATH [curl args...]: like api, over TCP 127.0.0.1:$PORT with a bearer token
	local t=$1 m=$2 p=$3; shift 3
	curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $t" -X "$m" "$@" "http://127.0.0.1:$PORT$p" > "$TMP/status"
	cat "$TMP/body"
}
status() { cat "$TMP/status"; }
live_count() { api GET /v1/sandboxes | jget 'len(j["sandboxes"])'; }   # live sandboxes
sandbox_ids() { # sandbox_ids [STATE]: the ids silod lists (live, or in STATE: all, terminated ...)
	api GET "/v1/sandboxes${1:+?state=$1}" | jget '" ".join(s["id"] for s in j["sandboxes"])'
}
# check_nothing_left NAME ID...: no cgroup and no run directory is left for any of the sandboxes
check_nothing_left() {
	local name=$1 id left=; shift
	for id in "$@"; do left+=$(ls -d /sys/fs/cgroup/*/silo/"$id" "$SILO_RUNTIME_DIR/sandboxes/$id" 2>/dev/null); done
	check "$name" test -z "$left"
}
# expect_error NAME STATUS CODE WANT...: the last answer (api/tcp) is HTTP STATUS with the error
# body {"error": {"code": CODE, "message": ...}} whose message contains each WANT.
expect_error() {
	local name=$1 st=$2 code=$3 body; body=$(cat "$TMP/body"); shift 3
	if [ "$(status)" = "$st" ] && python3 -c '
import json,sys; e=json.loads(sys.argv[1])["error"]
assert e["code"]==sys.argv[2], e
for w in sys.argv[3:]: assert w in e["message"], (w, e["message"])' "$body" "$code" "$@" 2>/dev/null; then
		ok "$name"
	else
		notok "$name" "status $(status), body: $body" "wanted: $st $code $*"
	fi
}

# denied NAME WANT...: the last answer is 403 with the body {"error": {"code": "POLICY_DENIED", ...}}
# and nothing beside "error", its message containing each WANT.
denied() {
	local name=$1; shift
	if [ "$(jget 'list(j)' < "$TMP/body" 2>/dev/null)" = '["error"]' ]; then
		expect_error "$name" 403 POLICY_DENIED "$@"
	else
		notok "$name" "status $(status), body: $(cat "$TMP/body")" "wanted: 403 POLICY_DENIED $*"
	fi
}

start_daemon() {
	"$SILOD" "$@" > "$TMP/silod.log" 2>&1 &
	DPID=$!
	for _ in $(seq 1 200); do
		[ -S "$SOCK" ] && curl -s --unix-socket "$SOCK" http://silod/v1/health > /dev/null 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || { echo "# silod exited:"; sed 's/^/#   /' "$TMP/silod.log"; return 1; }
		sleep 0.05
	done
	echo "# silod did not come up"; return 1
}

DAEMON_RC=
stop_daemon() { # SIGTERM, wait; DAEMON_RC = exit status (137 if it had to be killed)
	[ -n "$DPID" ] || return 0
	kill -TERM "$DPID" 2>/dev/null
	for _ in $(seq 1 200); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DAEMON_RC=$?
	DPID=
}

# After stop_daemon: silod exited 0 and its log has no sanitizer report.
check_clean_exit() {
	if [ "$DAEMON_RC" = 0 ] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/silod.log"; then
		ok "$1"
	else
		notok "$1" "exit status $DAEMON_RC" "$(grep -m5 -E 'Sanitizer|runtime error|SUMMARY' "$TMP/silod.log")"
	fi
}

# Terminate every sandbox the registry still lists, then stop silod and remove
# the temp dir. A test that stopped silod with sandboxes live (silod keeps them
# for the next start) gets a silod again on its state dir: it reattaches them
# and its DELETE tears each down entirely (cgroups, disk, ids). What still is
# live after that is killed and its cgroups removed: nothing of a test's
# sandboxes outlives it.
live_rows() { # id pid of each sandbox the registry does not call ended
	[ -f "$SILO_STATE_DIR/registry.db" ] && sqlite3 -separator ' ' "$SILO_STATE_DIR/registry.db" \
		"SELECT id, pid FROM sandboxes WHERE state NOT IN ('terminated','error')" 2>/dev/null
}
cleanup() {
	if [ -z "$DPID" ] && [ -n "$(live_rows)" ]; then
		start_daemon > /dev/null 2>&1 || true
	fi
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		for id in $(curl -s --unix-socket "$SOCK" http://silod/v1/sandboxes 2>/dev/null |
			python3 -c 'import json,sys
try:
  [print(s["id"]) for s in json.load(sys.stdin)["sandboxes"]]
except Exception: pass'); do
			curl -s --unix-socket "$SOCK" -X DELETE "http://silod/v1/sandboxes/$id?grace_ms=0" > /dev/null
		done
		stop_daemon
	fi
	local id pid d
	while read -r id pid; do
		[ -n "$id" ] || continue
		[ "${pid:-0}" -gt 0 ] && kill -KILL "$pid" 2>/dev/null
		for d in /sys/fs/cgroup/*/silo/"$id" /sys/fs/cgroup/silo/"$id"; do
			[ -d "$d" ] || continue
			for _ in $(seq 1 50); do
				find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
				[ -d "$d" ] || break
				sleep 0.1
			done
		done
	done <<< "$(live_rows)"
	rm -rf "$TMP"
}
trap cleanup EXIT

pool_spec() { # pool_spec FILE: the namespace pool spec ("pooled", 1 vCPU, 128 MB) the pool tests share
	cat > "$1" <<'TOML'
[vm]
name = "pooled"
provider = "namespace"

[resources]
vcpus = 1
memory_mb = 128
TOML
}
provider_available() { # provider_available NAME: silod reports the provider available
	api GET /v1/providers | python3 -c 'import json,sys
p=[x for x in json.load(sys.stdin)["providers"] if x["name"]==sys.argv[1]]
sys.exit(0 if p and p[0]["available"] else 1)' "$1"
}
namespace_available() { provider_available namespace; }

create_ns() { # create_ns NAME [MEMORY_MB] [extra json fields] -> id
	local mem=${2:-256} extra=${3:-}
	api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d "{\"provider\":\"namespace\",\"name\":\"$1\",\"vcpus\":1,\"memory_mb\":${mem}${extra}}" | jget 'j.get("id","")'
}

delete_timed() { # delete_timed ID [GRACE_MS]: DELETE the sandbox (grace 0); MS = how long the answer took
	local t0; t0=$(date +%s%N)
	api DELETE "/v1/sandboxes/$1?grace_ms=${2:-0}" > /dev/null
	MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

exec_json() { # exec_json ID JSON -> NDJSON on stdout
	api POST "/v1/sandboxes/$1/exec" -H 'Content-Type: application/json' -d "$2"
}
exec_to() { # exec_to ID JSON FILE: like exec_json, safe to run in the background (own files)
	curl -s -o "$3" --unix-socket "$SOCK" -H 'Content-Type: application/json' -d "$2" \
		"http://silod/v1/sandboxes/$1/exec"
}

# Decode an NDJSON exec stream into "stdout|stderr|exit" text
ndjson_out() {
	python3 -c 'import json,sys,base64
out=b"";err=b"";ex=None
for l in sys.stdin:
  if not l.strip(): continue
  j=json.loads(l)
  if "stream" in j:
    d=base64.b64decode(j["data"])
    if j["stream"]=="stdout": out+=d
    else: err+=d
  elif "exit_code" in j: ex=j["exit_code"]
  elif "error" in j: ex="error:"+j["error"]["code"]
print(out.decode(errors="replace").strip()+"|"+err.decode(errors="replace").strip()+"|"+str(ex))'
}

# exec_client ID DELAY_S ARGV...: a raw HTTP exec client (stdlib Python) that
# posts argv, reads nothing for DELAY_S (with a 4 KiB receive buffer, so little
# piles up in the kernel meanwhile), then reads the whole chunked NDJSON stream
# and prints "<stdout bytes> <sha256 of stdout> <final line>".
exec_client() {
	python3 - "$SOCK" "$@" <<'PY'
import base64, hashlib, json, socket, sys, time
sock, sid, delay, argv = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sock)
body = json.dumps({"argv": argv}).encode()
s.sendall(b"POST /v1/sandboxes/%s/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % (sid.encode(), len(body)) + body)
time.sleep(delay)
s.settimeout(120)
f = s.makefile("rb", buffering=1 << 20)
while f.readline() not in (b"\r\n", b""):      # status line and headers
    pass
h, n, tail, last = hashlib.sha256(), 0, b"", "none"
while True:                                      # chunked transfer encoding
    size = int(f.readline().split(b";")[0], 16)
    if size == 0:
        break
    tail += f.read(size)
    f.read(2)
    *lines, tail = tail.split(b"\n")
    for l in lines:
        j = json.loads(l)
        if j.get("stream") == "stdout":
            d = base64.b64decode(j["data"])
            h.update(d)
            n += len(d)
        elif "stream" not in j:
            last = l.decode()
print(n, h.hexdigest(), last, flush=True)
PY
}
