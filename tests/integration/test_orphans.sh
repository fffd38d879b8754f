#!/usr/bin/env bash
# Sandboxes die with their owner (lib/core/owner.h), performed as an attacker
# would: kill -9 of an embedded `silo run` (namespace and qemu, after the
# command started and in the middle of the boot) leaves no process, cgroup,
# mount, run dir, record or QEMU within a bound; --timeout holds when the CLI is
# killed or stopped; a sandbox whose `silo run` AND watchdog were killed is swept
# by the next `silo run` and by silod's start, while those of a live `silo run`
# and of another silod (live or dead) are left alone; through silod, `silo run`
# binds its sandbox to itself (also across a silod restart). TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
GONE_S=${GONE_S:-8}   # bound for a torn-down sandbox to disappear (ASan build, loaded host)
PIDS=()
orphan_cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for r in "$SILO_RUNTIME_DIR"/owners/*; do   # anything a failed case left: our ids only
		[ -f "$r" ] || continue
		sp=$(awk '$1=="sandbox"{print $2}' "$r")
		[ -n "$sp" ] && kill -KILL "$sp" 2>/dev/null
		id=${r##*/}
		for c in $(find /sys/fs/cgroup -maxdepth 4 -type d -path "*/silo/$id" 2>/dev/null); do
			for t in $(cat "$c/cgroup.procs" 2>/dev/null); do kill -KILL "$t" 2>/dev/null; done
			sleep 0.1; rmdir "$c" 2>/dev/null
		done
	done
	[ -n "${D2PID:-}" ] && kill -KILL "$D2PID" 2>/dev/null
}
trap 'echo "1..$N"; orphan_cleanup; cleanup' EXIT

alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$s" ] && [[ $s != Z* ]]; }
rec() { cat "$SILO_RUNTIME_DIR/owners/$1" 2>/dev/null; }
recf() { rec "$1" | awk -v k="$2" '$1==k{print $2}'; }   # recf ID KEY -> pid
cgroups_of() { find /sys/fs/cgroup -maxdepth 4 -type d -path "*/silo/$1" 2>/dev/null; }
mounts_under() { grep -c " $SILO_RUNTIME_DIR/" /proc/self/mountinfo; }

# start_run NAME ARGS... : a background `silo run ... -- sh -c 'echo up; exec sleep 1000'`;
# sets CLI, waits for "up" (or for the record's sandbox line with WAIT=spawn), sets ID WD SP.
start_run() {
	local name=$1 wait=${WAIT:-up} limit=${LIMIT:-20}; shift
	local before; before=$(ls "$SILO_RUNTIME_DIR/owners" 2>/dev/null)
	"$@" > "$TMP/$name.out" 2> "$TMP/$name.err" &
	CLI=$!; PIDS+=("$CLI")
	ID=; WD=; SP=
	local i
	for i in $(seq 1 $((limit * 20))); do
		[ -z "$ID" ] && ID=$(comm -13 <(echo "$before") <(ls "$SILO_RUNTIME_DIR/owners" 2>/dev/null) | head -1)
		if [ -n "$ID" ]; then
			WD=$(recf "$ID" watchdog); SP=$(recf "$ID" sandbox)
			if [ "$wait" = spawn ] && [ -n "$SP" ]; then break; fi
			if [ "$wait" = up ] && grep -q '^up$' "$TMP/$name.out"; then break; fi
		fi
		alive "$CLI" || break
		sleep 0.05
	done
	[ -n "$WD" ] && PIDS+=("$WD")
}

# gone ID SANDBOX_PID [WATCHDOG]: wait up to GONE_S for nothing of it to be left; ELAPSED in ms
gone() {
	local id=$1 sp=$2 wd=${3:-} t0 i
	t0=$(date +%s%N)
	for i in $(seq 1 $((GONE_S * 20))); do
		if ! alive "$sp" && [ -z "$(cgroups_of "$id")" ] && [ ! -e "$SILO_RUNTIME_DIR/sandboxes/$id" ] &&
			[ ! -e "$SILO_RUNTIME_DIR/owners/$id" ] && ! pgrep -f "silo-$id" > /dev/null &&
			[ "$(mounts_under)" = 0 ] && { [ -z "$wd" ] || ! alive "$wd"; }; then
			ELAPSED=$((($(date +%s%N) - t0) / 1000000))
			return 0
		fi
		sleep 0.05
	done
	echo "# left of $id: pid $sp alive=$(alive "$sp" && echo y || echo n) cgroups=[$(cgroups_of "$id")]" \
		"rundir=$(ls -d "$SILO_RUNTIME_DIR/sandboxes/$id" 2>/dev/null) record=[$(rec "$id" | tr '\n' ' ')]" \
		"tagged=[$(pgrep -f "silo-$id")] mounts=$(mounts_under) watchdog=${wd:+$(alive "$wd" && echo alive || echo gone)}"
	return 1
}
intact() { alive "$2" && [ -d "$SILO_RUNTIME_DIR/sandboxes/$1" ] && [ -e "$SILO_RUNTIME_DIR/owners/$1" ]; }
# orphan: kill the watchdog first, then the CLI: nobody is left to tear the sandbox down
make_orphan() {
	start_run "$1" "$SILO" run --provider namespace -- sh -c 'echo up; exec sleep 1000'
	kill -KILL "$WD" "$CLI" 2>/dev/null
	wait "$CLI" 2>/dev/null
}

if ! "$SILO" run --provider namespace -- true > /dev/null 2> "$TMP/probe.err"; then
	skip_all "namespace provider unavailable here: $(head -c 200 "$TMP/probe.err")"
fi

# -- 1. kill -9 of `silo run --provider namespace -- sleep 1000`
start_run ns "$SILO" run --provider namespace -- sh -c 'echo up; exec sleep 1000'
check "the sandbox has a record naming its owner, watchdog and init" \
	bash -c "test -n '$ID' -a -n '$WD' -a -n '$SP' && grep -q '^kind run$' '$SILO_RUNTIME_DIR/owners/$ID' &&
		grep -q '^owner $CLI ' '$SILO_RUNTIME_DIR/owners/$ID'"
check "the watchdog runs in its own session" test "$(ps -o sid= -p "$WD" | tr -d ' ')" = "$WD"
SLEEPS=$(cat $(cgroups_of "$ID" | head -1)/cgroup.procs 2>/dev/null | wc -l)
check "the command runs in the sandbox's cgroup" test "$SLEEPS" -ge 2
kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
if gone "$ID" "$SP" "$WD"; then ok "kill -9 of silo run (namespace): init, processes, cgroups, mounts, run dir, record, watchdog gone in ${ELAPSED} ms"
else notok "kill -9 of silo run (namespace): nothing left within ${GONE_S} s"; fi

# -- 2. kill -9 while the sandbox is still provisioning (an agent that never answers)
mkdir -p "$TMP/fake"
printf '#!/bin/sh\nexec sleep 1000\n' > "$TMP/fake/silo-agent"; chmod +x "$TMP/fake/silo-agent"
WAIT=spawn start_run boot env SILO_LIBEXEC_DIR="$TMP/fake" SILO_BOOT_TIMEOUT_MS=60000 "$SILO" run --provider namespace -- true
check "a sandbox is provisioning (init started, no handshake)" bash -c "test -n '$SP' && kill -0 '$SP'"
kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
if gone "$ID" "$SP" "$WD"; then ok "kill -9 of silo run mid-boot: nothing left (${ELAPSED} ms)"
else notok "kill -9 of silo run mid-boot: nothing left within ${GONE_S} s"; fi

# -- 3. --timeout 2, CLI killed: the command is dead by ~2 s anyway
start_run to1 "$SILO" run --provider namespace --timeout 2 -- sh -c 'echo up; exec sleep 1000'
T0=$(date +%s%N)
kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
GONE_S=3 gone "$ID" "$SP" "$WD"; rc=$?
took=$((($(date +%s%N) - T0) / 1000000))
check "--timeout 2 with the CLI killed: command and sandbox gone ${took} ms after the kill (bound 3 s)" test $rc = 0

# -- 4. --timeout 2, CLI stopped (SIGSTOP): the agent kills the command at 2 s, the
# watchdog removes the sandbox at 2 s + 5 s grace, although the CLI still exists
start_run to2 "$SILO" run --provider namespace --timeout 2 -- sh -c 'echo up; exec sleep 1000'
T0=$(date +%s%N)
kill -STOP "$CLI"
CG=$(cgroups_of "$ID" | grep /pids/ | head -1); [ -n "$CG" ] || CG=$(cgroups_of "$ID" | head -1)
sleeping() { for t in $(cat "$CG/cgroup.procs" 2>/dev/null); do [ "$(cat /proc/$t/comm 2>/dev/null)" = sleep ] && return 0; done; return 1; }
check "the command runs" sleeping
for _ in $(seq 1 80); do sleeping || break; sleep 0.05; done
took=$((($(date +%s%N) - T0) / 1000000))
check "--timeout 2 with the CLI stopped: the command is killed at ~2 s (${took} ms)" \
	bash -c "! (for t in \$(cat '$CG/cgroup.procs' 2>/dev/null); do [ \"\$(cat /proc/\$t/comm 2>/dev/null)\" = sleep ] && exit 0; done; exit 1) && test $took -lt 4500"
check "the stopped CLI still exists" alive "$CLI"
GONE_S=12 gone "$ID" "$SP"; rc=$?
took=$((($(date +%s%N) - T0) / 1000000))
check "and the watchdog tears the sandbox down after timeout + grace (${took} ms, expected ~7 s)" \
	bash -c "test $rc = 0 -a $took -ge 6000"
kill -CONT "$CLI"
for _ in $(seq 1 200); do alive "$CLI" || break; sleep 0.05; done
wait "$CLI"; rc=$?
check "the CLI, resumed, fails (exit $rc) and leaves nothing" bash -c "test $rc != 0 && ! kill -0 $WD 2>/dev/null && test ! -e '$SILO_RUNTIME_DIR/owners/$ID'"

# -- 5. qemu: kill -9 after the command started, and during the boot
cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
if [[ "${SILO_SKIP_VM_TESTS:-}" == 1 ]] || ! command -v qemu-system-x86_64 > /dev/null ||
	[[ ! -f "$cache/kernel/current/vmlinux" ]]; then
	N=$((N + 1)); echo "ok $N - qemu kill -9 # SKIP qemu or the guest kernel is missing (scripts/prepare-images.sh)"
else
	LIMIT=240 start_run qemu "$SILO" run --provider qemu -- sh -c 'echo up; exec sleep 1000'
	QP=$(pgrep -f "qemu-system.* -name silo-$ID" | head -1)   # QEMU itself (under silo-jailer: $SP)
	if grep -q '^up$' "$TMP/qemu.out" && [ -n "$QP" ]; then
		ok "a qemu sandbox runs the command (QEMU pid $QP, supervisor $SP)"
	else
		notok "a qemu sandbox runs the command" "$(head -c 600 "$TMP/qemu.err")"
	fi
	kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
	if gone "$ID" "$SP" "$WD" && ! alive "${QP:-0}"; then ok "kill -9 of silo run (qemu): QEMU, its jailer, sockets, run dir, record gone (${ELAPSED} ms)"
	else notok "kill -9 of silo run (qemu): nothing left within ${GONE_S} s"; fi
	WAIT=spawn start_run qboot "$SILO" run --provider qemu -- true
	kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
	if gone "$ID" "$SP" "$WD"; then ok "kill -9 of silo run (qemu) during the boot: nothing left (${ELAPSED} ms)"
	else notok "kill -9 of silo run (qemu) during the boot: nothing left within ${GONE_S} s"; fi
fi

# -- 6. the next `silo run` sweeps a dead owner's sandbox, never a live one's or a silod's
make_orphan o1; O1=$ID; O1P=$SP
sleep 0.5
check "with its CLI and watchdog killed, the sandbox is orphaned (still running)" intact "$O1" "$O1P"
start_run live "$SILO" run --provider namespace -- sh -c 'echo up; exec sleep 1000'
L=$ID; LP=$SP; LCLI=$CLI; LWD=$WD
# another silod (own state dir, same runtime dir) with a sandbox of its own
mkdir -p "$TMP/state2"
SILO_STATE_DIR=$TMP/state2 "$SILOD" --socket "$TMP/other.sock" > "$TMP/silod2.log" 2>&1 &
D2PID=$!
for _ in $(seq 1 200); do curl -s --unix-socket "$TMP/other.sock" http://silod/v1/health > /dev/null 2>&1 && break; sleep 0.05; done
D=$(curl -s --unix-socket "$TMP/other.sock" -H 'Content-Type: application/json' -X POST http://silod/v1/sandboxes \
	-d '{"provider":"namespace","name":"other","vcpus":1,"memory_mb":128}' | jget 'j.get("id","")')
DP=$(recf "$D" sandbox)
check "another silod's sandbox has a kind silod record" bash -c "test -n '$D' && grep -q '^kind silod$' '$SILO_RUNTIME_DIR/owners/$D'"
"$SILO" run --provider namespace -- true; rc=$?
check "the next silo run succeeds" test $rc = 0
if gone "$O1" "$O1P"; then ok "it swept the orphan: init, cgroups, run dir, record gone"
else notok "it swept the orphan"; fi
check "it left the live silo run's sandbox alone" bash -c "$(declare -f alive intact); intact '$L' '$LP' && kill -0 $LCLI"
check "it left the other silod's sandbox alone" bash -c "$(declare -f alive intact); intact '$D' '$DP'"
kill -KILL "$D2PID"; wait "$D2PID" 2>/dev/null
"$SILO" run --provider namespace -- true
check "and still leaves it alone once that silod is dead (its restart reattaches it)" \
	bash -c "$(declare -f alive intact); intact '$D' '$DP'"

# -- 7. silod's start sweeps dead owners' sandboxes in its runtime dir, not live ones
make_orphan o2; O2=$ID; O2P=$SP
start_daemon || notok "silod starts"
if gone "$O2" "$O2P"; then ok "silod start swept the orphan of a dead silo run"
else notok "silod start swept the orphan of a dead silo run"; fi
check "the sweep is audited" grep -q "\"sandbox_id\":\"$O2\",\"event\":\"orphan-reaped\"" "$SILO_STATE_DIR/audit.jsonl"
# a child silod forks for a spawn and that has not exec'd yet must not keep the state dir locked
# after kill -9 of silod (the restart would be refused): the lock is per process (POSIX), not flock
LOCKINO=$(stat -c %i "$SILO_STATE_DIR/silod.lock")
check "silod's state-dir lock is a POSIX lock held by silod itself" \
	bash -c "grep -E '^[0-9]+: POSIX +ADVISORY +WRITE $DPID [0-9a-f]+:[0-9a-f]+:$LOCKINO ' /proc/locks > /dev/null"
check "silod left the live silo run's sandbox alone" bash -c "$(declare -f alive intact); intact '$L' '$LP'"
check "and the dead other silod's sandbox" bash -c "$(declare -f alive intact); intact '$D' '$DP'"
stop_daemon
SILO_STATE_DIR=$TMP/state2 "$SILOD" --socket "$TMP/other.sock" > "$TMP/silod2b.log" 2>&1 &
D2PID=$!
for _ in $(seq 1 200); do curl -s --unix-socket "$TMP/other.sock" http://silod/v1/health > /dev/null 2>&1 && break; sleep 0.05; done
st=$(curl -s --unix-socket "$TMP/other.sock" "http://silod/v1/sandboxes/$D" | jget 'j.get("state","")')
check "the other silod, restarted, reattaches its sandbox" test "$st" = running
curl -s --unix-socket "$TMP/other.sock" -X DELETE "http://silod/v1/sandboxes/$D?grace_ms=0" > /dev/null
check "and deletes it: record and run dir gone" gone "$D" "$DP"
kill -TERM "$D2PID"; wait "$D2PID" 2>/dev/null; D2PID=
kill -KILL "$LCLI"; wait "$LCLI" 2>/dev/null
check "the live silo run, killed at last, leaves nothing either" gone "$L" "$LP" "$LWD"
# -- 8. through silod: `silo run` binds its sandbox to itself (?bind=client), also across a restart
start_daemon || notok "silod starts"
api POST '/v1/sandboxes?bind=nobody' -H 'Content-Type: application/json' -d '{"provider":"namespace"}' > "$TMP/bind.json"
check "bind=nobody is refused naming the field" bash -c "test $(status) = 400 && grep -q '\"bind' '$TMP/bind.json'"
start_run srv "$SILO" run --provider namespace -- sh -c 'echo up; exec sleep 1000'
B=$ID; BP=$SP
check "silo run went through silod: a kind silod record bound to the CLI" \
	bash -c "test -n '$B' && grep -q '^kind silod$' '$SILO_RUNTIME_DIR/owners/$B' && grep -q '^client $CLI ' '$SILO_RUNTIME_DIR/owners/$B'"
kill -STOP "$CLI"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon || notok "silod restarts"
check "after a silod restart the sandbox is back, still bound" bash -c "test \"\$(curl -s --unix-socket '$SOCK' http://silod/v1/sandboxes/$B | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = running && grep -q '^client $CLI ' '$SILO_RUNTIME_DIR/owners/$B'"
kill -KILL "$CLI"; wait "$CLI" 2>/dev/null
if gone "$B" "$BP"; then ok "kill -9 of silo run through silod: silod deletes the bound sandbox (${ELAPSED} ms)"
else notok "kill -9 of silo run through silod: silod deletes the bound sandbox"; fi
st=$(api GET "/v1/sandboxes/$B/logs")
check "its row ends terminated, stopped because its client exited" \
	bash -c "echo '$st' | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"terminated\", j
assert any(s[\"state\"]==\"stopping\" and \"client (pid $CLI) exited\" in s[\"reason\"] for s in j[\"states\"]), j'"
stop_daemon

left=$(ls "$SILO_RUNTIME_DIR/sandboxes" "$SILO_RUNTIME_DIR/owners" 2>/dev/null | grep -c '^sb-')
check "no run dir or record left at all" test "$left" = 0
exit $((FAILED > 0))
