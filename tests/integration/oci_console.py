#!/usr/bin/env python3
# The engine's side of runc's --console-socket protocol, for the silo-oci tests:
# listen on SOCKET, receive the pty master (SCM_RIGHTS), set its size, type the
# lines of INPUT (one every 0.3 s), copy what the pty prints to stdout until it
# closes or TIMEOUT seconds pass. Exit 0 when a master arrived, 3 otherwise.
#   oci_console.py SOCKET INPUT [ROWS COLS] [TIMEOUT]
import array, fcntl, os, select, socket, struct, sys, termios, time

path, text = sys.argv[1], sys.argv[2].encode().decode("unicode_escape")
rows, cols = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (30, 100)
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 20
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
print("listening", flush=True, file=sys.stderr)
srv.settimeout(timeout)
conn, _ = srv.accept()
fds = array.array("i")
msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
for level, kind, data in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
if not fds:
    sys.exit(3)
m = fds[0]
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
lines = [l + "\n" for l in text.split("\n") if l]
end = time.time() + timeout
next_write = time.time() + 0.5
out = b""
while time.time() < end:
    r, _, _ = select.select([m], [], [], 0.1)
    if r:
        try:
            chunk = os.read(m, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if lines and time.time() >= next_write:
        os.write(m, lines.pop(0).encode())
        next_write = time.time() + 0.3
sys.stdout.write(out.decode(errors="replace"))
