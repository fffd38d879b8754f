#!/usr/bin/env bash
# External policy decisions (docs/policy.md, "External decisions (OPA)"): a
# real silod with --opa-url pointing at a small decision server written here
# in Python (OPA itself is not in Debian) that speaks OPA's data API:
# POST {"input": ...} -> {"result": ...}. Checks what silod sends, that the
# local policy is asked first, that an explicit deny / undefined result /
# HTTP error / timeout / unreachable server all deny, and that denials are
# counted and audited.
. "$(dirname "$0")/silod-lib.sh"

OPORT=$((20000 + RANDOM % 20000))
cat > "$TMP/opa.py" <<'EOF'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[2], "a")
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        inp = body["input"]
        log.write(json.dumps({"path": self.path, "ctype": self.headers.get("Content-Type"), "input": inp}) + "\n")
        log.flush()
        if self.path == "/v1/data/silo/broken":
            self.send_response(500); self.end_headers(); return
        if self.path == "/v1/data/silo/undefined":
            res = {}
        else:
            op, name = inp["operation"], inp["sandbox"]["name"]
            if name.startswith("slow-"):
                time.sleep(3)
            allow, reason = True, None
            if op == "create" and name.startswith("bad-"):
                allow, reason = False, "names starting with bad- are not allowed"
            if op == "exec" and inp.get("argv", [""])[0] == "rm":
                allow, reason = False, "no rm"
            if op == "file_write" and inp["path"].startswith("/tmp/no"):
                allow = False
            res = {"result": {"allow": allow, "reason": reason}} if reason else {"result": allow}
        b = json.dumps(res).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$TMP/opa.py" "$OPORT" "$TMP/opa.log" &
OPID=$!
for _ in $(seq 1 50); do curl -s -o /dev/null -d '{"input":{"operation":"ping","sandbox":{"name":"x"}}}' "http://127.0.0.1:$OPORT/v1/data/silo/allow" && break; sleep 0.1; done
: > "$TMP/opa.log"
URL=http://127.0.0.1:$OPORT/v1/data/silo/allow
printf 'default = "standard"\n[policies.standard]\npaths = ["/tmp"]\n' > "$TMP/policies.toml"

out=$("$SILOD" --opa-url "ftp://127.0.0.1/x" 2>&1); rc=$?
check "a non-HTTP --opa-url stops silod with a message" test $rc -ne 0 -a -n "$(echo "$out" | grep -F -- '--opa-url: expected an http:// or https:// URL')"

start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 --policy-file "$TMP/policies.toml" \
	--opa-url "$URL" --opa-timeout-ms 500 || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; [ -n "${OPID:-}" ] && kill $OPID 2>/dev/null; cleanup' EXIT

requests() { wc -l < "$TMP/opa.log"; }

create_ns bad-x 128 > /dev/null
denied "an explicit deny with a reason refuses the create" "policy \"opa\" rule allow: denied by $URL: names starting with bad- are not allowed"
check "nothing was spawned for it" test "$(live_count)" = 0
A=$(create_ns ok-1 128)
check "an allowed create succeeds" test "$(status)" = 201 -a -n "$A"
check "the create input: operation, actor, policy, the spec (limits applied), JSON over POST" python3 -c '
import json,sys
r=[json.loads(l) for l in open(sys.argv[1])]
c=[x for x in r if x["input"]["operation"]=="create" and x["input"]["sandbox"]["name"]=="ok-1"][0]
i=c["input"]; s=i["sandbox"]
assert c["path"]=="/v1/data/silo/allow" and c["ctype"]=="application/json", c
assert i["actor"].startswith("uid:") and i["policy"]=="standard" and "token" not in i, i
assert s["provider"]=="namespace" and s["vcpus"]==1 and s["memory_mb"]==128 and s["network"] is False, s
assert s["metadata"]["policy"]=="standard" and "id" not in s, s' "$TMP/opa.log"

r=$(exec_json "$A" '{"argv":["sh","-c","echo hi > /tmp/keep; echo hi"],"cwd":"/tmp"}' | ndjson_out)
check "an allowed exec runs" test "$r" = "hi||0"
exec_json "$A" '{"argv":["rm","-f","/tmp/keep"],"cwd":"/tmp"}' > /dev/null
denied "an exec the decision server refuses" "policy \"opa\" rule allow: denied by $URL: no rm"
r=$(exec_json "$A" '{"argv":["cat","/tmp/keep"],"cwd":"/tmp"}' | ndjson_out)
check "the refused command did not run" test "$r" = "hi||0"
check "the exec input carries the sandbox id, argv and the working directory" python3 -c '
import json,sys
r=[json.loads(l)["input"] for l in open(sys.argv[1])]
e=[x for x in r if x["operation"]=="exec" and x["argv"][0]=="rm"][0]
assert e["sandbox"]["id"]==sys.argv[2] and e["argv"]==["rm","-f","/tmp/keep"] and e["path"]=="/tmp", e' "$TMP/opa.log" "$A"
n0=$(requests)
exec_json "$A" '{"argv":["true"],"cwd":"/"}' > /dev/null
denied "the local policy is asked first" 'policy "standard" rule paths: exec with working directory "/"'
check "... and a local denial makes no external request" test "$(requests)" = "$n0"
echo data > "$TMP/f"
api PUT "/v1/sandboxes/$A/files?path=/tmp/no-thanks" --data-binary @"$TMP/f" > /dev/null
denied "a file_write the server refuses (result false)" "policy \"opa\" rule allow: denied by $URL"
api PUT "/v1/sandboxes/$A/files?path=/tmp/yes" --data-binary @"$TMP/f" > /dev/null
check "an allowed file_write" test "$(status)" = 200
check "file_read is asked too" test "$(api GET "/v1/sandboxes/$A/files?path=/tmp/yes")" = data -a \
	"$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["input"]["operation"]=="file_read"))' "$TMP/opa.log")" = 1
t0=$(date +%s%N)
create_ns slow-1 128 > /dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
denied "a decision slower than --opa-timeout-ms denies" "policy \"opa\" rule decision: no decision from $URL"
check "... after about the timeout (${ms} ms)" test "$ms" -lt 2500

# Undefined result and HTTP errors deny (fail closed). The sandbox survives the restarts.
stop_daemon
start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --policy-file "$TMP/policies.toml" \
	--opa-url "http://127.0.0.1:$OPORT/v1/data/silo/undefined" || { notok "silod restarts"; exit 1; }
exec_json "$A" '{"argv":["true"],"cwd":"/tmp"}' > /dev/null
denied "an undefined result denies" 'policy "opa" rule allow: the decision at http://127.0.0.1:'"$OPORT"'/v1/data/silo/undefined is undefined for this input'
stop_daemon
start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --policy-file "$TMP/policies.toml" \
	--opa-url "http://127.0.0.1:$OPORT/v1/data/silo/broken" || { notok "silod restarts"; exit 1; }
exec_json "$A" '{"argv":["true"],"cwd":"/tmp"}' > /dev/null
denied "an HTTP error denies" '(HTTP 500)'
stop_daemon
kill $OPID; wait $OPID 2>/dev/null; OPID=
start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --policy-file "$TMP/policies.toml" --opa-url "$URL" ||
	{ notok "silod restarts"; exit 1; }
exec_json "$A" '{"argv":["true"],"cwd":"/tmp"}' > /dev/null
denied "an unreachable decision server denies" "policy \"opa\" rule decision: no decision from $URL"
n=$(curl -s --unix-socket "$SOCK" http://silod/metrics | awk '/^silo_policy_denials_total /{print $2}')
check "denials are counted (1 since this restart, got ${n:-none})" test "${n:-0}" = 1
check "every denial is audited (8)" test "$(grep -c '"event":"policy-denied"' "$SILO_STATE_DIR/audit.jsonl")" = 8
api DELETE "/v1/sandboxes/$A?grace_ms=0" > /dev/null
check "delete is not an external decision" test "$(status)" = 200
check_nothing_left "nothing is left of the sandbox" "$A"
stop_daemon
check_clean_exit "silod exits cleanly"
