#!/usr/bin/env bash
# Attacks on the namespace sandbox (issue 21, docs/security.md "Namespace
# sandbox"), each performed for real, first through `silo run`, then through
# silod with a scoped token on TCP:
#   - the core_pattern escape: read the upper layer's host path from mountinfo,
#     write /pwn.sh, point kernel.core_pattern at it (the recipe, and the
#     path-free "|/proc/%P/root/pwn.sh" variant), crash a process: the write
#     must fail and nothing may run on the host. The host's core_pattern is
#     never meant to change: if it ever does, it is restored at once and the
#     test fails;
#   - writes to kernel.modprobe, vm.*, kernel.randomize_va_space,
#     /proc/sysrq-trigger (each writes the value already there: harmless even
#     if it worked) must fail;
#   - every masked /proc and /sys entry (read from lib/providers/ns-masks.h)
#     reads empty, every read-only one refuses writes;
#   - the sandbox's mount table has its overlay root and no ext4 (the disk's
#     filesystem and the lower layers were detached mounts: none may show);
#   - no host path (run, state, cache dirs) in mountinfo, mounts, mountstats,
#     environ, cmdline, fd links, cgroup, and pidfd_getfd on the agent's
#     socket is denied;
#   - the sandbox's root is an unprivileged host uid: its processes and the
#     files it creates (and uploads) belong to the sandbox's own range, and
#     two sandboxes get different ranges;
#   - AF_VSOCK, NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT (and every other netlink
#     protocol but route) fail, NETLINK_ROUTE works (ip link);
#   - filling the disk gives ENOSPC at about disk_mb, /tmp stops at disk_mb,
#     the host holds at most disk_mb for it, an upload into a full disk fails;
#     after delete (and after kill -9 of the init) the loop device and the id
#     slot are gone;
#   - as a non-root user the provider is unavailable with the reason.
# The test runs in a private mount namespace with its cache dir on a tmpfs of
# its own, so the host bytes a sandbox's disk takes are measured exactly (df).
set -u
if [[ $(id -u) != 0 ]]; then echo "1..0 # SKIP the namespace provider needs root"; exit 0; fi
if [[ -z ${NS_ESCAPE_INNER:-} ]]; then
	NS_ESCAPE_INNER=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/silod-lib.sh"
SRC=${SILO_SOURCE_ROOT:?}
PROBE=$BUILD/tests/ns-probe
export SILO_CACHE_DIR=$TMP/cache
mkdir -p "$SILO_CACHE_DIR"
mount -t tmpfs -o size=1g,mode=0700 silo-escape-cache "$SILO_CACHE_DIR" || { echo "1..0 # SKIP cannot mount a tmpfs"; exit 0; }
ORIG_CORE=$(cat /proc/sys/kernel/core_pattern)
MARK=/tmp/silo-pwned-$$-$RANDOM
core_unchanged() { # restores the host's core_pattern at once if a sandbox changed it
	[[ "$(cat /proc/sys/kernel/core_pattern)" == "$ORIG_CORE" ]] && return 0
	printf '%s\n' "$ORIG_CORE" > /proc/sys/kernel/core_pattern
	echo "# the host's core_pattern had changed: restored to '$ORIG_CORE'"
	return 1
}
# the tmpfs goes lazily (sandbox disks may still hold files on it) before cleanup removes $TMP
trap 'core_unchanged; rm -f "$MARK"; echo "1..$N"; umount -l "$SILO_CACHE_DIR"; cleanup' EXIT
run() { timeout 120 "$SILO" run --provider namespace "$@" < /dev/null; }
HOSTPATHS=("$TMP" "$SILO_RUNTIME_DIR" "$SILO_STATE_DIR" "$SILO_CACHE_DIR" "$BUILD")

out=$(run -- true 2>&1) || skip_all "namespace provider unavailable here: $out"

# ---------------------------------------------------------------- attack scripts (run inside)
# The recipe of issue 21, and a variant that needs no host path at all.
CORE_ATTACK='
up=$(sed -n "s/.*upperdir=\([^,]*\).*/\1/p" /proc/self/mountinfo | head -1)
echo "upperdir=$up"
printf "#!/bin/sh\necho pwned > %s\n" "$MARK" > /pwn.sh && chmod +x /pwn.sh
orig=$(cat /proc/sys/kernel/core_pattern)
for pat in "|$up/pwn.sh" "|/proc/%P/root/pwn.sh"; do
	if echo "$pat" > /proc/sys/kernel/core_pattern 2>/dev/null; then
		echo "WRITE-OK $pat"; echo "$orig" > /proc/sys/kernel/core_pattern
	else
		echo "write-refused"
		sh -c "ulimit -c unlimited; kill -SEGV \$\$"; echo "crashed $?"
	fi
done
'
# kernel knobs: write back the value already there (harmless even if it worked)
KNOB_ATTACK='
for k in kernel/core_pattern kernel/modprobe kernel/randomize_va_space vm/overcommit_memory vm/max_map_count vm/swappiness vm/min_free_kbytes; do
	[ -e /proc/sys/$k ] || { echo "absent $k"; continue; }
	v=$(cat /proc/sys/$k)
	if echo "$v" > /proc/sys/$k 2>/dev/null; then echo "WROTE $k"; else echo "refused $k"; fi
done
if [ -e /proc/sysrq-trigger ]; then
	if echo h > /proc/sysrq-trigger 2>/dev/null; then echo "WROTE sysrq-trigger"; else echo "refused sysrq-trigger"; fi
else
	echo "absent sysrq-trigger"
fi
'
HIDE=$(sed -n 's/^HIDE("\([^"]*\)".*/\1/p' "$SRC/lib/providers/ns-masks.h" | tr '\n' ' ')
RDONLY=$(sed -n 's/^RDONLY("\([^"]*\)".*/\1/p' "$SRC/lib/providers/ns-masks.h" | tr '\n' ' ')
# A mask is a /dev/null bind (char 1,3) over a file or a tmpfs over a directory;
# a read-only entry is a read-only mount and a writable-looking file in it
# refuses writes with EROFS (the user namespace alone would give EACCES: both
# must hold). ": >" opens with O_TRUNC, which checks the mount before the
# permissions (and truncating a /proc file changes nothing).
MASK_ATTACK="
for p in $HIDE; do
	[ -e \$p ] || continue
	if [ -d \$p ]; then
		n=\$(ls -A \$p | wc -l); [ \"\$(stat -f -c %T \$p)\" = tmpfs ] || n=\"not-a-mask \$n\"
	else
		n=\$(cat \$p 2>/dev/null | wc -c); [ \"\$(stat -c %t,%T \$p)\" = 1,3 ] || n=\"not-a-mask \$n\"
	fi
	[ \"\$n\" = 0 ] && echo \"hidden \$p\" || echo \"VISIBLE \$p \$n\"
done
for p in $RDONLY; do
	[ -e \$p ] || continue
	ro=\$(awk -v p=\$p '\$5 == p {print \$6}' /proc/self/mountinfo | cut -d, -f1)
	t=\$p; [ -d \$p ] && t=\$(find \$p -type f -perm -200 2>/dev/null | head -1)
	e=Read-only; [ -n \"\$t\" ] && e=\$( ( : > \$t ) 2>&1 ) && e=WRITABLE
	if [ \"\$ro\" = ro ] && echo \"\$e\" | grep -q Read-only; then echo \"read-only \$p\"
	else echo \"NOT-READ-ONLY \$p: \$ro \$t \$e\"; fi
done
echo \"core_pattern-owner \$(stat -c %u:%g /proc/sys/kernel/core_pattern)\"
"
LEAK_ATTACK='
{ cat /proc/self/mountinfo /proc/mounts /proc/self/mountstats /proc/1/mountinfo /proc/self/cgroup /proc/1/cgroup
  tr "\0" "\n" < /proc/1/environ; tr "\0" "\n" < /proc/self/environ
  for p in /proc/[0-9]*; do tr "\0" " " < $p/cmdline; echo; for f in $p/fd/* $p/cwd $p/root $p/exe; do readlink $f; done; done
  cat /sys/block/*/loop/backing_file /sys/class/block/*/loop/backing_file 2>/dev/null; hostname; env; } 2>/dev/null
'
SOCKET_ATTACK='
echo "vsock $(/probe socket 40 1 0)"
echo "vsock-dgram $(/probe socket 40 2 0)"
echo "audit $(/probe socket 16 3 9)"
echo "uevent $(/probe socket 16 3 15)"
echo "sockdiag $(/probe socket 16 3 4)"
echo "generic $(/probe socket 16 3 16)"
echo "route $(/probe socket 16 3 0)"
ip link show lo > /dev/null 2>&1 && echo "ip-link ok" || echo "ip-link FAILED"
echo "getfd $(/probe getfd 1 3 | tr "\n" " ")"
'

# Predicates over OUT (the last attack's output), for check.
has() { grep -qx -- "$1" <<<"$OUT"; }
count() { grep -cE -- "$1" <<<"$OUT"; }
count_is() { [ "$(count "$1")" = "$2" ] && return 0; echo "# output was:"; sed 's/^/#   /' <<<"$OUT" | head -20; return 1; }
no_host_path() { # none of the host's silo dirs appears in OUT
	local p
	for p in "${HOSTPATHS[@]}"; do
		if grep -qF -- "$p" <<<"$OUT"; then echo "# leaked: $(grep -F -- "$p" <<<"$OUT" | head -3)"; return 1; fi
	done
	return 0
}
core_checks() { # WHERE; OUT = CORE_ATTACK's output
	check "$1: the upper layer's location is not a host path ($(grep -m1 '^upperdir=' <<<"$OUT"))" has 'upperdir=/upper'
	check "$1: both core_pattern writes are refused" count_is '^write-refused$' 2
	check "$1: the crashes happened (SIGSEGV)" count_is '^crashed 139$' 2
	sleep 0.3
	check "$1: nothing ran on the host (no $MARK)" test ! -e "$MARK"
	check "$1: the host's core_pattern is unchanged" core_unchanged
}
knob_checks() {
	check "$1: core_pattern, modprobe, vm.*, randomize_va_space, sysrq-trigger writes are refused ($(count '^refused') refused, $(count '^absent') absent here)" \
		test "$(count '^(refused|absent) ')" = 8 -a "$(count '^WROTE')" = 0 -a "$(count '^refused (kernel/(core_pattern|randomize_va_space)|vm/)')" = 6
}
mask_checks() {
	check "$1: masked /proc and /sys entries are masks and read empty ($(count '^hidden') present here)" \
		test "$(count VISIBLE)" = 0 -a "$(count '^hidden /proc/(timer_list|interrupts)$')" = 2
	check "$1: read-only /proc entries refuse writes with EROFS ($(count '^read-only') present here)" \
		test "$(count 'NOT-READ-ONLY')" = 0 -a "$(count '^read-only /proc/sys$')" = 1
	check "$1: even unmasked, kernel knobs belong to an id the sandbox does not have ($(grep -o 'core_pattern-owner.*' <<<"$OUT"))" \
		has 'core_pattern-owner 65534:65534'
}
socket_checks() {
	check "$1: AF_VSOCK fails (stream and datagram)" count_is '^vsock(-dgram)? EAFNOSUPPORT$' 2
	check "$1: NETLINK_AUDIT, KOBJECT_UEVENT, SOCK_DIAG, GENERIC fail" count_is '^(audit|uevent|sockdiag|generic) EPROTONOSUPPORT$' 4
	check "$1: NETLINK_ROUTE works (socket and ip link)" count_is '^(route|ip-link) ok$' 2
	check "$1: pidfd_getfd of the agent's socket is denied" count_is '^getfd EPERM' 1
}
# Host view of a sandbox: "BASE COUNT" of init PID's uid map (sandbox id 0).
idmap_of() { awk 'NR==1 && $1==0 {print $2, $3}' "/proc/$1/uid_map" 2>/dev/null; }
slot_of() { grep -l "^$1 " /run/silo-ids/[0-9]* 2>/dev/null; }
LOOPS_LEFT() { losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$SILO_CACHE_DIR" || true; }

# control: the host itself can do what the sandbox must not (the test would prove nothing otherwise)
host_sockets() { "$PROBE" socket 40 1 0 > /dev/null && "$PROBE" socket 16 3 9 > /dev/null; }
check "control: on the host, AF_VSOCK and NETLINK_AUDIT sockets can be made" host_sockets
check "control: on the host, /proc/interrupts is readable and not empty" test -n "$(head -c 1 /proc/interrupts)"

# ================================================================ 1. silo run
OUT=$(run -- sh -c "MARK=$MARK; $CORE_ATTACK" 2>/dev/null)
core_checks "silo run"
OUT=$(run -- sh -c "$KNOB_ATTACK" 2>/dev/null)
knob_checks "silo run"
OUT=$(run -- sh -c "$MASK_ATTACK" 2>/dev/null)
mask_checks "silo run"
OUT=$(run -- sh -c "$LEAK_ATTACK" 2>&1)
check "silo run: no host path in mountinfo, mounts, environ, cmdline, fd links, cgroup, loop devices" no_host_path
# the writable layer's ext4 and the id-mapped lower layers were detached mounts
# the overlay cloned; they leave with the host's root (namespace.c
# park_detached): none may be visible in the sandbox's mount table
OUT=$(run -- sh -c 'echo "ext4 $(grep -c " - ext4 " /proc/self/mountinfo)"; echo "overlay $(grep -c " - overlay " /proc/self/mountinfo)"' 2>&1)
check "silo run: the sandbox sees one overlay and no ext4 mount (the disk and the layers stay out of its mount table)" \
	test "$(grep -x 'ext4 0' <<<"$OUT")" = "ext4 0" -a "$(grep -x 'overlay 1' <<<"$OUT")" = "overlay 1"
OUT=$(timeout 60 "$SILO" run --provider namespace -- sh -c "cat > /probe && chmod +x /probe && $SOCKET_ATTACK" < "$PROBE" 2>/dev/null)
socket_checks "silo run"

# host uid range: two sandboxes at once, seen from the host
timeout 60 "$SILO" run --provider namespace -- sh -c 'touch /owned /owned2; chown 1000:1000 /owned2; echo ready; sleep 8' > "$TMP/a.out" 2>&1 < /dev/null &
RA=$!
timeout 60 "$SILO" run --provider namespace -- sh -c 'echo ready; sleep 8' > "$TMP/b.out" 2>&1 < /dev/null &
RB=$!
for _ in $(seq 100); do [ "$(cat "$TMP/a.out" "$TMP/b.out" 2>/dev/null | grep -c ready)" = 2 ] && break; sleep 0.1; done
PIDS=$(cat "$SILO_RUNTIME_DIR"/sandboxes/*/pid 2>/dev/null | cut -d' ' -f1)
set -- $PIDS
PA=${1:-0} PB=${2:-0}
read -r BA CA <<<"$(idmap_of "$PA")"
read -r BB CB <<<"$(idmap_of "$PB")"
check "the sandbox's root maps to an unprivileged host range of 65536 ids ($BA, $BB)" \
	bash -c "(( ${BA:-0} >= 65536 && ${BB:-0} >= 65536 )) && [ '$CA' = 65536 ] && [ '$CB' = 65536 ]"
check "two sandboxes get different host ranges" bash -c "[ -n '$BA' ] && [ '$BA' != '$BB' ]"
check "the sandbox init runs as that host uid" \
	bash -c "[ \"\$(awk '/^Uid:/ {print \$2\$3\$4\$5}' /proc/$PA/status)\" = '$BA$BA$BA$BA' ] ||
		[ \"\$(awk '/^Uid:/ {print \$2\$3\$4\$5}' /proc/$PA/status)\" = '$BB$BB$BB$BB' ]"
own=""
for p in $PIDS; do [ -e "/proc/$p/root/owned" ] && own="$(stat -c '%u:%g' "/proc/$p/root/owned") $(stat -c '%u:%g' "/proc/$p/root/owned2") $(idmap_of "$p")"; done
read -r o1 o2 ob _ <<<"$own"
check "a file the sandbox's root creates belongs to the host uid of the range ($o1)" test -n "$ob" -a "$o1" = "$ob:$ob"
check "a file chowned to 1000 inside belongs to range+1000 on the host ($o2)" test -n "$ob" -a "$o2" = "$((ob + 1000)):$((ob + 1000))"
SLOTS="$(slot_of "$PA") $(slot_of "$PB")"
check "each sandbox init owns a host id slot record ($SLOTS)" test "$(wc -w <<<"$SLOTS")" = 2
wait $RA $RB
check "after both exits: no loop device of this test is left" test -z "$(LOOPS_LEFT)"
check "after both exits: their id slots are released" test -z "$(slot_of "$PA")$(slot_of "$PB")"

# disk_mb through silo run: the writable layer and /tmp
cat > "$TMP/disk.toml" <<'TOML'
[vm]
name = "disk"
provider = "namespace"
[resources]
memory_mb = 256
[sandbox]
disk_mb = 64
TOML
out=$(timeout 120 "$SILO" run --spec "$TMP/disk.toml" -- sh -c 'cat > /probe && chmod +x /probe; /probe fill /big; /probe fill /tmp/big' < "$PROBE" 2>&1)
read -r e1 n1 <<<"$(sed -n 1p <<<"$out")"
read -r e2 n2 <<<"$(sed -n 2p <<<"$out")"
check "silo run, disk_mb = 64: the root fills up with ENOSPC at about 64 MiB ($e1 after $((${n1:-0} >> 20)) MiB)" \
	bash -c "[ '$e1' = ENOSPC ] && (( ${n1:-0} >= 54 << 20 && ${n1:-0} <= 64 << 20 ))"
check "silo run, disk_mb = 64: /tmp fills up with ENOSPC at 64 MiB ($e2 after $((${n2:-0} >> 20)) MiB)" \
	bash -c "[ '$e2' = ENOSPC ] && (( ${n2:-0} >= 60 << 20 && ${n2:-0} <= 64 << 20 ))"
check "silo run: no loop device left after the disk run" test -z "$(LOOPS_LEFT)"

# kill -9 of the init: the kernel alone detaches the disk
timeout 60 "$SILO" run --provider namespace -- sh -c 'echo x > /f; echo ready; sleep 30' > "$TMP/k.out" 2>&1 < /dev/null &
RK=$!
for _ in $(seq 100); do grep -q ready "$TMP/k.out" 2>/dev/null && break; sleep 0.1; done
check "a running sandbox holds one loop device" test "$(LOOPS_LEFT | wc -l)" = 1
kill -9 "$(cut -d' ' -f1 "$SILO_RUNTIME_DIR"/sandboxes/*/pid 2>/dev/null | head -1)" 2>/dev/null
wait $RK
for _ in $(seq 50); do [ -z "$(LOOPS_LEFT)" ] && break; sleep 0.1; done
check "kill -9 of the sandbox init: its loop device is gone" test -z "$(LOOPS_LEFT)"

# rootless: unavailable, with the reason
mkdir -p "$TMP/nobody" && chmod 0777 "$TMP/nobody"
OUT=$(cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$TMP/nobody" SILO_RUNTIME_DIR="$TMP/nobody/run" \
	SILO_STATE_DIR="$TMP/nobody/state" SILO_CACHE_DIR="$TMP/nobody/cache" "$SILO" run --provider namespace -- true 2>&1 < /dev/null)
rc=$?
check "as a non-root user: PROVIDER_UNAVAILABLE naming root (rc=$rc)" count_is 'PROVIDER_UNAVAILABLE.*needs root' 1

# ================================================================ 2. silod, a scoped token on TCP
PORT=$((20000 + RANDOM % 20000))
TF=$TMP/tokens.toml
TOK=$("$SILO" token create --file "$TF" --name agent --operations create,exec,delete,file_read,file_write,inspect \
	--providers namespace)
start_daemon --listen "127.0.0.1:$PORT" --tokens-file "$TF" || { notok "silod starts"; exit 1; }
tcp() { # tcp METHOD PATH [curl args] -> body; status in $TMP/status
	local m=$1 p=$2; shift 2
	curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $TOK" -X "$m" "$@" "http://127.0.0.1:$PORT$p" > "$TMP/status"
	cat "$TMP/body"
}
texec() { # texec ID SCRIPT -> the command's stdout
	tcp POST "/v1/sandboxes/$1/exec" -H 'Content-Type: application/json' \
		-d "$(python3 -c 'import json,sys; print(json.dumps({"argv":["sh","-c",sys.argv[1]]}))' "$2")" |
		python3 -c 'import json,sys,base64
sys.stdout.buffer.write(b"".join(base64.b64decode(j["data"]) for j in map(json.loads, filter(str.strip, sys.stdin)) if j.get("stream") == "stdout"))'
}
SPEC=$(python3 -c 'import json,sys; print(json.dumps({"spec": open(sys.argv[1]).read().replace("name = \"disk\"", "name = \"escape\"")}))' "$TMP/disk.toml")
ID=$(tcp POST /v1/sandboxes -H 'Content-Type: application/json' -d "$SPEC" | jget 'j.get("id","")')
check "silod: the scoped token creates a namespace sandbox with disk_mb = 64" test -n "$ID"
SPID=$(tcp GET "/v1/sandboxes/$ID" | jget 'j.get("pid",0)')
OUT=$(texec "$ID" "MARK=$MARK; $CORE_ATTACK")
core_checks "silod"
OUT=$(texec "$ID" "$KNOB_ATTACK")
knob_checks "silod"
OUT=$(texec "$ID" "$MASK_ATTACK")
mask_checks "silod"
OUT=$(texec "$ID" "$LEAK_ATTACK")
check "silod: no host path visible inside" no_host_path
tcp PUT "/v1/sandboxes/$ID/files?path=/probe&mode=0755" --data-binary @"$PROBE" > /dev/null
check "silod: the probe is uploaded with the token" test "$(status)" = 200
OUT=$(texec "$ID" "$SOCKET_ATTACK")
socket_checks "silod"
echo up > "$TMP/up.txt"
tcp PUT "/v1/sandboxes/$ID/files?path=/root/uploaded" --data-binary @"$TMP/up.txt" > /dev/null
r=$(texec "$ID" 'stat -c %u:%g /root/uploaded')
read -r SB _ <<<"$(idmap_of "$SPID")"
check "silod: an upload belongs to the sandbox's root inside ($r)" test "$r" = "0:0"
check "silod: ... and to the unprivileged host uid outside" \
	test -n "$SB" -a "$(stat -c %u:%g "/proc/$SPID/root/root/uploaded" 2>/dev/null)" = "$SB:$SB"
used0=$(df -B1 --output=used "$SILO_CACHE_DIR" | tail -1)
r=$(texec "$ID" '/probe fill /big')
read -r e1 n1 <<<"$r"
used1=$(df -B1 --output=used "$SILO_CACHE_DIR" | tail -1)
grow=$(( (used1 - used0) >> 20 ))
check "silod: filling the disk ends in ENOSPC at about 64 MiB ($e1 after $((${n1:-0} >> 20)) MiB)" \
	bash -c "[ '$e1' = ENOSPC ] && (( ${n1:-0} >= 54 << 20 && ${n1:-0} <= 64 << 20 ))"
check "silod: the host holds at most 64 MiB for it (grew $grow MiB)" test "$grow" -le 64
head -c $((8 << 20)) /dev/zero > "$TMP/8m"
tcp PUT "/v1/sandboxes/$ID/files?path=/more" --data-binary @"$TMP/8m" > /dev/null
check "silod: an 8 MiB upload into the full disk fails ($(status))" test "$(status)" -ge 400
used2=$(df -B1 --output=used "$SILO_CACHE_DIR" | tail -1)
check "silod: ... and the host still holds at most 64 MiB" test $(( (used2 - used0) >> 20 )) -le 64
r=$(texec "$ID" 'rm /big && echo freed')
tcp PUT "/v1/sandboxes/$ID/files?path=/more" --data-binary @"$TMP/8m" > /dev/null
check "silod: once space is freed the upload works" test "$r" = freed -a "$(status)" = 200
check "silod: the sandbox init owns its id slot" test -n "$(slot_of "$SPID")"
tcp DELETE "/v1/sandboxes/$ID?grace_ms=0" > /dev/null
check "silod: delete is clean ($(status))" test "$(status)" = 200
check "silod: after delete, no loop device and no id slot are left" \
	test -z "$(LOOPS_LEFT)$(slot_of "$SPID")"
stop_daemon
check_clean_exit "silod exits cleanly"
exit $((FAILED > 0))
