# SPDX-License-Identifier: Apache-2.0
# A raw WebSocket client (RFC 6455, stdlib only) for silod's interactive
# sessions (docs/openapi.yaml "Interactive sessions"), used by the
# integration tests: it speaks the bytes itself so the tests check the wire,
# and it can misbehave on purpose (unmasked frames, oversized messages).
import base64
import hashlib
import json
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    pass


class WS:
    def __init__(self, sock_path, path, token=None, tcp=None, headers=None):
        if tcp:
            self.s = socket.create_connection(tcp)
        else:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(sock_path)
        key = base64.b64encode(os.urandom(16)).decode()
        h = [f"GET {path} HTTP/1.1", "Host: silod", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if token:
            h.append(f"Authorization: Bearer {token}")
        h += headers or []
        self.s.sendall(("\r\n".join(h) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                d = self.s.recv(65536)
                if not d:
                    break
                self.buf += d
            self.body = self.buf
            return
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == want, self.headers
        self.closed = None

    def _read_until(self, sep):
        while sep not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise Closed("connection closed during the handshake")
            self.buf += d
        i = self.buf.index(sep) + len(sep)
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def _read(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise Closed("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, op, data, mask=True, fin=True):
        hdr = bytes([(0x80 if fin else 0) | op])
        n = len(data)
        m = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([m | n])
        elif n < 65536:
            hdr += bytes([m | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([m | 127]) + struct.pack(">Q", n)
        if mask:
            k = os.urandom(4)
            data = bytes(b ^ k[i % 4] for i, b in enumerate(data))
            hdr += k
        self.s.sendall(hdr + data)

    def send_text(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def send_stdin(self, data):
        self.send_frame(2, data)

    def recv(self):
        """(opcode, payload) of the next data message; raises Closed on a close frame."""
        msg, mop = b"", None
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            assert not (b1 & 0x80), "server frames must not be masked"
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            if op == 8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                self.closed = (code, data[2:].decode(errors="replace"))
                raise Closed(f"close {code} {self.closed[1]}")
            if op == 9:
                self.send_frame(10, data)
                continue
            if op == 10:
                continue
            if op != 0:
                mop = op
            msg += data
            if b0 & 0x80:
                return mop, msg

    def run(self, stdin=b"", controls=(), timeout=30):
        """Send stdin (then the controls), collect until the server closes:
        returns (stdout, stderr, [text messages])."""
        self.s.settimeout(timeout)
        if stdin:
            self.send_stdin(stdin)
        for c in controls:
            self.send_text(c)
        out, err, texts = b"", b"", []
        try:
            while True:
                op, d = self.recv()
                if op == 2:
                    if d[:1] == b"\x01":
                        out += d[1:]
                    else:
                        err += d[1:]
                else:
                    texts.append(json.loads(d))
        except Closed:
            pass
        return out, err, texts

    def close(self):
        try:
            self.send_frame(8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.s.close()
