#!/usr/bin/env bash
# containerd (Debian's 1.6, unchanged) with its runc shim (io.containerd.runc.v2)
# running silo-oci as the runc binary (`ctr run --runc-binary`), on a private
# containerd (own root, state and sockets under this test's directory); then
# Docker (Debian's docker.io 20.10) with `dockerd --add-runtime silo=...` on a
# private dockerd (unix socket only, no bridge, no iptables) when it can run
# here. Output, exit codes, exec, kill, a terminal, env, cleanup. The
# Kubernetes RuntimeClass of docs/kubernetes.md is this same containerd
# runtime handler (its files are checked by the kubernetes-manifests test).
#
# The runc shim hands the binary --root /run/containerd/runc/<namespace> and no
# environment of ours: the binary is a wrapper that points silo-oci at this
# test's directories.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
TMP=$(mktemp -d /tmp/silo-oci-ctd.XXXXXX)
ROOT="$TMP/oci"
TOOLS=(script containerd ctr containerd-shim-runc-v2)
source "$S/tests/integration/oci-lib.sh"
CTD_PID= DOCKERD_PID=
CTR=(ctr --address "$TMP/ctd/c.sock")
cleanup() {
	if [[ -n "$DOCKERD_PID" ]]; then
		/usr/bin/docker -H "unix://$TMP/docker.sock" rm -f $(/usr/bin/docker -H "unix://$TMP/docker.sock" ps -aq) > /dev/null 2>&1
		kill "$DOCKERD_PID" 2> /dev/null
		for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2> /dev/null || break; sleep 0.1; done
	fi
	if [[ -n "$CTD_PID" ]]; then
		for t in $("${CTR[@]}" task ls -q 2> /dev/null); do "${CTR[@]}" task kill -s SIGKILL "$t" > /dev/null 2>&1; done
		sleep 0.5
		for t in $("${CTR[@]}" task ls -q 2> /dev/null); do "${CTR[@]}" task delete -f "$t" > /dev/null 2>&1; done
		for c in $("${CTR[@]}" container ls -q 2> /dev/null); do "${CTR[@]}" container rm "$c" > /dev/null 2>&1; done
		kill "$CTD_PID" 2> /dev/null
		for _ in $(seq 100); do kill -0 "$CTD_PID" 2> /dev/null || break; sleep 0.1; done
	fi
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2> /dev/null; done
	for d in "$ROOT"/*/; do [[ -d "$d" ]] && "$SO" --root "$ROOT" delete --force "$(basename "$d")" > /dev/null 2>&1; done
	rm -rf "$TMP"
	echo "1..$N"
}
trap cleanup EXIT

# the runc binary the shim runs: silo-oci, with this test's --root and directories
cat > "$TMP/silo-oci" <<EOF
#!/bin/bash
export SILO_CACHE_DIR="$SILO_CACHE_DIR" SILO_STATE_DIR="$SILO_STATE_DIR" SILO_RUNTIME_DIR="$SILO_RUNTIME_DIR"
a=()
while [[ \$# -gt 0 ]]; do
	case "\$1" in
	--root) shift 2 ;;
	--root=*) shift ;;
	*) a+=("\$1"); shift ;;
	esac
done
exec "$SO" --root "$ROOT" "\${a[@]}"
EOF
chmod +x "$TMP/silo-oci"
mkdir -p "$TMP/ctd"
cat > "$TMP/ctd/config.toml" <<EOF
version = 2
root = "$TMP/ctd/root"
state = "$TMP/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$TMP/ctd/c.sock"
[ttrpc]
  address = "$TMP/ctd/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
containerd --config "$TMP/ctd/config.toml" > "$TMP/ctd/log" 2>&1 &
CTD_PID=$!
for _ in $(seq 100); do "${CTR[@]}" version > /dev/null 2>&1 && break; sleep 0.1; done
check "a private containerd answers" bash -c "${CTR[*]} version > /dev/null"
"${CTR[@]}" image import --base-name localhost/silo-test-app "$F/app-docker.tar" > /dev/null 2>&1
IMG=localhost/silo-test-app:1
RUN=("${CTR[@]}" run --runc-binary "$TMP/silo-oci")

out=$(timeout 120 "${RUN[@]}" --rm "$IMG" t1 /bin/echo hi 2>&1); rc=$?
check "ctr run --runc-binary silo-oci --rm IMAGE echo hi prints hi" bash -c "[[ $rc == 0 && '$out' == hi ]]"
out=$(timeout 60 "${RUN[@]}" --rm "$IMG" t2 /bin/cat /proc/1/comm 2>&1)
check "... in a Silo sandbox (the agent is PID 1)" test "$out" = silo-agent
timeout 60 "${RUN[@]}" --rm "$IMG" t3 /bin/sh -c 'exit 42' > /dev/null 2>&1
check "the exit status reaches ctr (42)" test $? = 42
out=$(timeout 60 "${RUN[@]}" --rm --env X=1 --cwd /tmp "$IMG" t4 /bin/sh -c 'echo $X $(pwd) $(id -u) $(id -g) $APP' 2>&1)
check "--env --cwd, and the image's User and Env ($out)" test "$out" = "1 /tmp 1000 1000 silo"
out=$(in_terminal "${RUN[*]} --rm -t $IMG t5 /bin/sh -c 'tty; echo tty-\$((6*7))'")
check "-t: a terminal through the shim's console socket: $(head -c 120 <<< "$out" | tr '\n' ' ')" bash -c "grep -q '/dev/pts/' <<< '$out' && grep -q tty-42 <<< '$out'"
timeout 60 "${RUN[@]}" -d "$IMG" t6 /bin/sleep 60 > /dev/null 2>&1
st=$("${CTR[@]}" task ls 2> /dev/null | awk '$1 == "t6" {print $3}')
check "run -d: the task is RUNNING ($st)" test "$st" = RUNNING
out=$(timeout 60 "${CTR[@]}" task exec --exec-id e1 t6 /bin/sh -c 'echo in-exec; exit 4' 2>&1); rc=$?
check "task exec: output and exit status (4)" bash -c "[[ $rc == 4 && '$out' == in-exec ]]"
check "task ps lists the container's processes" bash -c "[[ \$(${CTR[*]} task ps t6 | wc -l) -ge 3 ]]"
timeout 30 "${CTR[@]}" task kill -s SIGKILL t6 > /dev/null 2>&1
for _ in $(seq 100); do [[ $("${CTR[@]}" task ls 2> /dev/null | awk '$1 == "t6" {print $3}') == STOPPED ]] && break; sleep 0.1; done
check "task kill -s SIGKILL: STOPPED" bash -c "[[ \$(${CTR[*]} task ls | awk '\$1 == \"t6\" {print \$3}') == STOPPED ]]"
"${CTR[@]}" task delete t6 > /dev/null 2>&1
"${CTR[@]}" container rm t6 > /dev/null 2>&1
check "after --rm and delete: no task, container, sandbox, cgroup or runtime state left" \
	nothing_left "tasks:${CTR[*]} task ls -q" "containers:${CTR[*]} container ls -q"

# ---- Docker through dockerd --add-runtime ----
if ! command -v dockerd > /dev/null || [[ ! -x /usr/bin/docker ]]; then
	skip "docker run --runtime silo" "dockerd or /usr/bin/docker (docker.io) not installed"
	exit $FAILED
fi
D=(/usr/bin/docker -H "unix://$TMP/docker.sock")
dockerd --data-root "$TMP/docker" --exec-root "$TMP/docker-exec" --pidfile "$TMP/docker.pid" -H "unix://$TMP/docker.sock" \
	--bridge none --iptables=false --ip6tables=false --ip-masq=false --containerd "$TMP/ctd/c.sock" \
	--add-runtime "silo=$TMP/silo-oci" --default-ulimit nofile=4096:4096 --default-ulimit nproc=4096:4096 \
	> "$TMP/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 150); do "${D[@]}" version > /dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2> /dev/null || break; sleep 0.2; done
if ! "${D[@]}" version > /dev/null 2>&1; then
	log "$(tail -5 "$TMP/dockerd.log" | tr '\n' '|')"
	skip "docker run --runtime silo" "a private dockerd did not start here ($(tail -1 "$TMP/dockerd.log" | cut -c1-160))"
	exit $FAILED
fi
"${D[@]}" load -q -i "$F/app-docker.tar" > /dev/null 2>&1
out=$(timeout 120 "${D[@]}" run --runtime silo --network none --rm --entrypoint /bin/echo "$IMG" hi 2>&1); rc=$?
log "docker: $out"
check "docker run --runtime silo --rm IMAGE echo hi prints hi" bash -c "[[ $rc == 0 && '$out' == hi ]]"
timeout 60 "${D[@]}" run --runtime silo --network none --rm "$IMG" 'exit 7' > /dev/null 2>&1
check "docker: the exit status (7)" test $? = 7
out=$(timeout 60 "${D[@]}" run --runtime silo --network none --rm "$IMG" 'echo $(id -u) $(pwd) $APP' 2>&1)
check "docker: the image's user, workdir and env" test "$out" = "1000 /srv silo"
docker_clean() { # docker removes --rm containers in the background: up to 10 s
	for _ in $(seq 100); do
		nothing_left "containers:${D[*]} ps -aq" > /dev/null && return 0
		sleep 0.1
	done
	nothing_left "containers:${D[*]} ps -aq"
}
check "docker: nothing left (containers, sandboxes, state)" docker_clean
exit $FAILED
