#!/usr/bin/env bash
# silo-jailer on its own, with busybox-static as the jailed program (a static binary:
# the jail's root holds only /bin/busybox): the program runs as the given uid with no
# capabilities, sees only its files, read-only; the seccomp filter refuses other socket
# families, signals to other processes, mounts and new namespaces; its stdout is capped
# keeping the tail; its cgroup is gone after it exits; bad arguments are refused.
# QEMU under the jailer: tests/integration/test_qemu_jail.c.
set -u
B=${SILO_BUILD_ROOT:?SILO_BUILD_ROOT not set}
J=$B/vmm/silo-jailer
N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else notok "$name" "command: $*"; fi; }
echo "1..12"
if [ "$(id -u)" != 0 ]; then for i in $(seq 1 12); do echo "ok $i # SKIP silo-jailer needs root"; done; exit 0; fi
BB=$(command -v busybox)
file -b "$BB" | grep -q 'statically linked' || { for i in $(seq 1 12); do echo "ok $i # SKIP busybox is not busybox-static"; done; exit 0; }
T=$(mktemp -d /tmp/silo-jailer-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/root"
U=1610678270   # the last uid of the VM range
ID=jt-$$
jail() { # jail LOGMAX SCRIPT -> exit status; output in $T/out
	"$J" --id "$ID" --root "$T/root" --uid $U --gid $U --memory-mib 64 --pids 32 --nproc 32 --fsize 1048576 \
		--ro "$BB" /bin/busybox --log "1+2:$1:$T/out" -- /bin/busybox sh -c "$2" 2>"$T/jailer.err"
}
# (no applet links in the jail: applets are run as "busybox APPLET"; kill is a shell builtin)
jail 65536 'busybox id -u; busybox id -g; busybox ls -a /; busybox ls /bin; busybox touch /x 2>&1; echo w > /bin/busybox 2>&1; true'
check "the program runs as the given uid and gid" bash -c "test \"\$(head -2 '$T/out' | busybox tr '\n' ' ')\" = '$U $U '"
check "its root holds only its files" bash -c "grep -qx bin '$T/out' && ! grep -qE '^(etc|proc|tmp|root|home|dev)$' '$T/out'"
check "its root and its files are read-only" bash -c "test \$(grep -c 'Read-only file system' '$T/out') = 2"
jail 65536 'busybox cat /proc/self/status 2>&1 | busybox head -1; busybox nc 127.0.0.1 22 2>&1; echo nc=$?'
check "no /proc in the jail" grep -q "No such file" "$T/out"
check "an AF_INET socket is refused (EAFNOSUPPORT)" grep -qi "family not supported" "$T/out"
jail 65536 'kill -0 1 2>&1; echo kill=$?; busybox sleep 2 >&- 2>&- & kill $! 2>&1; echo samekill=$?; busybox mount -t tmpfs t /bin 2>&1; echo mount=$?; busybox unshare -n busybox true 2>&1; echo unshare=$?'
check "signalling another process is refused, even one of its own uid (seccomp)" \
	bash -c "grep -q 'kill=1' '$T/out' && grep -q 'samekill=1' '$T/out'"
check "mount is refused" bash -c "grep -q 'mount=' '$T/out' && ! grep -q 'mount=0' '$T/out' && grep -q 'mount.*Operation not permitted\|mount.*ermission denied' '$T/out'"
check "a new namespace is refused" bash -c "grep -q 'unshare=1' '$T/out' && grep -q 'unshare.*Operation not permitted' '$T/out'"
# 1 MB of output against a 64 KiB cap: capped, the tail kept
jail 65536 'i=0; while [ $i -lt 20000 ]; do echo "line $i of the flood ......................................"; i=$((i+1)); done; echo END-OF-FLOOD'
size=$(stat -c %s "$T/out")
check "stdout is capped (a $size-byte log for ~1.1 MB, cap 65536) and ends with the newest line" \
	bash -c "test $size -le 65536 && tail -1 '$T/out' | grep -qx END-OF-FLOOD && head -1 '$T/out' | grep -q '^\[silo: '"
check "its cgroup is removed when it exits" bash -c "! ls -d /sys/fs/cgroup/*/silo/$ID /sys/fs/cgroup/silo/$ID /sys/fs/cgroup/unified/silo/$ID 2>/dev/null | grep -q ."
check "the jail root is empty on the host" bash -c "test -z \"\$(ls -A '$T/root')\""
"$J" --id "$ID" --root "$T/root" --ro "$BB" /bin/busybox -- /bin/busybox true 2>"$T/err1"; rc1=$?
"$J" --id "$ID" --root "$T/root" --uid 0 --gid 0 -- /bin/busybox true 2>"$T/err2"; rc2=$?
"$J" --id "$ID" --root "$T/root" --uid $U --gid $U --ro "$BB" /bin/../etc -- /bin/busybox true 2>"$T/err3"; rc3=$?
check "bad arguments are refused: no uid as root, uid 0, a DST with .." \
	bash -c "test $rc1 = 2 && grep -q 'uid' '$T/err1' && test $rc2 = 2 && test $rc3 = 2 && grep -q DST '$T/err3'"
exit $FAILED
