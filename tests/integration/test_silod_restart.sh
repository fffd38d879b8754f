#!/usr/bin/env bash
# silod restart semantics: kill -9 silod while sandboxes run, restart it, and
# check that live sandboxes are reattached and manageable, dead ones are marked
# with a reason, and nothing of the dead ones is left on the host. Also: a
# sandbox that dies while silod runs is noticed by the monitor.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT

start_daemon || { notok "silod starts"; exit 1; }
namespace_available || { trap cleanup EXIT; skip_all "namespace provider unavailable here: $(api GET /v1/providers)"; }

A=$(create_ns keep-a)
B=$(create_ns lose-b)
C=$(create_ns crash-c)
check "three sandboxes created" test -n "$A" -a -n "$B" -a -n "$C"
pid_of() { api GET "/v1/sandboxes/$1" | jget 'j["pid"]'; }
PA=$(pid_of "$A"); PB=$(pid_of "$B"); PC=$(pid_of "$C")
RB=$(api GET "/v1/sandboxes/$B" | jget 'j.get("rundir","")')
check "exec works before the restart" test "$(exec_json "$A" '{"argv":["echo","before"]}' | ndjson_out)" = "before||0"

# -- monitor: a sandbox whose process dies while silod runs is marked error and cleaned
kill -KILL "$PC"
for _ in $(seq 1 100); do [ "$(api GET "/v1/sandboxes/$C" | jget 'j["state"]')" = error ] && break; sleep 0.05; done
st=$(api GET "/v1/sandboxes/$C")
check "monitor marks a dead sandbox error with a reason" test "$(echo "$st" | jget 'j["state"]')" = error -a \
	-n "$(echo "$st" | jget 'j.get("reason","")' | grep -i exited)"
for _ in $(seq 1 60); do [ -e "$SILO_RUNTIME_DIR/sandboxes/$C" ] || break; sleep 0.05; done
check "monitor cleans the dead sandbox's rundir" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$C"

# -- kill -9 silod
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
sleep 0.3
if kill -0 "$PA" 2>/dev/null && kill -0 "$PB" 2>/dev/null; then
	ok "sandbox processes survive kill -9 of silod"
else
	notok "sandbox processes survive kill -9 of silod" \
		"the provider ties sandboxes to silod's life (PR_SET_PDEATHSIG or a shared process group?)"
fi
# B dies while silod is down.
kill -KILL "$PB" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$PB" 2>/dev/null || break; sleep 0.05; done

start_daemon || notok "silod restarts on the same state dir"
st=$(api GET "/v1/sandboxes/$A")
check "live sandbox is reattached as running" test "$(echo "$st" | jget 'j["state"]')" = running
check "reattached sandbox keeps its pid" test "$(echo "$st" | jget 'j["pid"]')" = "$PA"
check "exec works after the restart" test "$(exec_json "$A" '{"argv":["echo","after"]}' | ndjson_out)" = "after||0"
echo payload > "$TMP/f"
"$SILO" cp "$TMP/f" "$A:/tmp/f" && "$SILO" cp "$A:/tmp/f" "$TMP/f2"
check "files work after the restart" cmp -s "$TMP/f" "$TMP/f2"
st=$(api GET "/v1/sandboxes/$B")
check "dead sandbox is marked error" test "$(echo "$st" | jget 'j["state"]')" = error
check "with a reason naming the restart" test -n "$(echo "$st" | jget 'j.get("reason","")' | grep 'lost across silod restart')"
check "dead sandbox's rundir is removed" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$B" -a ! -e "${RB:-/nonexistent}"
check "ps lists only the live one" test "$("$SILO" ps --json | jget '[s["id"] for s in j]')" = "[\"$A\"]"
h=$(api GET /v1/health)
check "allocation counts only the live one" test "$(echo "$h" | jget 'j["sandboxes"]')" = 1

api DELETE "/v1/sandboxes/$A" > /dev/null
check "reattached sandbox can be deleted" test "$(status)" = 200
for _ in $(seq 1 100); do kill -0 "$PA" 2>/dev/null || break; sleep 0.05; done
check "its process is gone" bash -c "! kill -0 $PA 2>/dev/null"
check "its rundir is gone" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$A"
left=$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | wc -l)
check "no rundir left at all" test "$left" = 0
check "audit chain intact across both silod processes" "$SILO" audit verify "$SILO_STATE_DIR/audit.jsonl"
check "second silod on the same state dir is refused" bash -c "! '$SILOD' --socket '$TMP/other.sock' 2>/dev/null"

# -- graceful restart: SIGTERM leaves sandboxes running, the next silod takes them back
D=$(create_ns graceful-d)
PD=$(pid_of "$D")
stop_daemon
check_clean_exit "silod exits cleanly on SIGTERM with a sandbox running"
check "the sandbox outlives a graceful stop" kill -0 "$PD"
start_daemon || notok "silod restarts after SIGTERM"
check "and is reattached running" test "$(api GET "/v1/sandboxes/$D" | jget 'j["state"]')" = running
check "and answers exec" test "$(exec_json "$D" '{"argv":["echo","again"]}' | ndjson_out)" = "again||0"
api DELETE "/v1/sandboxes/$D" > /dev/null
check "and can be deleted" test "$(status)" = 200

# -- kill -9 silod while a sandbox is still provisioning (no pid recorded yet): the next
# silod marks it error and the provider stops and removes what it had started.
stop_daemon
mkdir -p "$TMP/fake"
printf '#!/bin/sh\nexec sleep 1000\n' > "$TMP/fake/silo-agent"; chmod +x "$TMP/fake/silo-agent"
SILO_LIBEXEC_DIR="$TMP/fake" start_daemon --boot-timeout-ms 60000 || notok "silod starts with an agent that never answers"
api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"stuck-e","vcpus":1,"memory_mb":128}' > /dev/null 2>&1 &
CURLPID=$!
E=; PE=
for _ in $(seq 1 200); do
	E=$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | head -1)
	[ -n "$E" ] && [ -s "$SILO_RUNTIME_DIR/sandboxes/$E/pid" ] && break
	sleep 0.05
done
PE=$(cut -d' ' -f1 "$SILO_RUNTIME_DIR/sandboxes/$E/pid" 2>/dev/null)
check "a sandbox is provisioning with a live init" test -n "$E" -a -n "$PE"
check "its registry row says provisioning" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" "SELECT state FROM sandboxes WHERE id='$E'")" = provisioning
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
wait "$CURLPID" 2>/dev/null
sleep 0.3
check "the provisioning sandbox outlives kill -9 of silod" kill -0 "${PE:-0}"
start_daemon || notok "silod restarts after a kill -9 during provisioning"
st=$(api GET "/v1/sandboxes/$E")
check "the lost provisioning sandbox is marked error" test "$(echo "$st" | jget 'j["state"]')" = error
check "with a reason naming provisioning" test -n "$(echo "$st" | jget 'j.get("reason","")' | grep provisioning)"
for _ in $(seq 1 100); do kill -0 "${PE:-0}" 2>/dev/null || break; sleep 0.05; done
check "its init process is gone (not orphaned)" bash -c "! kill -0 ${PE:-0} 2>/dev/null"
check "its cgroups are gone" test -z "$(find /sys/fs/cgroup -maxdepth 4 -path "*/silo/$E" 2>/dev/null)"
check "its rundir is gone" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$E"

# -- recovery does not hold the API: a sandbox whose agent is stopped (SIGSTOP) takes the whole
# handshake deadline to reattach; silod answers requests meanwhile, and the sandbox comes back
# once the agent runs again.
stop_daemon
start_daemon || notok "silod restarts for the recovery test"
F=$(create_ns slow-f)
PF=$(pid_of "$F")
AF=$(pgrep -P "$PF" | head -1)   # the agent: the sandbox init's child (or the init itself)
kill -STOP "${AF:-$PF}" "$PF"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
sleep 0.3
start_daemon || notok "silod restarts with a sandbox whose agent is stopped"
check "silod answers while that sandbox is still being recovered" \
	bash -c "! grep -q 'recover $F' '$TMP/silod.log'"
st=$(api GET "/v1/sandboxes/$F")
check "the sandbox being recovered is listed (not 404)" test "$(status)" = 200
kill -CONT "$PF" "${AF:-$PF}"
check "and answers exec once its agent runs again" test "$(exec_json "$F" '{"argv":["echo","back"]}' | ndjson_out)" = "back||0"
api DELETE "/v1/sandboxes/$F" > /dev/null

# -- qemu (and kvm where it boots Linux): a VM created before kill -9 of silod answers exec after a
# prompt restart (0.3 s, as a supervisor would), and after SIGTERM plus an immediate restart.
vm_provider_available() {
	api GET /v1/providers | python3 -c 'import json,sys
p=[x for x in json.load(sys.stdin)["providers"] if x["name"]==sys.argv[1]]
sys.exit(0 if p and p[0]["available"] else 1)' "$1"
}
if [ "${SILO_SKIP_VM_TESTS:-}" = 1 ] || ! vm_provider_available qemu; then
	for t in "qemu sandbox created" "qemu sandbox answers exec after kill -9 and a restart 0.3 s later" \
		"qemu sandbox keeps its QEMU process" "qemu sandbox answers exec after SIGTERM and an immediate restart" \
		"qemu sandbox can be deleted"; do
		N=$((N + 1)); echo "ok $N - $t # SKIP qemu unavailable or SILO_SKIP_VM_TESTS=1"
	done
else
	Q=$(api POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d '{"provider":"qemu","name":"vm-q","vcpus":1,"memory_mb":256}' | jget 'j.get("id","")')
	check "qemu sandbox created" test -n "$Q"
	PQ=$(pid_of "$Q")
	exec_json "$Q" '{"argv":["echo","vm-before"]}' > /dev/null
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	sleep 0.3
	start_daemon || notok "silod restarts 0.3 s after kill -9 with a qemu sandbox"
	out=$(exec_json "$Q" '{"argv":["echo","vm-after"]}' | ndjson_out)
	check "qemu sandbox answers exec after kill -9 and a restart 0.3 s later" test "$out" = "vm-after||0"
	[ "$out" = "vm-after||0" ] || { echo "# got: $out"; grep -m3 "recover $Q" "$TMP/silod.log" | sed 's/^/#   /'; }
	check "qemu sandbox keeps its QEMU process" test "$(pid_of "$Q")" = "$PQ" -a -n "$PQ"
	stop_daemon
	start_daemon || notok "silod restarts at once after SIGTERM with a qemu sandbox"
	out=$(exec_json "$Q" '{"argv":["echo","vm-again"]}' | ndjson_out)
	check "qemu sandbox answers exec after SIGTERM and an immediate restart" test "$out" = "vm-again||0"
	[ "$out" = "vm-again||0" ] || { echo "# got: $out"; grep -m3 "recover $Q" "$TMP/silod.log" | sed 's/^/#   /'; }
	api DELETE "/v1/sandboxes/$Q" > /dev/null
	check "qemu sandbox can be deleted" test "$(status)" = 200
fi

stop_daemon
check_clean_exit "restarted silod exits cleanly"
exit $((FAILED > 0))
