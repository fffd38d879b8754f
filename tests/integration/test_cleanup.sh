#!/usr/bin/env bash
# Cleanup verification with real leftovers (namespace provider, real silod):
# a clean terminate reports CleanupVerification {terminated, host_clean,
# residual_paths} in the DELETE response and in GET; stray temp files and the
# sandbox's tap device are removed by the terminate; a mount inside the run dir
# held busy by a host process (and the stray file under it) is reported,
# recorded, and removed at the next silod start. TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
HOLDER=
TAP=
leak_cleanup() {
	[ -n "$HOLDER" ] && kill -KILL "$HOLDER" 2>/dev/null
	if [ -n "${LEAK:-}" ]; then umount -l "$LEAK" 2>/dev/null; fi
	[ -n "$TAP" ] && ip link del "$TAP" 2>/dev/null
}
trap 'echo "1..$N"; leak_cleanup; cleanup' EXIT

start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"

# -- a clean terminate
A=$(create_ns clean-a)
check "sandbox created" test -n "$A"
d=$(api DELETE "/v1/sandboxes/$A?grace_ms=0")
check "DELETE 200 with cleanup {terminated:true, host_clean:true, residual_paths:[]}" bash -c "test $(status) = 200 &&
	python3 -c 'import json,sys; c=json.loads(sys.argv[1])[\"cleanup\"]
assert c[\"terminated\"] is True and c[\"host_clean\"] is True and c[\"residual_paths\"] == [], c' '$d'"
g=$(api GET "/v1/sandboxes/$A")
check "GET of the terminated sandbox shows the same verification" \
	bash -c "echo '$g' | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"terminated\" and j[\"cleanup\"][\"host_clean\"] is True, j'"

# -- leftovers the terminate removes itself: temp files beside the run dir, the tap device
B=$(create_ns temp-b)
RB=$(api GET "/v1/sandboxes/$B" | jget 'j.get("rundir","")')
echo junk > "$RB.tmp"
echo junk > "/tmp/silo-$B-scratch"
TAP="st${B: -12}"
ip tuntap add dev "$TAP" mode tap 2>/dev/null || TAP=
d=$(api DELETE "/v1/sandboxes/$B?grace_ms=0")
check "temp files and tap removed by the terminate: still host_clean" bash -c "test $(status) = 200 &&
	python3 -c 'import json,sys; c=json.loads(sys.argv[1])[\"cleanup\"]; assert c[\"host_clean\"], c' '$d'"
check "stray temp files are gone" test ! -e "$RB.tmp" -a ! -e "/tmp/silo-$B-scratch"
if [ -n "$TAP" ]; then
	check "the sandbox's tap device $TAP is gone" test ! -e "/sys/class/net/$TAP"
	TAP=
else
	notok "tap device could be created for the test (ip tuntap add)"
fi

# -- a leftover the terminate cannot remove: a busy mount in the run dir, with a stray file
C=$(create_ns leak-c)
RC=$(api GET "/v1/sandboxes/$C" | jget 'j.get("rundir","")')
LEAK="$RC/leak"
mkdir -p "$LEAK" && mount -t tmpfs silo-test-leak "$LEAK" && echo stray > "$LEAK/stray"
(cd "$LEAK" && exec sleep 600) &
HOLDER=$!
sleep 0.2
d=$(api DELETE "/v1/sandboxes/$C?grace_ms=0")
st=$(status)
check "DELETE reports CLEANUP_FAILED (500) naming the mount" bash -c "test $st = 500 && grep -q CLEANUP_FAILED <<<'$d' && grep -q 'mount $LEAK' <<<'$d'"
check "the error body carries cleanup {terminated:true, host_clean:false} with the mount, the holder process and the run dir" \
	python3 -c 'import json,sys
c=json.loads(sys.argv[1])["cleanup"]; r=c["residual_paths"]
assert c["terminated"] is True and c["host_clean"] is False, c
assert "mount "+sys.argv[2] in r, r
assert any(x.startswith("process %s " % sys.argv[4]) for x in r), r
assert sys.argv[3] in r, r' "$d" "$LEAK" "$RC" "$HOLDER"
g=$(api GET "/v1/sandboxes/$C")
check "GET shows host_clean false and the residue" bash -c "echo '$g' | python3 -c 'import json,sys; c=json.load(sys.stdin)[\"cleanup\"]; assert not c[\"host_clean\"] and c[\"residual_paths\"], c'"
check "the record is in the state dir" test -s "$SILO_STATE_DIR/cleanup/$C.json"
check "the mount really is still there" grep -q " $LEAK " /proc/self/mountinfo

# -- a sandbox that dies while silod is down is verified the same way at the next start
D=$(create_ns dies-d)
PD=$(api GET "/v1/sandboxes/$D" | jget 'j["pid"]')
RD=$(api GET "/v1/sandboxes/$D" | jget 'j.get("rundir","")')

# -- next start: the leftovers are retried and removed (the holder still runs: lazy unmount)
stop_daemon
kill -KILL "$PD" 2>/dev/null
sleep 0.3
start_daemon || { notok "silod restarts"; exit 1; }
g=$(api GET "/v1/sandboxes/$D")
check "a sandbox that died while silod was down: cleanup recorded at recovery, host clean" \
	python3 -c 'import json,sys; c=json.loads(sys.argv[1])["cleanup"]; assert c["terminated"] and c["host_clean"], c' "$g"
check "its run dir is gone" test ! -e "$RD"
g=$(api GET "/v1/sandboxes/$C")
check "after restart: host_clean true, residual_paths empty, retried set, the mount listed as resolved" \
	python3 -c 'import json,sys
c=json.loads(sys.argv[1])["cleanup"]
assert c["host_clean"] is True and c["residual_paths"] == [] and c.get("retried"), c
assert "mount "+sys.argv[2] in c["resolved_at_retry"], c' "$g" "$LEAK"
check "the mount is gone from the host" bash -c "! grep -q ' $LEAK ' /proc/self/mountinfo"
check "the run dir (and the stray file) are gone" test ! -e "$RC"
check "the retry is in the audit log" grep -q '"event":"cleanup-retry"' "$SILO_STATE_DIR/audit.jsonl"
kill -KILL "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; HOLDER=; LEAK=
stop_daemon
check_clean_exit "silod exits cleanly"
exit $((FAILED > 0))
