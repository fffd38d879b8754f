# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 to silod over a unix socket or TCP (http.client, standard library).

Target, as the CLI chooses it (cli/api_client.h): SILO_HOST (http://HOST:PORT,
with SILO_API_TOKEN as the bearer token), else the unix socket SILO_SOCKET or
$SILO_RUNTIME_DIR/silod.sock (/run/silo for root, $XDG_RUNTIME_DIR/silo or
/tmp/silo otherwise). Arguments to Client() override the environment.

Threads: a Transport may be shared; each request takes an idle keep-alive
connection from a small pool under a lock (or opens one) and gives it back
when the answer was read to its end. A streamed answer owns its connection
until it is closed; one closed early is dropped, never reused.
"""
import http.client
import io
import json
import os
import socket
import ssl
import threading
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Tuple, TypeVar

from .errors import InvalidConfig, ProtocolError, RemoteUnreachable, Timeout, error_from_body

POOL_MAX = 8
MAX_LINE = 16 << 20  # one NDJSON/SSE line: exec chunks are far smaller


def default_socket() -> str:
    s = os.environ.get("SILO_SOCKET")
    if s:
        return s
    rd = os.environ.get("SILO_RUNTIME_DIR")
    if not rd:
        rd = "/run/silo" if os.geteuid() == 0 else os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "silo")
    return os.path.join(rd, "silod.sock")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


_C = TypeVar("_C", bound="Closing")


class Closing:
    """`with x:` closes x at the end (the classes here and in client.py)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Response(Closing):
    """One answer. For a stream, iterate lines() and close() when done."""

    def __init__(self, transport: "Transport", conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._t = transport
        self._conn: Optional[http.client.HTTPConnection] = conn
        self.raw = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self) -> bytes:
        try:
            data = self.raw.read()
        except (OSError, http.client.HTTPException) as e:
            self.close(reuse=False)
            raise RemoteUnreachable("reading the answer from silod: %s" % e) from e
        self.close(reuse=True)
        return data

    def read_chunk(self, n: int = 65536) -> bytes:
        try:
            return self.raw.read1(n)
        except (OSError, http.client.HTTPException) as e:
            self.close(reuse=False)
            raise RemoteUnreachable("reading the stream from silod: %s" % e) from e

    def lines(self) -> Iterator[bytes]:
        """Each line of the body (without its newline), until the body ends."""
        try:
            while True:
                line = self.raw.readline(MAX_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_LINE:
                    raise ProtocolError("silod sent a line longer than %d bytes" % MAX_LINE)
                yield line.rstrip(b"\r\n")
        except (OSError, http.client.HTTPException) as e:
            self.close(reuse=False)
            raise RemoteUnreachable("reading the stream from silod: %s" % e) from e
        self.close(reuse=True)

    def json(self) -> Any:
        data = self.read()
        try:
            return json.loads(data) if data else {}
        except ValueError as e:
            raise ProtocolError("silod sent invalid JSON: %s" % e, status=self.status) from e

    def close(self, reuse: bool = False) -> None:
        c, self._conn = self._conn, None
        if c is None:
            return
        if reuse and not self.raw.will_close and self.raw.isclosed():
            self._t._release(c)
        else:
            self.raw.close()
            c.close()


def _tls_context(scheme: str, ca: Optional[str], cert: Optional[str], key: Optional[str]) -> Optional[ssl.SSLContext]:
    """TLS as the CLI does it (docs/remote.md): CA, client certificate and key
    from the arguments, else SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY; TLS 1.2+."""
    ca = ca or os.environ.get("SILO_CA") or None
    cert = cert or os.environ.get("SILO_CLIENT_CERT") or None
    key = key or os.environ.get("SILO_CLIENT_KEY") or None
    if scheme != "https":
        if ca or cert or key:
            raise InvalidConfig("ca/cert/key (SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY) need an https:// host")
        return None
    if bool(cert) != bool(key):
        raise InvalidConfig("cert and key (SILO_CLIENT_CERT, SILO_CLIENT_KEY): give both or neither")
    for what, f in (("ca", ca), ("cert", cert), ("key", key)):
        if f and not os.access(f, os.R_OK):
            raise InvalidConfig("%s (%s): not a readable file" % (what, f))
    try:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise InvalidConfig("ca/cert/key (SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY): %s" % e) from None
    return ctx


class Transport:
    def __init__(self, host: Optional[str] = None, token: Optional[str] = None, socket_path: Optional[str] = None,
                 timeout: Optional[float] = None, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None) -> None:
        if host is None and socket_path is None:
            host = os.environ.get("SILO_HOST") or None
        if token is None:
            token = os.environ.get("SILO_API_TOKEN") or None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: List[http.client.HTTPConnection] = []
        self._closed = False
        if host:
            u = urllib.parse.urlsplit(host)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise InvalidConfig("SILO_HOST: expected http://HOST:PORT, got '%s'" % host)
            self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
            self._tls = _tls_context(u.scheme, ca, cert, key)
            self.socket_path = None
            self.target = host.rstrip("/")
        else:
            self.socket_path = socket_path or default_socket()
            self.target = "unix:" + self.socket_path
        self.token = token

    def _new_conn(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self.socket_path:
            return _UnixConnection(self.socket_path, timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _acquire(self) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new_conn(self.timeout), False

    def _release(self, c: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_MAX:
                self._idle.append(c)
                return
        c.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def request(self, method: str, path: str, query: Optional[Dict[str, Any]] = None, body: Any = None,
                content_type: Optional[str] = None, timeout: Optional[float] = None) -> Response:
        """Send one request; an answer >= 400 raises the SiloError of its code.

        body: bytes, str, a dict/list (sent as JSON) or a binary file object
        (sent chunked unless its size is known). timeout: seconds for this
        request's socket operations (default: the client's)."""
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v) for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
        headers = {"Host": "silod" if self.socket_path else self._host}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        chunked = False
        if body is None:
            if method in ("POST", "PUT"):
                body = b""
        elif not isinstance(body, (bytes, bytearray, memoryview)):
            try:
                headers["Content-Length"] = str(os.fstat(body.fileno()).st_size - body.tell())
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                chunked = True
        for attempt in (0, 1):
            conn, reused = self._acquire()
            if timeout is not None or conn.timeout != self.timeout:
                conn.timeout = timeout if timeout is not None else self.timeout
                if conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
            try:
                conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused and attempt == 0 and isinstance(body, (bytes, bytearray, memoryview, type(None))):
                    continue  # a pooled connection the server had closed: once more on a new one
                raise RemoteUnreachable("%s %s via %s: %s" % (method, path, self.target, e)) from e
            except socket.timeout as e:
                conn.close()
                raise Timeout("%s %s via %s: no answer within %ss" % (method, path, self.target, conn.timeout)) from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise RemoteUnreachable("cannot reach silod at %s: %s (is silod running?)" % (self.target, e)) from e
            r = Response(self, conn, resp)
            if r.status >= 400:
                data = r.read()
                raise error_from_body(r.status, data)
            return r
        raise AssertionError("unreachable")

