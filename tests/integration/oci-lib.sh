#!/usr/bin/env bash
# Shared by the silo-oci tests (test_oci_runtime.sh, test_oci_podman.sh,
# test_oci_containerd.sh): TAP helpers, the checks that make a test skip, the
# test images (oci-fixtures.sh), the namespace provider's availability, and
# what "nothing left" means. Sourced after B, S and TMP are set and the TOOLS
# array lists the commands the test needs; sets SO, F and CG_BEFORE.
N=0 FAILED=0
SO="$B/runtime/silo-oci"
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
skip() { N=$((N + 1)); echo "ok $N - $1 # SKIP $2"; }
skip_all() { echo "1..0 # SKIP $1"; rm -rf "$TMP"; exit 0; }
log() { echo "# $*"; }
[[ $(id -u) -eq 0 ]] || skip_all "silo-oci and the engines need root here"
bb=$(command -v busybox || true)
[[ -x /bin/busybox ]] && bb=/bin/busybox
[[ -n "$bb" ]] || skip_all "busybox not installed"
for t in buildah skopeo podman python3 "${TOOLS[@]}"; do
	command -v "$t" > /dev/null || skip_all "$t not installed (scripts/setup-debian.sh installs it)"
done
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
export SILO_CACHE_DIR="$TMP/cache" SILO_STATE_DIR="$TMP/state" SILO_RUNTIME_DIR="$TMP/run"
source "$S/tests/integration/oci-fixtures.sh" || exit 1
probe=$("$B/cli/silo" run --provider namespace -- true 2>&1) ||
	{ grep -q PROVIDER_UNAVAILABLE <<< "$probe" && skip_all "the namespace provider is unavailable: $probe"; }
# Every engine test on this host (any checkout, any cache) names its sandbox
# cgroups oci-*: one at a time, so that what one leaves is not blamed on
# another (fd 9 stays locked until the test exits).
exec 9>/tmp/silo-oci-engine-tests.lock && flock 9
CG_BEFORE=$(ls -d /sys/fs/cgroup/*/silo/oci-* /sys/fs/cgroup/unified/silo/oci-* 2> /dev/null)

# Runs a command line on a fresh terminal (script(1)) with the engine in the
# terminal's foreground process group, as a user at a terminal runs it.
# script runs the line with $SHELL (dash when unset, as in CI): a plain
# `timeout` there moves itself to a process group of its own, where the
# engine's tcsetattr() on the terminal stops it with SIGTTOU until the
# timeout; --foreground keeps the group. The outer timeout bounds script,
# which waits for every holder of the terminal. Its stdin is a pipe that stays
# open and silent: at EOF of a /dev/null stdin script writes the terminal's EOF
# character to the command (seen as a stray ^@ under load) or kills the session.
in_terminal() {
	local hold sp
	exec {hold}< <(exec sleep 100)
	sp=$!
	timeout -k 5 90 script -qec "exec timeout --foreground -k 5 60 $1" /dev/null <&"$hold" 2>&1 | tr -d '\r'
	kill "$sp" 2> /dev/null
	exec {hold}<&-
}

# No sandbox run directory, runtime state (under ROOT), mount below TMP or new
# oci-* cgroup is left; extra "what:command" pairs must print nothing either.
nothing_left() {
	local left="" x
	[[ -z "$(ls -A "$SILO_RUNTIME_DIR/sandboxes" 2> /dev/null)" ]] || left+=" sandboxes:$(ls "$SILO_RUNTIME_DIR/sandboxes")"
	[[ -z "$(ls -A "$ROOT" 2> /dev/null)" ]] || left+=" state:$(ls "$ROOT")"
	grep -q "$SILO_RUNTIME_DIR" /proc/self/mountinfo && left+=" mounts"
	for c in /sys/fs/cgroup/*/silo/oci-* /sys/fs/cgroup/unified/silo/oci-*; do
		[[ -e "$c" ]] && ! grep -q "$c" <<< "$CG_BEFORE" && left+=" cgroup:$c"
	done
	for x in "$@"; do
		local out
		out=$(bash -c "${x#*:}" 2> /dev/null)
		[[ -z "$out" ]] || left+=" ${x%%:*}:$(tr '\n' ' ' <<< "$out")"
	done
	[[ -z "$left" ]] || log "left:$left"
	[[ -z "$left" ]]
}
