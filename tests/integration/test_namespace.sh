#!/usr/bin/env bash
# namespace provider end to end through the real `silo run`: exit status,
# env/workdir/stdin/large output, isolation (network, host filesystem, other
# sandboxes, processes, memory and pids limits) and cleanup verification (no
# cgroup, mount, run dir, agent process or loop device left) after
# a normal exit, a kill -9 of the sandbox init and a boot timeout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
SILO="$B/cli/silo"
. "$(dirname "$0")/../tap.sh"
[[ $(id -u) = 0 ]] || skip_all "the namespace provider needs root"
TMP=$(mktemp -d /tmp/silo-ns-test.XXXXXX)
export SILO_RUNTIME_DIR="$TMP/run" SILO_STATE_DIR="$TMP/state" SILO_CACHE_DIR="$TMP/cache"
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
run() { timeout 60 "$SILO" run --provider namespace "$@"; }

# Other engineers' sandboxes may exist on the same host. A sandbox process is
# ours if its fd 3 is the listening socket bound in our runtime dir (nothing
# inside a sandbox names a host path any more); a cgroup is ours if it is new
# since the start and is empty (leaked) or holds such a process; a loop device
# is ours if its backing file is in our cache dir.
silo_cgroups() { find /sys/fs/cgroup -maxdepth 4 -path '*/silo/sb-*' -type d 2>/dev/null | sort; }
BASELINE=$(silo_cgroups)
ours() { # ours PID: is fd 3 of PID a socket bound in $SILO_RUNTIME_DIR?
	local ino; ino=$(readlink "/proc/$1/fd/3" 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
	[[ -n "$ino" ]] && awk -v i="$ino" '$7 == i {print $8}' /proc/net/unix | grep -qF "$SILO_RUNTIME_DIR"
}
new_cgroups() {
	comm -13 <(echo "$BASELINE") <(silo_cgroups) | while read -r d; do
		[[ -n "$d" && -f "$d/cgroup.procs" ]] || continue
		procs=$(cat "$d/cgroup.procs" 2>/dev/null)
		if [[ -z "$procs" ]]; then echo "$d"; continue; fi
		for p in $procs; do ours "$p" && { echo "$d"; break; }; done
	done
}
residue() {
	{
		new_cgroups
		grep -F "$SILO_RUNTIME_DIR" /proc/mounts
		find "$SILO_RUNTIME_DIR/sandboxes" -mindepth 1 2>/dev/null
		pgrep -f "silo-agent --init --listen-fd" 2>/dev/null | while read -r p; do ours "$p" && echo "pid $p"; done
		losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$SILO_CACHE_DIR"
	} | sed '/^$/d'
}
# A leak persists; another user's sandbox being created or torn down at that
# moment does not: look twice, a second apart, before calling it residue.
clean() {
	local r; r=$(residue)
	[[ -z "$r" ]] && return 0
	sleep 1
	local r2; r2=$(residue)
	r=$(comm -12 <(echo "$r" | sort) <(echo "$r2" | sort))
	[[ -z "$r" ]] || { echo "# residue: $r" | head -5; return 1; }
}

out=$(run -- sh -c 'echo hi; exit 3' </dev/null); rc=$?
check "prints hi" test "$out" = hi
check "exit status 3 passed through" test $rc = 3
check "no residue after a normal exit" clean
out=$(run -e FOO=bar -e X=1 -w /tmp -- sh -c 'echo $FOO$X; pwd' </dev/null)
check "-e and -w apply" test "$out" = "$(printf 'bar1\n/tmp')"
out=$(printf 'line1\nline2\n' | run -- sh -c 'wc -l')
check "stdin is streamed" test "$(echo $out)" = 2
n=$(run -- sh -c 'head -c 20000000 /dev/zero' </dev/null | wc -c)
check "20 MB of output arrives intact" test "$n" = 20000000
run -- sh -c 'echo err >&2' </dev/null 2>"$TMP/e" >/dev/null
check "stderr is separate" grep -qx err "$TMP/e"
out=$(run -- sh -c 'kill -9 $$' </dev/null); rc=$?
check "killed by a signal: 128+9" test $rc = 137

# isolation
out=$(run -- sh -c 'nc -w 2 1.1.1.1 80 </dev/null >/dev/null 2>&1; echo rc=$?; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "' </dev/null)
check "no network: connecting out fails" grep -q '^rc=[1-9]' <<<"$out"
check "only lo in the network namespace" test "$(tail -n +2 <<<"$out")" = lo
out=$(run -- sh -c 'ls /work /home/* /etc/debian_version 2>&1; ls /' </dev/null)
check "host filesystem not visible" bash -c "! grep -q '^/etc/debian_version\$' <<<'$out' && grep -q 'No such file' <<<'$out'"
# The control sandbox says when it is up (a loaded host can take seconds to
# start it): look for residue only then, while it sleeps.
run -- sh -c 'echo secret > /root/a; echo up; sleep 3' </dev/null >"$TMP/bg-up" &
bg=$!
for _ in $(seq 300); do grep -q up "$TMP/bg-up" 2>/dev/null && break; sleep 0.1; done
r=$(residue)
check "control: the residue check sees a running sandbox (its agent, cgroup and loop device)" \
	bash -c "[ $(grep -c '^pid ' <<<"$r") -ge 1 ] && [ $(grep -c '/dev/loop' <<<"$r") -ge 1 ]"
out=$(run -- sh -c 'cat /root/a 2>&1; ls /proc | grep -c "^[0-9]"' </dev/null)
check "a second sandbox cannot see the first one's files" grep -q 'No such file' <<<"$out"
procs=$(tail -1 <<<"$out")
check "only the sandbox's own processes are visible ($procs)" test "$procs" -le 4
wait $bg
out=$(run -- sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; cat /proc/self/status | grep -E "^(CapBnd|NoNewPrivs|Seccomp):"' </dev/null)
check "PID 1 is the agent" grep -q '^silo-agent --init' <<<"$out"
check "no_new_privs and seccomp filter set" bash -c "grep -q 'NoNewPrivs:.1' <<<'$out' && grep -q 'Seccomp:.2' <<<'$out'"
check "capability bounding set reduced" bash -c "! grep -q 'CapBnd:.000001ffffffffff' <<<'$out' && grep -q CapBnd <<<'$out'"
out=$(run -- sh -c 'mount -t tmpfs x /mnt 2>&1; echo rc=$?' </dev/null)
check "mount is denied by seccomp" grep -q 'rc=[1-9]' <<<"$out"
out=$(run --memory 128 -- sh -c 'a=$(head -c 400000000 /dev/zero | tr "\\0" x); echo survived' </dev/null 2>&1); rc=$?
check "memory limit kills a hog (rc=$rc)" bash -c "[[ $rc -ne 0 ]] && ! grep -q survived <<<'$out'"
run -- sh -c 'i=0; while [ $i -lt 1500 ]; do sleep 4 & i=$((i+1)); done 2>/dev/null; wait' </dev/null >/dev/null 2>&1 &
bg=$!
peak=0 events=0 sid=""
for _ in $(seq 300); do
	[[ -z "$sid" ]] && sid=$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | head -1)
	for d in /sys/fs/cgroup/pids/silo/$sid /sys/fs/cgroup/silo/$sid /sys/fs/cgroup/unified/silo/$sid; do
		[[ -n "$sid" && -f $d/pids.current ]] || continue
		c=$(cat "$d/pids.current" 2>/dev/null || echo 0); ((c > peak)) && peak=$c
		e=$(awk '/^max/{print $2}' "$d/pids.events" 2>/dev/null); [[ -n "$e" ]] && ((e > events)) && events=$e
	done
	((events > 0)) && break
	sleep 0.1
done
check "pids limit stops a fork bomb (peak $peak, denied forks $events)" bash -c "(( $peak <= 1024 && $events > 0 ))"
check "no residue after the isolation tests" clean

# kill -9 of the sandbox init while a command runs
run -- sleep 30 </dev/null >/dev/null 2>"$TMP/k" &
bg=$!
for _ in $(seq 50); do pf=$(ls "$SILO_RUNTIME_DIR"/sandboxes/*/pid 2>/dev/null | head -1); [[ -n "$pf" ]] && break; sleep 0.1; done
ipid=$(cut -d' ' -f1 "$pf" 2>/dev/null)
sleep 0.3
[[ -n "$ipid" ]] && kill -9 "$ipid"
wait $bg; rc=$?
check "silo run reports the lost sandbox (rc=$rc)" test $rc -ne 0 -a $rc -ne 137
check "no residue after kill -9 of the init" clean

# boot timeout: an agent that never answers
mkdir -p "$TMP/fake"
printf '#!/bin/sh\nexec sleep 1000\n' > "$TMP/fake/silo-agent"; chmod +x "$TMP/fake/silo-agent"
SILO_LIBEXEC_DIR="$TMP/fake" SILO_BOOT_TIMEOUT_MS=1500 run -- true </dev/null 2>"$TMP/bt"; rc=$?
check "BOOT_TIMEOUT when the agent never answers" grep -q BOOT_TIMEOUT "$TMP/bt"
check "boot timeout exits 125 or its code status (rc=$rc)" test $rc -ne 0
check "no residue after a boot timeout" clean
[[ -s "$TMP/bt" ]] && sed 's/^/# /' "$TMP/bt" | head -3
# --spec (hac.toml), --timeout, signal forwarding, bad options
cat > "$TMP/spec.toml" <<'TOML'
[vm]
name = "spec-run"
provider = "namespace"
[resources]
vcpus = 1
memory_mb = 256
[sandbox]
workdir = "/tmp"
pids_max = 40
[sandbox.env]
FROM_SPEC = "yes"
TOML
out=$(timeout 60 "$SILO" run --spec "$TMP/spec.toml" -- sh -c 'echo $FROM_SPEC $(pwd)' </dev/null)
check "--spec: env and workdir from hac.toml" test "$out" = "yes /tmp"
out=$(timeout 60 "$SILO" run --spec "$TMP/spec.toml" -- sh -c 'i=0; while [ $i -lt 80 ]; do sleep 2 & i=$((i+1)); done; wait' </dev/null 2>&1)
check "--spec: pids_max = 40 stops the 80th fork" grep -qi "fork" <<<"$out"
t0=$(date +%s)
timeout 60 "$SILO" run --provider namespace --timeout 1 -- sleep 20 </dev/null 2>"$TMP/to"; rc=$?
check "--timeout 1 kills the command: exit 124 (rc=$rc)" test $rc = 124
check "--timeout reports TIMEOUT quickly" bash -c "grep -q TIMEOUT '$TMP/to' && (( $(date +%s) - $t0 < 10 ))"
"$SILO" run --provider namespace -- sleep 20 </dev/null >/dev/null 2>&1 &
sp=$!
sleep 1
kill -TERM $sp
wait $sp; rc=$?
check "SIGTERM to silo run is forwarded to the command (rc=$rc)" test $rc = 143
"$SILO" run --provider namespace --memory abc -- true 2>"$TMP/bad"; rc=$?
check "bad --memory: INVALID_CONFIG naming the option" bash -c "[[ $rc != 0 ]] && grep -q 'INVALID_CONFIG.*--memory' '$TMP/bad'"
"$SILO" run --provider namespace -e NOEQUALS -- true 2>"$TMP/bad"; rc=$?
check "bad -e: INVALID_CONFIG" bash -c "[[ $rc != 0 ]] && grep -q 'INVALID_CONFIG.*-e' '$TMP/bad'"
check "no residue after spec/timeout/signal runs" clean

# A sandbox process that tries to outlive its sandbox: double-forked (its parent
# exits, the agent init adopts it), setsid'ed, SIGTERM/SIGHUP/SIGINT ignored,
# its name on its command line. The cleanup verification no longer scans every
# host process for such a namespace sandbox (the kernel kills a pid namespace
# with its init): this checks that the escapee really is gone from the host
# the moment `silo run` returns, and that the run still reports a clean host.
TOK="esc$$x$RANDOM"
inner='trap "" TERM HUP INT; while :; do sleep 1; done'
out=$(run -- sh -c '(setsid sh -c "$1" "$2" </dev/null >/dev/null 2>&1 &); sleep 0.5
	for p in /proc/[0-9]*; do [ "$p" != /proc/$$ ] && grep -q "$2" "$p/cmdline" 2>/dev/null && { set -- $(cat "$p/stat"); echo "up ppid=$4"; break; }; done' \
	_ "$inner" "$TOK" </dev/null 2>"$TMP/esc.err"); rc=$?
check "escapee started detached inside the sandbox (adopted by the init): $out" bash -c "[[ '$out' == 'up ppid=1' ]]"
check "the run exits 0, host clean (no CLEANUP_FAILED) (rc=$rc)" bash -c "[[ $rc = 0 ]] && ! grep -q CLEANUP_FAILED '$TMP/esc.err'"
check "no process of the escapee is left on the host" bash -c "! pgrep -f '[${TOK:0:1}]${TOK:1}' >/dev/null"
check "no residue after the escape attempt" clean

# with silod running, `silo run` goes through it (the sandbox shows up in `silo ps`)
SILOD="$B/daemon/silod"
if [[ -x "$SILOD" ]]; then
	"$SILOD" --fallback namespace >"$TMP/silod.log" 2>&1 &
	dpid=$!
	for _ in $(seq 50); do [[ -S "$SILO_RUNTIME_DIR/silod.sock" ]] && break; sleep 0.1; done
	out=$(timeout 60 "$SILO" run -e A=b -- sh -c 'echo via $A; exit 5' </dev/null); rc=$?
	check "through silod: output and exit status" test "$out/$rc" = "via b/5"
	check "through silod: the sandbox is in silod's registry" bash -c "'$SILO' ps --all | grep -q 'namespace *terminated'"
	kill $dpid; wait $dpid 2>/dev/null
	rm -f "$SILO_RUNTIME_DIR/silod.sock"
	check "no residue after runs through silod" clean
else
	echo "# silod not built: daemon path not tested"
fi
exit $((FAILED > 0))
