#!/usr/bin/env bash
# podman (Debian's 4.3, unchanged) with silo-oci as its runtime: `podman
# --runtime silo-oci run ...` on images built here (podman import of the test
# rootfs; the buildah-built image with Env, WorkingDir, User, Entrypoint, Cmd).
# Output, exit codes, stop and kill, stdin, a terminal (-it under script(1)),
# env/workdir/user, volumes, exec, the image's defaults, --rm cleanup: nothing
# left (containers, sandboxes, cgroups, mounts, runtime state).
#
# podman hands the runtime neither our environment nor, for its cleanup
# process, its --runtime-flag options: the runtime path is a two-line wrapper
# that points silo-oci at this test's directories (--root, SILO_*_DIR).
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
TMP=$(mktemp -d /tmp/silo-oci-pm.XXXXXX)
ROOT="$TMP/oci"
TOOLS=(conmon script)
source "$S/tests/integration/oci-lib.sh"
PM=(podman --root "$TMP/storage" --runroot "$TMP/runroot" --storage-driver overlay --cgroup-manager=cgroupfs
	--runtime "$TMP/silo-oci")
RUN=(run --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
cleanup() {
	"${PM[@]}" rm -af -t 0 > /dev/null 2>&1
	"${PM[@]}" system reset -f > /dev/null 2>&1
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2> /dev/null; done
	rm -rf "$TMP"
	echo "1..$N"
}
trap cleanup EXIT

cat > "$TMP/silo-oci" <<EOF
#!/bin/sh
export SILO_CACHE_DIR="$SILO_CACHE_DIR" SILO_STATE_DIR="$SILO_STATE_DIR" SILO_RUNTIME_DIR="$SILO_RUNTIME_DIR"
exec "$SO" --root "$ROOT" --log "$TMP/runtime.log" "\$@"
EOF
chmod +x "$TMP/silo-oci"
"${PM[@]}" import -q "$F/base-rootfs.tar" localhost/silo-bb:1 > /dev/null &&
	"${PM[@]}" load -q -i "$F/app-docker.tar" > /dev/null ||
	{ notok "load the test images into podman"; exit 1; }
t0=$(date +%s%N)
out=$(timeout 120 "${PM[@]}" "${RUN[@]}" --rm localhost/silo-bb:1 echo hi 2>&1); rc=$?
log "first run: $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
check "podman --runtime silo-oci run --rm localhost/IMAGE echo hi prints hi" bash -c "[[ $rc == 0 && '$out' == hi ]]"
check "... it ran in a Silo sandbox (the agent is PID 1 of its pid namespace)" \
	bash -c "[[ \$(timeout 60 ${PM[*]} ${RUN[*]} --rm localhost/silo-bb:1 cat /proc/1/comm) == silo-agent ]]"
timeout 60 "${PM[@]}" "${RUN[@]}" --rm localhost/silo-bb:1 sh -c 'exit 42' > /dev/null 2>&1
check "exit status 42 is podman's" test $? = 42
out=$(echo piped | timeout 60 "${PM[@]}" "${RUN[@]}" --rm -i localhost/silo-bb:1 cat 2>&1)
check "-i: stdin reaches the process" test "$out" = piped
out=$(timeout 60 "${PM[@]}" "${RUN[@]}" --rm -e X=1 -w /srv -u 1000:50 localhost/silo-bb:1 sh -c 'echo $X $(pwd) $(id -u) $(id -g) $HOSTNAME' 2>&1)
check "-e -w -u: env, working directory, user and group ($out)" bash -c "[[ '$out' == '1 /srv 1000 50 '* ]]"
out=$(timeout 60 "${PM[@]}" "${RUN[@]}" --rm localhost/silo-test-app:1 2>&1)
check "the image's Entrypoint + Cmd run by default" test "$out" = hello
out=$(timeout 60 "${PM[@]}" "${RUN[@]}" --rm localhost/silo-test-app:1 'echo $(id -u) $(pwd) $APP; cat /etc/hello; ls /etc' 2>&1)
check "the image's User, WorkingDir, Env and both layers (whiteout included)" \
	bash -c "grep -q '^1000 /srv silo$' <<< '$out' && grep -q 'hello from layer 2' <<< '$out' && ! grep -q motd <<< '$out'"
mkdir -p "$TMP/vol" "$TMP/rovol" && echo host > "$TMP/rovol/f"
timeout 60 "${PM[@]}" "${RUN[@]}" --rm -v "$TMP/vol:/data" -v "$TMP/rovol:/ro:ro" localhost/silo-bb:1 \
	sh -c 'echo from-ctr > /data/f; cat /ro/f; echo x > /ro/g' > "$TMP/vol.out" 2>&1
check "-v: a volume is shared with the host; :ro refuses writes" \
	bash -c "[[ \$(cat '$TMP/vol/f') == from-ctr ]] && grep -q host '$TMP/vol.out' && grep -qi read-only '$TMP/vol.out'"
out=$(in_terminal "${PM[*]} ${RUN[*]} --rm -it localhost/silo-bb:1 sh -c 'tty; echo tty-\$((6*7))'")
check "-it: a terminal (through --console-socket): $(head -c 120 <<< "$out" | tr '\n' ' ')" bash -c "grep -q '^/dev/pts/' <<< '$out' && grep -q tty-42 <<< '$out'"

# stop, kill, exec on a detached container
cid=$(timeout 60 "${PM[@]}" "${RUN[@]}" -d localhost/silo-bb:1 sh -c 'trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done')
check "run -d: running" bash -c "[[ \$(${PM[*]} inspect -f '{{.State.Status}}' $cid) == running ]]"
out=$(timeout 60 "${PM[@]}" exec "$cid" sh -c 'echo in-exec; exit 3' 2>&1); rc=$?
check "exec: output and exit status (3)" bash -c "[[ $rc == 3 && '$out' == in-exec ]]"
out=$(timeout 60 "${PM[@]}" exec -u 1000 -w /srv "$cid" sh -c 'echo $(id -u) $(pwd)' 2>&1)
check "exec -u -w" test "$out" = "1000 /srv"
t0=$(date +%s%N)
timeout 60 "${PM[@]}" stop -t 20 "$cid" > /dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "stop: the process's TERM handler runs, exit 0 in ${ms} ms (well before the 20 s timeout)" \
	bash -c "[[ \$(${PM[*]} inspect -f '{{.State.ExitCode}}' $cid) == 0 && $ms -lt 15000 ]] && ${PM[*]} logs $cid | grep -q bye"
"${PM[@]}" rm "$cid" > /dev/null
cid=$(timeout 60 "${PM[@]}" "${RUN[@]}" -d localhost/silo-bb:1 sleep 60)
timeout 60 "${PM[@]}" kill -s KILL "$cid" > /dev/null
timeout 60 "${PM[@]}" wait "$cid" > /dev/null
check "kill -s KILL: exit 137" bash -c "[[ \$(${PM[*]} inspect -f '{{.State.ExitCode}}' $cid) == 137 ]]"
"${PM[@]}" rm "$cid" > /dev/null
cid=$(timeout 60 "${PM[@]}" "${RUN[@]}" -d localhost/silo-bb:1 sleep 60)
timeout 60 "${PM[@]}" stop -t 5 "$cid" > /dev/null
check "stop of a process without a handler: SIGTERM ends it (143; not PID 1 in its sandbox)" \
	bash -c "[[ \$(${PM[*]} inspect -f '{{.State.ExitCode}}' $cid) == 143 ]]"
"${PM[@]}" rm "$cid" > /dev/null
cid=$(timeout 60 "${PM[@]}" "${RUN[@]}" -d localhost/silo-bb:1 sleep 60)
timeout 60 "${PM[@]}" pause "$cid" > /dev/null && st=$("${PM[@]}" inspect -f '{{.State.Status}}' "$cid")
timeout 60 "${PM[@]}" unpause "$cid" > /dev/null && st2=$("${PM[@]}" inspect -f '{{.State.Status}}' "$cid")
check "pause / unpause ($st, $st2)" test "$st $st2" = "paused running"
timeout 60 "${PM[@]}" rm -f "$cid" > /dev/null
check "rm -f of a running container" bash -c "[[ -z \$(${PM[*]} ps -aq) ]]"
check "after --rm and rm: no container, sandbox, cgroup, mount or runtime state left" \
	nothing_left "containers:${PM[*]} ps -aq"
exit $FAILED
