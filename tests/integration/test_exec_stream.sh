#!/usr/bin/env bash
# Exec output is never dropped (issue 14 item 2): back-pressure from the client
# through silod, the channel and the agent down to the process's pipe, per task
# (docs/protocol.md "Flow control"). A real silod, the namespace provider:
# - a slow reader over the CLI, over HTTP (a client that stops reading, one that
#   reads at a limited rate) and with stdin: byte-exact output (SHA-256);
# - a command killed by the OOM killer is named so (oom_killed, the CLI's note);
# - other tasks on the same sandbox keep working while one stream is stalled
#   (exec round trips measured and printed; asserted only to complete);
# - a stalled stream costs no memory: silod and agent RSS stay bounded and the
#   guest process is blocked in write(2), not running ahead;
# - killing the client mid-stream kills the task and frees everything.
# TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT

# ASan keeps freed memory in a quarantine (256 MiB by default), which would hide
# what silod itself holds: keep it small so RSS measures silod's own bound.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
A=$(create_ns stream 512)
check "sandbox created" test -n "$A"
AGENT=$(api GET "/v1/sandboxes/$A" | jget 'j["pid"]')
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$DPID/fd" | wc -l; }
# NDJSON exec stream on stdin -> "<stdout bytes> <sha256 of stdout> <exit code>"
ndjson_sum() {
	python3 -c 'import base64,hashlib,json,sys
h=hashlib.sha256(); n=0; ex=None
for l in sys.stdin:
    j=json.loads(l)
    if j.get("stream")=="stdout":
        d=base64.b64decode(j["data"]); h.update(d); n+=len(d)
    elif "exit_code" in j: ex=j["exit_code"]
    elif "error" in j: ex=j["error"]["code"]
print(n, h.hexdigest(), ex)'
}
run() { exec_json "$A" "$(python3 -c 'import json,sys; print(json.dumps({"argv":sys.argv[1:]}))' "$@")" | ndjson_out; }
check "the sandbox's pid is its agent" test "$(cat "/proc/$AGENT/comm")" = silo-agent
fd0=$(fds)

# ---------------------------------------------------------------- CLI, slow consumer
t0=$(date +%s%N)
out=$("$SILO" exec "$A" -- head -c 200000000 /dev/zero | (sleep 2; wc -c))
st=${PIPESTATUS[0]}
echo "# CLI: 200000000 bytes behind a 2 s stall in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "silo exec -- head -c 200000000 /dev/zero | (sleep 2; wc -c) prints 200000000 (got $out)" test "$out" = 200000000
check "silo exec exits 0 after the stalled pipe" test "$st" = 0
out=$("$SILO" exec "$A" -- seq 1 6000000 | (sleep 1; sha256sum) | cut -d' ' -f1)
check "silo exec -- seq 1 6000000 behind a slow pipe: byte-exact (SHA-256)" test "$out" = "$(seq 1 6000000 | sha256sum | cut -d' ' -f1)"

# embedded: `silo run` without silod drives the channel itself
out=$(SILO_SOCKET=$TMP/no-silod.sock "$SILO" run --provider namespace -- head -c 200000000 /dev/zero | (sleep 2; wc -c))
check "silo run without silod, behind a 2 s stall: 200000000 (got $out)" test "$out" = 200000000
SILO_SOCKET=$TMP/no-silod.sock "$SILO" run --provider namespace -- head -c 1000000 /dev/zero > /dev/full 2> "$TMP/full.err"
st=$?
check "silo run without silod into /dev/full: 125 naming ENOSPC" bash -c "test $st = 125 && grep -q 'No space left' '$TMP/full.err'"
"$SILO" exec "$A" -- head -c 1000000 /dev/zero > /dev/full 2> "$TMP/full.err"
st=$?
echo "# $(cat "$TMP/full.err")"
check "output that cannot be written (/dev/full) is an error (125, ENOSPC), not a silent exit 0" \
	bash -c "test $st = 125 && grep -q 'No space left' '$TMP/full.err'"

# ---------------------------------------------------------------- HTTP, slow readers
SEQSUM=$(seq 1 6000000 | sha256sum | cut -d' ' -f1)
SEQLEN=$(seq 1 6000000 | wc -c)
r=$(exec_client "$A" 2 seq 1 6000000 | tail -1)
check "HTTP client that reads nothing for 2 s: seq 1 6000000 byte-exact ($r)" \
	test "$(cut -d' ' -f1-2 <<<"$r")" = "$SEQLEN $SEQSUM"
check "... and the exit line says 0, with no dropped_bytes" bash -c "grep -q '\"exit_code\":0' <<<'$r' && ! grep -q dropped <<<'$r'"
t0=$(date +%s%N)
r=$(curl -s --limit-rate 24M --unix-socket "$SOCK" -H 'Content-Type: application/json' \
	-d '{"argv":["seq","1","6000000"]}' "http://silod/v1/sandboxes/$A/exec" | ndjson_sum)
echo "# curl --limit-rate 24M: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "curl --limit-rate 24M: seq 1 6000000 byte-exact" test "$r" = "$SEQLEN $SEQSUM 0"
head -c 5000000 /dev/urandom > "$TMP/in.bin"
printf '{"argv":["sh","-c","sleep 1; cat"],"stdin":"%s"}' "$(base64 -w0 "$TMP/in.bin")" > "$TMP/in.json"
r=$(curl -s --unix-socket "$SOCK" -H 'Content-Type: application/json' --data-binary @"$TMP/in.json" \
	"http://silod/v1/sandboxes/$A/exec" | ndjson_sum)
check "5 MB of stdin to a process that reads it late comes back byte-exact" \
	test "$r" = "5000000 $(sha256sum < "$TMP/in.bin" | cut -d' ' -f1) 0"

# ---------------------------------------------------------------- a stalled stream costs nothing, stalls nobody
# rtt20 WHAT TAG: 20 execs of `true` over HTTP, round trips printed (not asserted)
rtt20() {
	local rtts=() i t0 sorted
	for i in $(seq 1 20); do
		t0=$(date +%s%N)
		exec_to "$A" '{"argv":["true"]}' "$TMP/true.$2.$i"
		rtts+=($(( ($(date +%s%N) - t0) / 1000 )))
	done
	sorted=$(printf '%s\n' "${rtts[@]}" | sort -n)
	echo "# exec round trip of true (curl) $1: n=20 p50 $(sed -n 11p <<<"$sorted") us, max $(tail -1 <<<"$sorted") us"
}
rtt20 "with nothing else running" idle
d0=$(rss "$DPID"); a0=$(rss "$AGENT")
exec_client "$A" 5 head -c 200000000 /dev/zero > "$TMP/stalled.out" &
SPID=$!
sleep 1.5
hp=$(run sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = head ] && cat $p/wchan; done; echo')
echo "# the stalled head is waiting in: ${hp%%|*}"
check "the stalled process is blocked writing its pipe, not running ahead" bash -c "[[ '${hp%%|*}' == *pipe_write* ]]"
d1=$(rss "$DPID"); a1=$(rss "$AGENT")
echo "# while stalled: silod RSS $((d0 / 1024)) -> $((d1 / 1024)) MiB, agent RSS $a0 -> $a1 KiB"
check "silod RSS grows by < 32 MiB while a 200 MB stream is stalled" test $((d1 - d0)) -lt 32768
check "agent RSS stays under 16 MiB" test "$a1" -lt 16384
rtt20 "while a 200 MB stream is stalled" stalled
check "20 execs of true complete (exit 0) while another task's stream is stalled" \
	test "$(grep -l '"exit_code":0' "$TMP"/true.stalled.* | wc -l)" = 20
echo during > "$TMP/during"
api PUT "/v1/sandboxes/$A/files?path=/tmp/during" --data-binary @"$TMP/during" > /dev/null
check "file upload and download work meanwhile" test "$(api GET "/v1/sandboxes/$A/files?path=/tmp/during")" = during
wait $SPID
r=$(tail -1 "$TMP/stalled.out")
check "the stalled stream then delivers all 200000000 bytes, exit 0 ($r)" \
	bash -c "[[ '$r' == '200000000 '*'\"exit_code\":0'* ]]"

# ---------------------------------------------------------------- killing the client kills the task
# kill_client_mid_stream NAME CMD...: CMD runs `sh -c 'echo $$ > /tmp/NAME.pid; exec cat
# /dev/zero'` in the sandbox; kill -9 it (and its children) after 1 s. True once that
# process in the sandbox is gone.
kill_client_mid_stream() {
	local name=$1; shift
	"$@" > /dev/null &
	local cpid=$!
	sleep 1
	# CMD may be a shell function (exec_client): its python runs as a child of $cpid
	kill -9 "$cpid" $(cat /proc/"$cpid"/task/*/children 2>/dev/null)
	wait "$cpid" 2>/dev/null
	for _ in $(seq 1 50); do
		[ "$(run sh -c "kill -0 \$(cat /tmp/$name.pid) 2>/dev/null && echo alive || echo gone")" = "gone||0" ] && return 0
		sleep 0.1
	done
	return 1
}
victim='echo $$ > /tmp/NAME.pid; exec cat /dev/zero'
check "kill -9 of the CLI mid-stream kills the process in the sandbox" \
	kill_client_mid_stream v1 "$SILO" exec "$A" -- sh -c "${victim/NAME/v1}"
check "a stalled HTTP client that dies kills its process too" \
	kill_client_mid_stream v2 exec_client "$A" 30 sh -c "${victim/NAME/v2}"
sleep 0.3
fd1=$(fds)
check "no fd leak in silod ($fd0 -> $fd1)" test "$fd1" -le $((fd0 + 2))

# ---------------------------------------------------------------- OOM kills are named (issue 14 item 7)
# A 128 MiB sandbox: a command past the limit ends with 137 and "oom_killed":
# true (the sandbox cgroup's oom_kill count rose while it ran); a command that
# kills itself with SIGKILL, or one killed by its timeout, says false.
B=$(create_ns oom 128)
oomx() { # oomx JSON -> "exit_code signal oom_killed" of the exit line
	exec_json "$B" "$1" | python3 -c 'import json,sys
e=[j for j in map(json.loads, sys.stdin) if "exit_code" in j or "error" in j][-1]
print(e.get("exit_code"), e.get("signal"), e.get("oom_killed"))'
}
HOG='dd if=/dev/zero bs=1M count=600 2>/dev/null | tail > /dev/null'
r=$(oomx "{\"argv\":[\"sh\",\"-c\",\"$HOG\"]}")
check "a shell whose pipeline allocates past 128 MiB: exit 137, oom_killed true ($r)" test "$r" = "137 0 True"
r=$(oomx '{"argv":["sh","-c","exec tail /dev/zero"]}')
check "a process killed by the OOM killer itself: signal 9, oom_killed true ($r)" test "$r" = "137 9 True"
r=$(oomx '{"argv":["sh","-c","kill -9 $$"]}')
check "kill -9 \$\$ (exit 137, no OOM): oom_killed false ($r)" test "$r" = "137 9 False"
r=$(oomx '{"argv":["sleep","10"],"timeout_ms":300}')
check "a command killed by its timeout: oom_killed false ($r)" test "$r" = "137 9 False"
"$SILO" exec "$B" -- sh -c "$HOG" > /dev/null 2> "$TMP/oom.err"
st=$?
echo "# $(tr '\n' '|' < "$TMP/oom.err")"
check "silo exec of an OOM-killed command: exit 137 and 'silo: command OOM-killed (memory limit 128 MiB)'" \
	bash -c "test $st = 137 && grep -qx 'silo: command OOM-killed (memory limit 128 MiB)' '$TMP/oom.err'"
"$SILO" exec "$B" -- sh -c 'kill -9 $$' 2> "$TMP/kill.err"
st=$?
check "silo exec of kill -9 \$\$: exit 137, no OOM note" bash -c "test $st = 137 && ! grep -q OOM '$TMP/kill.err'"
P=$("$SILO" exec -d "$B" -- sh -c "$HOG")
"$SILO" wait "$B" "$P" 2> "$TMP/wait.err"
st=$?
check "a background process OOM-killed: silo wait exits 137 with the note ($P)" \
	bash -c "test $st = 137 && grep -q 'OOM-killed (memory limit 128 MiB)' '$TMP/wait.err'"
r=$(api GET "/v1/sandboxes/$B/procs/$P" | jget 'j["exit"]["oom_killed"]')
check "... and its status route says oom_killed ($r)" test "$r" = true
# the agent's fd 4 is host root's memory.oom_control: readable, never writable
r=$(oomx '{"argv":["sh","-c","grep -q oom_kill /proc/1/fd/4 && ! echo 1 2>/dev/null > /proc/1/fd/4"]}')
check "the sandbox reads its OOM counter (/proc/1/fd/4) but cannot write it (oom_kill_disable) ($r)" \
	test "$r" = "0 0 False"
r=$(oomx '{"argv":["echo","alive"]}')
check "the sandbox lives on after the OOM kills ($r)" test "$r" = "0 0 False"
api DELETE "/v1/sandboxes/$B?grace_ms=0" > /dev/null

# ---------------------------------------------------------------- a stalled client does not hold up a delete
exec_client "$A" 3 head -c 200000000 /dev/zero > "$TMP/deleted.out" &
SPID=$!
sleep 1
delete_timed "$A"
echo "# delete with a stalled 200 MB stream open: $MS ms"
check "delete while a client stalls a stream: 200 without waiting for the client" bash -c "test $(status) = 200 -a $MS -lt 10000"
wait $SPID
r=$(tail -1 "$TMP/deleted.out")
check "the stalled client then gets what was buffered and an end line (killed: signal 9) ($r)" \
	bash -c "[[ '$r' == *'\"signal\":9'* || '$r' == *'\"error\"'* ]]"
stop_daemon
check_clean_exit "silod exits cleanly, no sanitizer report"
exit $((FAILED > 0))
