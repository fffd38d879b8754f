#!/usr/bin/env bash
# A guest that leaves its scope is terminated (docs/policy.md): a real silod,
# a namespace sandbox whose /sbin/silo-agent is tests/integration/hostile_agent.c.
# After the handshake it sends a frame header claiming 4 GiB: the channel
# reports a protocol violation, the manager terminates the sandbox (process,
# rundir, cgroup gone), records state error, emits security-violation, counts
# it and writes it to the audit log. A hostile handshake fails the create the
# same way, and so does output beyond the flow-control window (an agent that
# ignores the host's credit while the client is not reading).
. "$(dirname "$0")/silod-lib.sh"

SRC=${SILO_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
mkroot() { # mkroot DIR MODE: a root directory with the hostile agent
	mkdir -p "$1"/{proc,sys,dev,tmp,run,sbin,.oldroot}
	echo "$2" > "$1/mode"
	cp "$TMP/hostile" "$1/sbin/silo-agent"
}
CCX=
for c in musl-gcc gcc cc; do
	if command -v $c > /dev/null && $c -static -O2 -I"$SRC" -o "$TMP/hostile" "$SRC/tests/integration/hostile_agent.c" 2> "$TMP/cc.log"; then
		CCX=$c; break
	fi
done
[ -n "$CCX" ] || skip_all "cannot build a static hostile agent: $(head -3 "$TMP/cc.log")"
mkroot "$TMP/evil" after-handshake
mkroot "$TMP/evil-hs" handshake
mkroot "$TMP/evil-overrun" overrun

start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; [ -n "${EVPID:-}" ] && kill $EVPID 2>/dev/null; cleanup' EXIT
curl -s -N --unix-socket "$SOCK" "http://silod/v1/events" > "$TMP/events" &
EVPID=$!
sleep 0.3

V=$(create_ns evil 128 ",\"rootfs\":\"$TMP/evil\"")
check "the hostile agent passes the handshake (201)" test "$(status)" = 201 -a -n "$V"
PID=$(api GET "/v1/sandboxes/$V" | jget 'j["pid"]')
for _ in $(seq 1 100); do
	st=$(api GET "/v1/sandboxes/$V" | jget 'j["state"]')
	[ "$st" = error ] && [ -z "$(api GET /v1/sandboxes | jget '[s["id"] for s in j["sandboxes"] if s["id"]=="'"$V"'"]' | tr -d '[]')" ] && break
	sleep 0.1
done
check "the sandbox ends in state error" test "$st" = error
check "its reason names the violation" test -n "$(api GET "/v1/sandboxes/$V" | jget 'j.get("reason","")' | grep -F 'SECURITY_VIOLATION: agent protocol violation')"
check "it is no longer live" test "$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = 0
for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
check "its process ($PID) is gone" bash -c "! kill -0 $PID 2>/dev/null"
check "its run directory is removed" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$V"
check "its cgroup is removed" test ! -e "/sys/fs/cgroup/pids/silo/$V" -a ! -e "/sys/fs/cgroup/unified/silo/$V" -a ! -e "/sys/fs/cgroup/silo/$V"
exec_json "$V" '{"argv":["true"]}' > /dev/null
check "operations on it fail with VM_NOT_FOUND" test "$(status)" = 404

H=$(create_ns evil-hs 128 ",\"rootfs\":\"$TMP/evil-hs\"")
check "a hostile handshake fails the create with PROTOCOL" test "$(jget 'j["error"]["code"]' < "$TMP/body")" = PROTOCOL
H=$(jget 'j["error"].get("vm_id","")' < "$TMP/body")
check "that sandbox is recorded in state error and left nothing" \
	test "$(api GET "/v1/sandboxes/$H" | jget 'j["state"]')" = error -a ! -e "$SILO_RUNTIME_DIR/sandboxes/$H"

O=$(create_ns evil-overrun 128 ",\"rootfs\":\"$TMP/evil-overrun\"")
check "the overrunning agent passes the handshake (201)" test "$(status)" = 201 -a -n "$O"
OPID=$(api GET "/v1/sandboxes/$O" | jget 'j["pid"]')
exec_client "$O" 8 yes > /dev/null &   # a client that does not read: the host grants no more credit
CPID=$!
for _ in $(seq 1 100); do
	st=$(api GET "/v1/sandboxes/$O" | jget 'j["state"]')
	[ "$st" = error ] && break
	sleep 0.1
done
check "output beyond the window: the sandbox ends in state error" test "$st" = error
check "its reason names the window" test -n "$(api GET "/v1/sandboxes/$O" | jget 'j.get("reason","")' | grep -F 'output beyond the granted window')"
for _ in $(seq 1 50); do kill -0 "$OPID" 2>/dev/null || break; sleep 0.1; done
check "its process ($OPID) is gone" bash -c "! kill -0 $OPID 2>/dev/null"
kill $CPID 2>/dev/null; wait $CPID 2>/dev/null

sleep 0.3
kill $EVPID 2>/dev/null; wait $EVPID 2>/dev/null; EVPID=
check "security-violation events for all three, with code SECURITY_VIOLATION" python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: ")]
sv=[e for e in ev if e["type"]=="security-violation"]
ids={e["sandbox_id"] for e in sv}
assert sys.argv[2] in ids and sys.argv[3] in ids and sys.argv[4] in ids, sv
assert all(e["code"]=="SECURITY_VIOLATION" for e in sv), sv
assert any(e["type"]=="terminated" or (e["type"]=="state-change" and e["state"]=="error") for e in ev if e.get("sandbox_id")==sys.argv[2])' \
	"$TMP/events" "$V" "$H" "$O"
n=$(curl -s --unix-socket "$SOCK" http://silod/metrics | awk '/^silo_security_violations_total /{print $2}')
check "silo_security_violations_total counts all three (got ${n:-none})" test "${n:-0}" = 3
check "the audit log records the violation and the termination" python3 -c '
import json,sys
r=[json.loads(l) for l in open(sys.argv[1])]
v=[x for x in r if x["event"]=="security-violation" and x["sandbox_id"]==sys.argv[2]]
t=[x for x in r if x["event"]=="terminated" and x["sandbox_id"]==sys.argv[2]]
assert v and "SECURITY_VIOLATION: agent protocol violation" in v[0]["details"]["reason"], v
assert t and t[0]["details"]["reason"]=="terminated after a security violation" and t[0]["details"]["host_clean"], t' \
	"$SILO_STATE_DIR/audit.jsonl" "$V"
stop_daemon
check_clean_exit "silod exits cleanly"
