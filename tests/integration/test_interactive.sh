#!/usr/bin/env bash
# Interactive sessions and process control (issue 14, "Missing that every peer
# has"), through a real silod, the CLI and raw HTTP/WebSocket clients, with the
# namespace provider:
# - `silo exec -it` and `silo shell` on a pseudo-terminal driven by this test
#   (python3's pty): the size at start and after a resize (SIGWINCH), raw mode
#   while the session runs (^C reaches the sandbox, not the CLI), the exit
#   status, the terminal restored when the session ends and when the CLI is
#   killed (SIGTERM) in the middle;
# - a PTY session over a raw WebSocket client (tests/integration/silo_ws.py):
#   the handshake, resize, exit status; refusals (no Upgrade header, a bad
#   start request, an unmasked client frame);
# - background processes: exec -d, procs, kill, attach, wait (exit statuses),
#   output kept until read and the exit status known before, a process nobody
#   reads blocked with at most the bounded buffer held (silod RSS measured),
#   two readers getting the same bytes, stdin with a timeout;
# - a delete while a session and an attach are open ends both at once.
# TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=$HERE${PYTHONPATH:+:$PYTHONPATH}

start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
A=$(create_ns inter 256)
check "sandbox created" test -n "$A"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- the CLI on a terminal
# pty_run SCRIPT: drive `silo` on a pseudo-terminal; SCRIPT is Python with
# spawn(argv), send(bytes), expect(bytes, t), tty_flags(), resize(rows, cols),
# done() -> exit status, out (everything read so far), finish(): prints "exit N" (done())
# and "restored True|False" (the terminal is canonical with echo again).
pty_run() {
	python3 - "$SILO" "$A" <<PY
import os, pty, sys, time, select, termios, struct, fcntl, signal
SILO, SID = sys.argv[1], sys.argv[2]
out = b""
def spawn(argv, rows=30, cols=100):
    global pid, fd, saved
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(SILO, [SILO] + argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    saved = termios.tcgetattr(fd)
def send(b):
    os.write(fd, b)
def expect(pat, t=15):
    global out
    end = time.time() + t
    while time.time() < end:
        if pat in out:
            i = out.index(pat) + len(pat); seen = out[:i]; out = out[i:]; return seen
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try: out += os.read(fd, 65536)
            except OSError: break
    raise SystemExit("timeout waiting for %r; got %r" % (pat, out[-300:]))
def tty_flags():
    a = termios.tcgetattr(fd)
    return bool(a[3] & termios.ICANON), bool(a[3] & termios.ECHO)
def resize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)
def done(t=15):
    end = time.time() + t
    while time.time() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
        time.sleep(0.05)
    os.kill(pid, 9); return -1
def finish():
    print("exit", done())
    print("restored", tty_flags() == (True, True))
$1
PY
}

r=$(pty_run '
spawn(["exec", "-it", SID, "--", "sh"], 30, 100)
expect(b"# ")
c0 = tty_flags()
print("raw-during", c0 == (False, False))
send(b"stty size\r"); print("size-start", b"30 100" in expect(b"# "))
resize(41, 123); time.sleep(0.5)
send(b"stty size\r")
try:
    expect(b"41 123", 5); print("size-resized True")
except SystemExit as e:
    print("size-resized False", e)
expect(b"# ")
send(b"sleep 100\r"); time.sleep(0.5); send(b"\x03")
print("ctrl-c-reaches-the-sandbox", b"# " in expect(b"# ", 5))
send(b"echo still here\r"); expect(b"still here\r\n")
send(b"exit 5\r")
finish()
')
tap_comment <<<"$r"
check "silo exec -it: the local terminal is raw while the session runs" grep -q "raw-during True" <<<"$r"
check "silo exec -it: stty size in the sandbox is the terminal's (30 100)" grep -q "size-start True" <<<"$r"
check "silo exec -it: a resize (SIGWINCH) reaches the PTY (41 123)" grep -q "size-resized True" <<<"$r"
check "silo exec -it: ^C interrupts the command in the sandbox, the session goes on" grep -q "ctrl-c-reaches-the-sandbox True" <<<"$r"
check "silo exec -it: the exit status of the shell (5) is ours" grep -q "^exit 5" <<<"$r"
check "silo exec -it: the terminal is restored (canonical, echo) afterwards" grep -q "restored True" <<<"$r"

r=$(pty_run '
spawn(["exec", "-it", SID, "--", "sh"])
expect(b"# ")
os.kill(pid, signal.SIGTERM)
finish()
')
tap_comment <<<"$r"
check "silo exec -it killed by SIGTERM: the terminal is restored" grep -q "restored True" <<<"$r"
check "... and it dies of the signal (143)" grep -q "^exit 143" <<<"$r"
sleep 0.5
n=$(api GET "/v1/sandboxes/$A/procs" | jget 'len([p for p in j["procs"] if p["session"]])')
check "... and its session process is gone from the sandbox ($n left)" test "$n" = 0

r=$(pty_run '
spawn(["shell", SID])
expect(b"# ")
send(b"echo $0 $TERM\r"); print(expect(b"# ").decode(errors="replace").replace("\r\n", " "))
send(b"exit\r")
print("exit", done())
')
tap_comment <<<"$r"
check "silo shell: a login shell with TERM set, exit 0" bash -c "grep -q 'sh xterm' <<<'$r' && grep -q '^exit 0' <<<'$r'"

out=$("$SILO" exec -t "$A" -- sh -c 'tty >/dev/null && stty size')
check "silo exec -t without a terminal: still a PTY (24 80): $out" test "$(tr -d '\r' <<<"$out")" = "24 80"
out=$(printf 'line1\nline2\n' | "$SILO" exec -i "$A" -- sh -c 'cat; exit 3')
st=$?
check "silo exec -i streams stdin, the exit status is the command's" test "$out:$st" = "line1
line2:3"
head -c 20000000 /dev/urandom > "$TMP/big.in"
sum=$("$SILO" exec -i "$A" -- sha256sum < "$TMP/big.in" | cut -d' ' -f1)
check "silo exec -i: 20 MB of stdin arrive byte-exact (flow-controlled)" test "$sum" = "$(sha256sum < "$TMP/big.in" | cut -d' ' -f1)"

# ---------------------------------------------------------------- raw WebSocket
r=$(python3 - "$SOCK" "$A" <<'PY'
import sys, time, json, struct
from silo_ws import WS, Closed
sock, sid = sys.argv[1], sys.argv[2]
w = WS(sock, f"/v1/sandboxes/{sid}/session")
print("status", w.status)
w.send_text({"argv": ["sh", "-c", "stty size; read a; stty size; echo got $a; exit 4"], "pty": True,
             "rows": 25, "cols": 90, "stdin_open": True})
op, d = w.recv(); first = json.loads(d); print("first", first.get("proc"), first.get("pty"))
seen = b""
while b"25 90" not in seen:
    op, d = w.recv(); seen += d[1:]
w.send_text({"resize": {"rows": 50, "cols": 132}}); time.sleep(0.2)
w.send_stdin(b"x\r")
out, err, texts = w.run()
out = seen + out
print("out", out.replace(b"\r\n", b"|").decode())
print("exit", texts[-1].get("exit_code"), "close", w.closed[0])
# keystroke round trip: one byte to cat on a PTY and its echo back
w = WS(sock, f"/v1/sandboxes/{sid}/session")
w.send_text({"argv": ["cat"], "pty": True, "stdin_open": True}); w.recv()
rtt = []
for i in range(50):
    t = time.perf_counter(); w.send_stdin(b"k")
    while True:
        op, d = w.recv()
        if op == 2 and b"k" in d: break
    rtt.append((time.perf_counter() - t) * 1000)
rtt.sort(); print("rtt p50 %.2f ms p95 %.2f ms" % (rtt[25], rtt[47]))
w.close()
# refusals
w = WS(sock, f"/v1/sandboxes/{sid}/session", headers=[])
w2 = None
print("bad-start", end=" ")
w2 = WS(sock, f"/v1/sandboxes/{sid}/session"); w2.send_text({"argv": []})
try:
    while True:
        op, d = w2.recv(); print(json.loads(d)["error"]["code"], end=" ")
except Closed: print(w2.closed[0])
w3 = WS(sock, f"/v1/sandboxes/{sid}/session"); w3.send_text({"argv": ["sleep", "30"]}); w3.recv()
w3.send_frame(2, b"unmasked", mask=False)
try:
    while True: w3.recv()
except Closed: print("unmasked-close", w3.closed[0])
PY
)
tap_comment <<<"$r"
check "WebSocket /session: 101, a PTY process" bash -c "grep -q 'status 101' <<<'$r' && grep -q 'first p.* True' <<<'$r'"
check "WebSocket: size at start (25 90) and after a resize message (50 132)" grep -q "out 25 90|x|50 132|got x|" <<<"$r"
check "WebSocket: the exit status (4), then a normal close (1000)" grep -q "exit 4 close 1000" <<<"$r"
check "WebSocket: a keystroke round trip was measured" grep -q "rtt p50" <<<"$r"
r2=$(curl -s --unix-socket "$SOCK" -w ' %{http_code}' "http://silod/v1/sandboxes/$A/session")
check "GET /session without Upgrade: 400 naming the WebSocket requirement" bash -c "grep -q 'Upgrade: websocket' <<<'$r2' && grep -q ' 400$' <<<'$r2'"
check "a bad start request: the error (INVALID_CONFIG), then a close" grep -q "bad-start INVALID_CONFIG 101[01]" <<<"$r"
check "an unmasked client frame: closed with 1002 (protocol error)" grep -q "unmasked-close 1002" <<<"$r"

# ---------------------------------------------------------------- background processes (CLI)
P=$("$SILO" exec -d --tag worker "$A" -- sh -c 'echo started; sleep 1; echo finished >&2; exit 7')
check "silo exec -d prints the handle ($P)" grep -qE '^p[0-9]+$' <<<"$P"
l=$("$SILO" procs "$A")
tap_comment <<<"$l"
check "silo procs lists it (handle, tag, state)" grep -qE "^$P +[0-9]+ +worker +running" <<<"$l"
"$SILO" wait "$A" worker
st=$?
check "silo wait by tag: the exit status (7)" test "$st" = 7
out=$("$SILO" attach --no-stdin "$A" "$P" 2> "$TMP/attach.err")
st=$?
check "silo attach after the exit: everything it wrote, and its status" bash -c "test '$out' = started && grep -q finished '$TMP/attach.err' && test $st = 7"
pid=$(api GET "/v1/sandboxes/$A/procs/$P" | jget 'j["pid"]')
check "the process is found by its pid too ($pid)" test "$(api GET "/v1/sandboxes/$A/procs/$pid" | jget 'j["proc"]')" = "$P"
P2=$("$SILO" exec -d "$A" -- sleep 300)
"$SILO" kill "$A" "$P2" INT
"$SILO" wait "$A" "$P2"
st=$?
check "silo kill ID PROC INT: it dies of SIGINT (130)" test "$st" = 130
"$SILO" kill --rm "$A" "$P2"
api GET "/v1/sandboxes/$A/procs/$P2" > /dev/null
expect_error "silo kill --rm forgets it: 404 PROCESS_NOT_FOUND" 404 PROCESS_NOT_FOUND "$P2"
"$SILO" kill "$A" nosuch 2> "$TMP/k.err"
st=$?
check "silo kill of an unknown process: 125, PROCESS_NOT_FOUND" bash -c "test $st = 125 && grep -q PROCESS_NOT_FOUND '$TMP/k.err'"

# attach to a background PTY process: a detach (^]) leaves it running
P3=$(api POST "/v1/sandboxes/$A/procs" -H 'Content-Type: application/json' \
	-d '{"argv":["sh"],"pty":true,"stdin_open":true,"tag":"bgsh"}' | jget 'j["proc"]')
r=$(pty_run '
spawn(["attach", SID, "bgsh"])
time.sleep(0.5); send(b"echo attached-$((6*7))\r"); expect(b"attached-42")
send(b"\x1d")
finish()
')
tap_comment <<<"$r"
check "silo attach to a PTY process: raw session, ^] detaches (exit 0), terminal restored" \
	bash -c "grep -q '^exit 0' <<<'$r' && grep -q 'restored True' <<<'$r'"
check "... and the process keeps running" test "$(api GET "/v1/sandboxes/$A/procs/bgsh" | jget 'j["state"]')" = running

# ---------------------------------------------------------------- bounded buffer, readers, stdin (HTTP)
start_proc() { api POST "/v1/sandboxes/$A/procs" -H 'Content-Type: application/json' -d "$1" | jget 'j["proc"]'; }
rss0=$(rss "$DPID")
B=$(start_proc '{"argv":["sh","-c","head -c 50000000 /dev/zero; echo end"]}')
sleep 2
info=$(api GET "/v1/sandboxes/$A/procs/$B")
rss1=$(rss "$DPID")
echo "# nobody reads 50 MB: $(jget '{k: j[k] for k in ("state","buffered_bytes","output_bytes")}' <<<"$info"); silod RSS $rss0 -> $rss1 KiB"
check "a process nobody reads is blocked (still running after 2 s)" test "$(jget 'j["state"]' <<<"$info")" = running
check "... holding at most the bounded buffer (256 KiB)" test "$(jget 'j["buffered_bytes"]' <<<"$info")" -le 262144
check "... and silod's memory did not grow by the output (< 16 MiB)" test $((rss1 - rss0)) -lt 16384
r=$(curl -s --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/procs/$B/output" | python3 -c 'import base64,json,sys
n=0; last=None
for l in sys.stdin:
    j=json.loads(l)
    if "stream" in j: n+=len(base64.b64decode(j["data"]))
    else: last=j
print(n, last.get("exit_code"))')
check "GET .../output afterwards: all 50000004 bytes, then exit 0 ($r)" test "$r" = "50000004 0"

S=$(start_proc '{"argv":["sh","-c","sleep 1; seq 1 300000"]}')
sum() { curl -s --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/procs/$S/output" | python3 -c 'import base64,hashlib,json,sys
h=hashlib.sha256(); n=0
for l in sys.stdin:
    j=json.loads(l)
    if j.get("stream")=="stdout": d=base64.b64decode(j["data"]); h.update(d); n+=len(d)
print(n, h.hexdigest())'; }
sum > "$TMP/r1" &
s1=$!
sum > "$TMP/r2" &
s2=$!
wait $s1 $s2
want="$(seq 1 300000 | wc -c) $(seq 1 300000 | sha256sum | cut -d' ' -f1)"
check "two readers of one process get the same bytes, byte-exact" bash -c "test \"\$(cat $TMP/r1)\" = '$want' -a \"\$(cat $TMP/r2)\" = '$want'"

C=$(start_proc '{"argv":["cat"],"stdin_open":true}')
api POST "/v1/sandboxes/$A/procs/$C/stdin?eof=1" -H 'Content-Type: application/octet-stream' --data-binary 'to cat' > /dev/null
out=$(curl -s --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/procs/$C/output" | ndjson_out)
check "POST .../stdin?eof=1 then the output: to cat|exit 0" test "$out" = "to cat||0"
D=$(start_proc '{"argv":["sleep","30"],"stdin_open":true}')
head -c 2000000 /dev/zero > "$TMP/2m"
api POST "/v1/sandboxes/$A/procs/$D/stdin?timeout_ms=500" -H 'Content-Type: application/octet-stream' \
	--data-binary @"$TMP/2m" > /dev/null
expect_error "stdin to a process that does not read: 504 TIMEOUT after the timeout" 504 TIMEOUT "not reading"
check "... saying how much went in (window + pipe, less than 2 MB)" \
	python3 -c "import json,sys; a=json.load(open('$TMP/body'))['accepted']; sys.exit(0 if 0 < a < 2000000 else 1)"
api POST "/v1/sandboxes/$A/procs/$D/signal" -H 'Content-Type: application/json' -d '{"signal":"BOGUS"}' > /dev/null
expect_error "a signal name that does not exist: 400 naming signal" 400 INVALID_CONFIG "signal"
api POST "/v1/sandboxes/$A/procs/$D/resize" -H 'Content-Type: application/json' -d '{"rows":5,"cols":5}' > /dev/null
expect_error "resize of a process without a PTY: 400" 400 INVALID_CONFIG "no PTY"
api POST "/v1/sandboxes/$A/procs" -H 'Content-Type: application/json' -d '{"argv":["true"],"tag":"p9"}' > /dev/null
expect_error "a tag that looks like a handle: 400" 400 INVALID_CONFIG "tag"
api GET "/v1/sandboxes/$A/procs/$D/wait?timeout_ms=300" > /dev/null
expect_error "wait on a running process past its timeout: 504 TIMEOUT" 504 TIMEOUT "still running"

# ---------------------------------------------------------------- delete with open sessions
python3 - "$SOCK" "$A" > "$TMP/held.out" <<'PY' &
import sys
from silo_ws import WS, Closed
w = WS(sys.argv[1], f"/v1/sandboxes/{sys.argv[2]}/session")
w.send_text({"argv": ["sleep", "600"], "stdin_open": True}); w.recv()
print("open", flush=True)
try:
    while True: w.recv()
except Closed: print("closed", w.closed, flush=True)
except Exception as e: print("ended", e, flush=True)
PY
HP=$!
curl -s -N --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/procs/bgsh/output" > /dev/null &
OP=$!
sleep 1
delete_timed "$A"
echo "# delete with an open session and an attached reader: $MS ms"
check "a delete with an open session and an attached reader completes (200) in < 10 s" test "$(status)" = 200 -a "$MS" -lt 10000
for _ in $(seq 1 50); do kill -0 $HP 2>/dev/null || break; sleep 0.1; done
check "the session's client was disconnected" bash -c "! kill -0 $HP 2>/dev/null"
wait $OP 2>/dev/null
stop_daemon
check_clean_exit "silod exits 0, no sanitizer report"
