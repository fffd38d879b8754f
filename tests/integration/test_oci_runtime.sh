#!/usr/bin/env bash
# silo-oci on its own (no engine), namespace provider: the OCI runtime command
# line as runc has it, against bundles made here from the test image's rootfs.
# Lifecycle and state, exit codes, signals (with and without a handler), exec
# (args, --process, --detach with --pid-file, exit codes), ps, pause/resume, a
# terminal through --console-socket (resize included), volumes (read-write bind,
# read-only bind, a file, tmpfs), env/cwd/user/hostname, hooks, refusals named
# by field, and cleanup: after delete nothing is left (sandbox, cgroups, loop
# devices, mounts, state), also after kill -9 of the supervisor. TAP on stdout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
TMP=$(mktemp -d /tmp/silo-oci-rt.XXXXXX)
ROOT="$TMP/oci"
TOOLS=()
source "$S/tests/integration/oci-lib.sh"
cleanup() {
	for d in "$ROOT"/*/; do [[ -d "$d" ]] && "$SO" --root "$ROOT" delete --force "$(basename "$d")" > /dev/null 2>&1; done
	rm -rf "$TMP"
	echo "1..$N"
}
trap cleanup EXIT
rt() { "$SO" --root "$ROOT" --log "$TMP/log.json" --log-format json "$@"; }

# bundle NAME JSON-PROCESS [EXTRA-TOP-LEVEL-JSON]: a bundle with the test image's rootfs
bundle() {
	local b="$TMP/b-$1"
	mkdir -p "$b/rootfs" && tar -C "$b/rootfs" -xf "$F/base-rootfs.tar"
	cat > "$b/config.json" <<EOF
{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "hostname": "h-$1",
 "process": $2,
 "annotations": {"run.silo.provider": "namespace"}${3:+, $3}}
EOF
	echo "$b"
}
state_of() { rt state "$1" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["pid"])' 2>/dev/null; }
gone() { # PID: not running (a zombie its parent has not reaped yet counts as gone), within 5 s
	for _ in $(seq 50); do
		[[ ! -e /proc/$1 || $(awk '{print $3}' /proc/$1/stat 2>/dev/null) == Z ]] && return 0
		sleep 0.1
	done
	return 1
}
wait_status() { # ID STATUS: up to 10 s
	for _ in $(seq 100); do [[ "$(state_of "$1" | cut -d' ' -f1)" == "$2" ]] && return 0; sleep 0.1; done
	return 1
}
# ---- features, version ----
check "features: JSON with the OCI versions, hooks and the provider annotation" \
	bash -c "'$SO' features | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ociVersionMax\"].startswith(\"1.\"); assert \"poststop\" in d[\"hooks\"]; assert \"run.silo.provider\" in d[\"annotations\"]'"
check "--version names the runtime and the spec" bash -c "'$SO' --version | grep -q '^silo-oci version' && '$SO' --version | grep -q '^spec: 1\\.'"

# ---- run: env, cwd, user, hostname, exit status ----
b=$(bundle basic '{"args": ["/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g) cwd=$(pwd) foo=$FOO host=$(hostname); cat /etc/motd; exit 3"],
 "env": ["PATH=/bin", "FOO=bar"], "cwd": "/work/dir", "user": {"uid": 1000, "gid": 50}}')
out=$(rt run --bundle "$b" basic 2>&1); rc=$?
check "run: the exit status is the process's (3)" test "$rc" = 3
check "run: env, user, group, a missing cwd made, hostname, the image's file" \
	bash -c "grep -q 'uid=1000 gid=50 cwd=/work/dir foo=bar host=h-basic' <<< '$out' && grep -q welcome <<< '$out'"
check "state after the end: stopped, pid 0" test "$(state_of basic)" = "stopped 0"
check "delete of a stopped container" rt delete basic
check "after delete: state is gone (container does not exist)" bash -c "! '$SO' --root '$ROOT' state basic 2> /dev/null"

# ---- create / start / state / kill ----
b=$(bundle life '{"args": ["/bin/sh", "-c", "trap \"echo got-term; exit 7\" TERM; echo started; while :; do sleep 0.1; done"], "env": ["PATH=/bin"], "cwd": "/"}')
rt create --bundle "$b" --pid-file "$TMP/life.pid" life > "$TMP/life.out" 2>&1
check "create: state created, the pid file names the supervisor" \
	bash -c "[[ \"\$(cut -d' ' -f1 <<< \"\$('$SO' --root '$ROOT' state life | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"status\"], d[\"pid\"])')\")\" == created ]] &&
		[[ \"\$(cat '$TMP/life.pid')\" == \"\$('$SO' --root '$ROOT' state life | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])')\" ]]"
check "create twice with one id: refused" bash -c "! '$SO' --root '$ROOT' create --bundle '$b' life 2> /dev/null"
rt start life
check "start: running" wait_status life running
check "start again: refused" bash -c "! '$SO' --root '$ROOT' start life 2> /dev/null"
for _ in $(seq 50); do grep -q started "$TMP/life.out" && break; sleep 0.1; done
check "ps --format json: the supervisor and the sandbox's processes" \
	bash -c "'$SO' --root '$ROOT' ps --format json life | python3 -c 'import json,sys; p=json.load(sys.stdin); assert len(p) >= 3, p'"
check "delete of a running container without --force: refused" bash -c "! '$SO' --root '$ROOT' delete life 2> /dev/null"
rt kill life TERM
check "kill TERM: the handler runs, the container stops" wait_status life stopped
check "... and its output says so" grep -q got-term "$TMP/life.out"
check "kill of a stopped container: refused (container not running)" bash -c "! '$SO' --root '$ROOT' kill life KILL 2> /dev/null"
rt delete life
b=$(bundle sig '{"args": ["/bin/sleep", "60"], "env": ["PATH=/bin"], "cwd": "/"}')
( rt run --bundle "$b" sig > /dev/null 2>&1; echo $? > "$TMP/sig.rc" ) &
wait_status sig running
rt kill sig KILL
wait
check "kill KILL: the container ends as killed by SIGKILL (137)" test "$(cat "$TMP/sig.rc")" = 137
rt delete sig

# ---- exec ----
b=$(bundle ex '{"args": ["/bin/sleep", "60"], "env": ["PATH=/bin", "BASE=1"], "cwd": "/srv", "user": {"uid": 1000, "gid": 1000}}')
rt run -d --bundle "$b" ex
out=$(rt exec ex /bin/sh -c 'echo $(id -u) $(pwd) $BASE; exit 5' 2>&1); rc=$?
check "exec ARGS: the container's user, cwd and env by default; its exit status (5)" \
	bash -c "[[ $rc == 5 && '$out' == '1000 /srv 1' ]]"
out=$(rt exec --user 0:0 --cwd /etc -e X=y ex /bin/sh -c 'echo $(id -u) $(pwd) $X' 2>&1)
check "exec --user --cwd --env" test "$out" = "0 /etc y"
cat > "$TMP/proc.json" <<'EOF'
{"args": ["/bin/sh", "-c", "echo from-process-file; cat"], "env": ["PATH=/bin"], "cwd": "/tmp", "user": {"uid": 0, "gid": 0}}
EOF
out=$(echo piped-stdin | rt exec --process "$TMP/proc.json" ex 2>&1)
check "exec --process FILE, stdin relayed" bash -c "grep -q from-process-file <<< '$out' && grep -q piped-stdin <<< '$out'"
rt exec -d --pid-file "$TMP/ex.pid" ex /bin/sh -c 'sleep 0.3; exit 9' > /dev/null 2>&1
check "exec --detach --pid-file: a relay pid that lives as long as the process" \
	bash -c "p=\$(cat '$TMP/ex.pid'); kill -0 \$p && for i in \$(seq 50); do kill -0 \$p 2> /dev/null || exit 0; sleep 0.1; done; exit 1"
out=$(rt exec ex /bin/sh -c 'echo out; echo err >&2' 2> "$TMP/ex.err")
check "exec: stdout and stderr stay apart" bash -c "[[ '$out' == out && \$(cat '$TMP/ex.err') == err ]]"
"$SO" --root "$ROOT" exec ex /bin/sleep 30 > /dev/null 2>&1 &
xpid=$!
sleep 1
kill -TERM "$xpid"
wait "$xpid"
check "a signal to the exec relay reaches the process (SIGTERM: 143)" test $? = 143
check "exec in a stopped container: refused" bash -c "rt() { '$SO' --root '$ROOT' \"\$@\"; }; rt kill ex KILL; for i in \$(seq 50); do rt state ex | grep -q stopped && break; sleep 0.1; done; ! rt exec ex /bin/true 2> /dev/null"
rt delete --force ex

# ---- pause / resume ----
b=$(bundle pz '{"args": ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"], "env": ["PATH=/bin"], "cwd": "/"}')
rt run -d --bundle "$b" pz
sleep 0.5
rt pause pz
check "pause: state paused" wait_status pz paused
a=$(rt exec pz /bin/cat /tmp/n 2> /dev/null)
check "exec into a paused container waits or fails, it never runs" test -z "$a"
rt resume pz
check "resume: running again" wait_status pz running
n1=$(rt exec pz /bin/cat /tmp/n); sleep 0.5; n2=$(rt exec pz /bin/cat /tmp/n)
check "after resume the process advances ($n1 -> $n2)" test "${n2:-0}" -gt "${n1:-0}"
rt delete --force pz

# ---- mounts ----
mkdir -p "$TMP/vol-rw" "$TMP/vol-ro"
echo ro-data > "$TMP/vol-ro/f"
echo host-file > "$TMP/afile"
b=$(bundle mnt '{"args": ["/bin/sh", "-c", "echo written > /rw/new && cat /ro/f && (echo x > /ro/g) 2>&1; cat /etc/afile; stat -f -c %T /scratch; grep -c /proc/ /proc/self/mounts"], "env": ["PATH=/bin"], "cwd": "/"}' \
	"\"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},
	 {\"destination\": \"/rw\", \"type\": \"bind\", \"source\": \"$TMP/vol-rw\", \"options\": [\"rbind\"]},
	 {\"destination\": \"/ro\", \"type\": \"bind\", \"source\": \"$TMP/vol-ro\", \"options\": [\"rbind\", \"ro\"]},
	 {\"destination\": \"/etc/afile\", \"type\": \"bind\", \"source\": \"$TMP/afile\", \"options\": [\"bind\"]},
	 {\"destination\": \"/scratch\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"size=1m\"]}]")
rt run --bundle "$b" mnt > "$TMP/mnt.out" 2>&1
log "$(tr '\n' '|' < "$TMP/mnt.out")"
check "a read-write bind mount is shared: the container's file is on the host, owned by host root" \
	bash -c "[[ \$(cat '$TMP/vol-rw/new') == written && \$(stat -c %u '$TMP/vol-rw/new') == 0 ]]"
check "a read-only bind mount reads and refuses writes" \
	bash -c "grep -q ro-data '$TMP/mnt.out' && grep -qi 'read-only' '$TMP/mnt.out' && [[ ! -e '$TMP/vol-ro/g' ]]"
check "a file bind mount" grep -q host-file "$TMP/mnt.out"
check "a tmpfs mount" grep -q tmpfs "$TMP/mnt.out"
rt delete mnt

# ---- terminal through --console-socket ----
b=$(bundle tty '{"terminal": true, "args": ["/bin/sh"], "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/"}')
python3 "$S/tests/integration/oci_console.py" "$TMP/console.sock" 'tty\nstty size 2>/dev/null || echo nostty\necho tty-$((6*7))\nexit 4' 33 111 20 > "$TMP/tty.out" 2> /dev/null &
cpid=$!
for _ in $(seq 50); do [[ -S "$TMP/console.sock" ]] && break; sleep 0.1; done
rt create --bundle "$b" --console-socket "$TMP/console.sock" --pid-file "$TMP/tty.pid" tty
rt start tty
wait $cpid
log "tty: $(tr '\r\n' '||' < "$TMP/tty.out" | head -c 300)"
check "terminal: the master went over the console socket; the shell runs on a pty (/dev/pts/N)" \
	bash -c "grep -q '/dev/pts/' '$TMP/tty.out' && grep -q 'tty-42' '$TMP/tty.out'"
check "terminal: the engine's size reached the process's pty (33 111)" bash -c "grep -q '33 111' '$TMP/tty.out' || grep -q nostty '$TMP/tty.out'"
wait_status tty stopped
rt delete tty

# ---- hooks ----
cat > "$TMP/hook.sh" <<EOF
#!/bin/sh
cat > "$TMP/hook-\$1.json"
EOF
chmod +x "$TMP/hook.sh"
b=$(bundle hk '{"args": ["/bin/true"], "env": ["PATH=/bin"], "cwd": "/"}' \
	"\"hooks\": {\"prestart\": [{\"path\": \"$TMP/hook.sh\", \"args\": [\"hook\", \"prestart\"]}],
	             \"poststop\": [{\"path\": \"$TMP/hook.sh\", \"args\": [\"hook\", \"poststop\"], \"timeout\": 5}]}")
rt run --bundle "$b" hk > /dev/null 2>&1
check "prestart hook: ran with the state on stdin" \
	bash -c "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"id\"] == \"hk\" and d[\"status\"] == \"created\"' '$TMP/hook-prestart.json'"
rt delete hk
check "poststop hook: ran at delete" test -s "$TMP/hook-poststop.json"

# ---- refusals ----
b=$(bundle bad '{"args": ["/bin/true"], "cwd": "relative"}')
err=$(rt create --bundle "$b" bad 2>&1); rc=$?
check "a malformed config is refused naming the field (process.cwd)" bash -c "[[ $rc != 0 ]] && grep -q 'process.cwd' <<< '$err'"
check "... and leaves no state" test ! -e "$ROOT/bad"
check "... the error is in the --log file as JSON" \
	bash -c "tail -1 '$TMP/log.json' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"level\"] == \"error\" and \"process.cwd\" in d[\"msg\"]'"
check "a container id with a path in it is refused" bash -c "! '$SO' --root '$ROOT' create --bundle '$b' '../../etc' 2> /dev/null && [[ ! -e '$TMP/etc' ]]"
b=$(bundle esc '{"args": ["/bin/sh", "-c", "ls /host-etc/shadow"], "env": ["PATH=/bin"], "cwd": "/"}')
rm -rf "$b/rootfs/tmp" && ln -s /etc "$b/rootfs/tmp" && ln -s /etc "$b/rootfs/dev"
out=$(rt run --bundle "$b" esc 2>&1)
check "an image whose /tmp and /dev are symlinks to /etc: the sandbox gets its own, nothing lands in the host's /etc" \
	bash -c "[[ ! -e /etc/null && ! -e /etc/pts && ! -e /etc/shm ]]"
rt delete esc > /dev/null 2>&1

# ---- the control socket and the write-back are root's, and follow no link ----
b=$(bundle own '{"args": ["/bin/sh", "-c", "sleep 30"], "env": ["PATH=/bin"], "cwd": "/"}')
rt run -d --bundle "$b" own
chmod 0755 "$ROOT"   # even with the root directory open, the state directory is root's
check "another user cannot drive a container (kill, exec, state: refused)" \
	bash -c "! setpriv --reuid 65534 --regid 65534 --clear-groups '$SO' --root '$ROOT' kill own KILL 2> /dev/null &&
		! setpriv --reuid 65534 --regid 65534 --clear-groups '$SO' --root '$ROOT' exec own /bin/true 2> /dev/null &&
		[[ \$(stat -c %a '$ROOT/own') == 700 ]]"
check "... and the container still runs" wait_status own running
chmod 0700 "$ROOT"
rt delete --force own
VICTIM=$(mktemp -d /var/tmp/silo-oci-victim.XXXXXX)
b=$(bundle wb "{\"args\": [\"/bin/sh\", \"-c\", \"rm -rf /srv && ln -s $VICTIM /srv && mkdir -p $VICTIM && echo pwned > $VICTIM/f && echo kept > /etc/new && rm /etc/motd\"], \"env\": [\"PATH=/bin\"], \"cwd\": \"/\"}")
rt run --bundle "$b" wb > /dev/null 2>&1
check "write-back: the container's changes are in the bundle's root (a new file, a deletion)" \
	bash -c "[[ \$(cat '$b/rootfs/etc/new') == kept && ! -e '$b/rootfs/etc/motd' ]]"
check "write-back: a directory replaced by a symlink to a host path stays a symlink; nothing is written through it" \
	bash -c "[[ -L '$b/rootfs/srv' && -z \$(ls -A '$VICTIM') ]]"
rm -rf "$VICTIM"
rt delete wb

# ---- kill -9 of the supervisor ----
b=$(bundle k9 '{"args": ["/bin/sleep", "60"], "env": ["PATH=/bin"], "cwd": "/"}')
rt run -d --bundle "$b" k9
pid=$(state_of k9 | cut -d' ' -f2)
sbpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sandbox_pid"])' "$ROOT/k9/state.json")
kill -9 "$pid"
check "kill -9 of the supervisor: the container reads as stopped" wait_status k9 stopped
check "... its watchdog ends the sandbox (pid $sbpid)" gone "$sbpid"
rt delete k9
check "... and delete removes the rest" bash -c "[[ ! -e '$ROOT/k9' && -z \$(ls -A '$SILO_RUNTIME_DIR/sandboxes' 2> /dev/null) ]]"
# ---- a VM provider (QEMU; TCG here): the bundle's root as an ext4 disk, bind mounts as copies ----
if [[ -e "$real_cache/kernel/current/vmlinux" ]] && command -v qemu-system-x86_64 > /dev/null && [[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]]; then
	source "$S/tests/integration/cache-lib.sh" && link_guest_kernel "$real_cache"
	mkdir -p "$TMP/vmvol" && echo vm-copy > "$TMP/vmvol/f"
	b=$(bundle vm '{"args": ["/bin/sh", "-c", "echo $(hostname) $(id -u) $(pwd); cat /data/f; cat /proc/1/comm; exit 6"], "env": ["PATH=/bin"], "cwd": "/srv", "user": {"uid": 1000, "gid": 1000}}' \
		"\"mounts\": [{\"destination\": \"/data\", \"type\": \"bind\", \"source\": \"$TMP/vmvol\", \"options\": [\"rbind\"]}]")
	python3 - "$b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["annotations"]["run.silo.provider"] = "qemu"
json.dump(c, open(sys.argv[1], "w"))
PY
	SILO_IMAGES_DIR="$S/images" timeout 300 "$SO" --root "$ROOT" run --bundle "$b" vm > "$TMP/vm.out" 2>&1; rc=$?
	log "qemu: $(tr '\n' '|' < "$TMP/vm.out")"
	check "qemu: the bundle's root boots as a disk; hostname, user, cwd, a bind mount copied in; exit status 6" \
		bash -c "[[ $rc == 6 ]] && grep -q '^h-vm 1000 /srv$' '$TMP/vm.out' && grep -q vm-copy '$TMP/vm.out' && grep -q silo-agent '$TMP/vm.out'"
	check "qemu: the root disk is cached by content (one disk for the bundle)" test "$(ls "$SILO_CACHE_DIR/oci/bundles" | wc -l)" = 1
	rt delete vm
else
	skip "qemu: the bundle's root as a VM disk" "no guest kernel or qemu (scripts/prepare-images.sh), or SILO_SKIP_VM_TESTS=1"
fi
check "delete --force of a container that does not exist: success (as runc)" rt delete --force nosuch
check "after everything: no sandbox, cgroup, mount or state left" nothing_left
exit $FAILED
