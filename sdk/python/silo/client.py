# SPDX-License-Identifier: Apache-2.0
"""The synchronous client: Client, Sandbox, Files, Process, ExecResult.

Every call is one HTTP request to silod (docs/openapi.yaml); every failure
raises the SiloError subclass of its stable code (silo.errors). Objects hold
ids, not connections: a Sandbox or Process may be used from any thread.
"""
import base64
import json
import signal as _signal
from dataclasses import dataclass, field
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ._http import Closing, Response, Transport
from .errors import ProtocolError, SiloError, error_from_body

Argv = Union[str, Sequence[str]]
Data = Union[bytes, str]


def _argv(cmd: Argv) -> List[str]:
    if isinstance(cmd, str):
        return ["sh", "-c", cmd]
    out = list(cmd)
    if not out or not all(isinstance(a, str) for a in out):
        raise TypeError("argv: a non-empty list of strings (or one shell command string)")
    return out


def _b(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _seg(s: str) -> str:
    return quote(s, safe="")


def _ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else max(1, int(seconds * 1000))


@dataclass
class ExecResult:
    """A finished command: text and bytes of its output, and how it ended."""
    stdout_bytes: bytes
    stderr_bytes: bytes
    exit_code: int
    signal: int = 0
    timed_out: bool = False
    duration_ms: int = 0

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class Chunk:
    """A piece of output as it came: stream is "stdout" or "stderr"."""
    stream: str
    data: bytes


class CommandFailed(SiloError):
    """exec(..., check=True) of a command that did not exit 0 (not a silod code)."""
    code = "COMMAND_FAILED"
    number = 0

    def __init__(self, result: ExecResult, argv: List[str]) -> None:
        super().__init__("%r exited %d%s: %s" % (argv, result.exit_code, " (timed out)" if result.timed_out else "",
                                                  result.stderr.strip()[-500:]), code="COMMAND_FAILED")
        self.result = result


class ExecStream(Closing):
    """Output of a running command, chunk by chunk (iterate it); then .result.

    Closing it before the end disconnects, and silod kills the command."""

    def __init__(self, resp: Response, sandbox_id: str) -> None:
        self._resp = resp
        self._lines = resp.lines()
        self._sid = sandbox_id
        self.result: Optional[ExecResult] = None
        self._out: List[bytes] = []
        self._err: List[bytes] = []

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        if self.result is not None:
            raise StopIteration
        for line in self._lines:
            if not line.strip():
                continue
            try:
                j = json.loads(line)
            except ValueError as e:
                self.close()
                raise ProtocolError("silod sent a malformed exec line: %s" % e) from e
            if not isinstance(j, dict):
                self.close()
                raise ProtocolError("silod sent an exec line that is not an object")
            if "stream" in j:
                try:
                    data = base64.b64decode(j.get("data", ""), validate=True)
                except (ValueError, TypeError) as e:
                    self.close()
                    raise ProtocolError("silod sent bad base64 in an exec line") from e
                s = j["stream"]
                if s not in ("stdout", "stderr"):
                    self.close()
                    raise ProtocolError("silod sent an exec line of unknown stream %r" % s)
                (self._out if s == "stdout" else self._err).append(data)
                return Chunk(s, data)
            if "error" in j:
                self.close()
                raise error_from_body(200, j)
            if "exit_code" in j:
                self.result = ExecResult(b"".join(self._out), b"".join(self._err), int(j["exit_code"]),
                                         int(j.get("signal") or 0), bool(j.get("timed_out")), int(j.get("duration_ms") or 0))
                self.close()
                raise StopIteration
            self.close()
            raise ProtocolError("silod sent an unknown exec line: %r" % line[:200])
        self.close()
        raise ProtocolError("the exec stream ended without an exit line", sandbox_id=self._sid)

    def wait(self) -> ExecResult:
        """Read to the end (collecting the output) and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def close(self) -> None:
        self._resp.close()


class Process:
    """A background process (or PTY session) of a sandbox, named by its handle."""

    def __init__(self, sandbox: "Sandbox", info: Dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.info = info
        self.handle: str = info.get("proc", "")
        self.pid: int = int(info.get("pid") or 0)

    def _path(self, tail: str = "") -> str:
        return self.sandbox._path("/procs/" + _seg(self.handle) + tail)

    def refresh(self) -> Dict[str, Any]:
        self.info = self.sandbox._t.request("GET", self._path()).json()
        return self.info

    @property
    def state(self) -> str:
        return str(self.info.get("state", ""))

    def write(self, data: Data, eof: bool = False, timeout: Optional[float] = None) -> int:
        """Feed its stdin (started with stdin_open=True); eof closes it (^D on a PTY)."""
        r = self.sandbox._t.request("POST", self._path("/stdin"), query={"eof": eof or None, "timeout_ms": _ms(timeout)},
                                    body=_b(data), content_type="application/octet-stream")
        return int(r.json().get("accepted", 0))

    def close_stdin(self) -> None:
        self.write(b"", eof=True)

    def signal(self, sig: Union[int, str] = "TERM") -> None:
        if isinstance(sig, _signal.Signals):
            sig = int(sig)
        self.sandbox._t.request("POST", self._path("/signal"), body={"signal": sig}).read()

    def resize(self, rows: int, cols: int) -> None:
        self.sandbox._t.request("POST", self._path("/resize"), body={"rows": rows, "cols": cols}).read()

    def wait(self, timeout: Optional[float] = None) -> ExecResult:
        """Wait for its exit (silod's default 30 s unless timeout); output is not touched."""
        ms = _ms(timeout)
        r = self.sandbox._t.request("GET", self._path("/wait"), query={"timeout_ms": ms},
                                    timeout=None if ms is None else ms / 1000 + 30).json()
        e = r.get("exit") or {}
        return ExecResult(b"", b"", int(e.get("exit_code", -1)), int(e.get("signal") or 0), bool(e.get("timed_out")),
                          int(e.get("duration_ms") or 0))

    def output(self) -> ExecStream:
        """Attach as a reader: its output from the oldest byte silod holds, until it exits."""
        return ExecStream(self.sandbox._t.request("GET", self._path("/output")), self.sandbox.id)

    def kill(self) -> Dict[str, Any]:
        """SIGKILL it if it runs, drop its unread output and forget it."""
        return self.sandbox._t.request("DELETE", self._path()).json()

    remove = kill


class Files:
    """The sandbox's file system (paths are resolved inside the sandbox)."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sb = sandbox

    def _req(self, method: str, tail: str, **kw: Any) -> Response:
        return self._sb._t.request(method, self._sb._path(tail), **kw)

    def write(self, path: str, data: Union[Data, IO[bytes]], mode: Optional[int] = None) -> int:
        """Write a whole file (created or replaced); returns its size."""
        body = data if hasattr(data, "read") else _b(data)  # type: ignore[arg-type]
        r = self._req("PUT", "/files", query={"path": path, "mode": None if mode is None else "%04o" % mode},
                      body=body, content_type="application/octet-stream").json()
        return int(r.get("size", 0))

    def read(self, path: str) -> bytes:
        return self._req("GET", "/files", query={"path": path}).read()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def stat(self, path: str) -> Dict[str, Any]:
        return self._req("GET", "/fs/stat", query={"path": path}).json()

    def exists(self, path: str) -> bool:
        from .errors import FileNotFound
        try:
            self.stat(path)
            return True
        except FileNotFound:
            return False

    def list(self, path: str, depth: Optional[int] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        return self._req("GET", "/fs/list", query={"path": path, "depth": depth, "limit": limit}).json().get("entries", [])

    def mkdir(self, path: str, parents: bool = False, mode: Optional[int] = None) -> None:
        body: Dict[str, Any] = {"path": path, "parents": parents}
        if mode is not None:
            body["mode"] = mode
        self._req("POST", "/fs/mkdir", body=body).read()

    def remove(self, path: str, recursive: bool = False) -> None:
        self._req("POST", "/fs/remove", body={"path": path, "recursive": recursive}).read()

    def move(self, src: str, dst: str, overwrite: bool = True) -> None:
        self._req("POST", "/fs/move", body={"from": src, "to": dst, "overwrite": overwrite}).read()

    def tar_out(self, path: str) -> bytes:
        """A tar archive of path and everything below it."""
        return self._req("GET", "/archive", query={"path": path}).read()

    def tar_out_stream(self, path: str, chunk: int = 65536) -> Iterator[bytes]:
        r = self._req("GET", "/archive", query={"path": path})
        try:
            while True:
                b = r.read_chunk(chunk)
                if not b:
                    break
                yield b
            r.close(reuse=True)
        finally:
            r.close()

    def tar_in(self, path: str, archive: Union[bytes, IO[bytes]]) -> int:
        """Extract a tar archive below the directory path; returns the bytes taken."""
        r = self._req("PUT", "/archive", query={"path": path}, body=archive, content_type="application/x-tar").json()
        return int(r.get("bytes", 0))

    def watch(self, path: str, recursive: bool = False) -> Iterator[Dict[str, Any]]:
        """Events {"event": "create"|"write"|..., "name": ...} as they come (close the iterator to stop)."""
        r = self._req("GET", "/fs/watch", query={"path": path, "recursive": recursive or None})
        try:
            for line in r.lines():
                if line.strip():
                    yield json.loads(line)
        finally:
            r.close()


class Sandbox:
    """A sandbox of silod. `with client.create(...) as sb:` deletes it on exit."""

    def __init__(self, client: "Client", info: Dict[str, Any]) -> None:
        self.client = client
        self._t = client._t
        self.info = info
        self.id: str = info["id"]
        self.files = Files(self)

    def __repr__(self) -> str:
        return "<silo.Sandbox %s %s>" % (self.id, self.info.get("state", "?"))

    def _path(self, tail: str = "") -> str:
        return "/v1/sandboxes/" + _seg(self.id) + tail

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def state(self) -> str:
        return str(self.info.get("state", ""))

    @property
    def provider(self) -> str:
        return str(self.info.get("provider", ""))

    def refresh(self) -> "Sandbox":
        self.info = self._t.request("GET", self._path()).json()
        return self

    def _exec_body(self, cmd: Argv, env: Optional[Mapping[str, str]], cwd: Optional[str], stdin: Optional[Data],
                   timeout: Optional[float], uid: Optional[int], gid: Optional[int]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"argv": _argv(cmd)}
        if env:
            body["env"] = dict(env)
        if cwd is not None:
            body["cwd"] = cwd
        if stdin is not None:
            body["stdin"] = base64.b64encode(_b(stdin)).decode()
        if timeout is not None:
            body["timeout_ms"] = _ms(timeout)
        if uid is not None:
            body["uid"] = uid
        if gid is not None:
            body["gid"] = gid
        return body

    def exec_stream(self, cmd: Argv, *, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                    stdin: Optional[Data] = None, timeout: Optional[float] = None, uid: Optional[int] = None,
                    gid: Optional[int] = None) -> ExecStream:
        """Run a command; iterate the returned stream for its output as it comes."""
        body = self._exec_body(cmd, env, cwd, stdin, timeout, uid, gid)
        return ExecStream(self._t.request("POST", self._path("/exec"), body=body), self.id)

    def exec(self, cmd: Argv, *, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
             stdin: Optional[Data] = None, timeout: Optional[float] = None, uid: Optional[int] = None,
             gid: Optional[int] = None, check: bool = False) -> ExecResult:
        """Run a command to its end; its whole output and exit status.

        cmd: an argv list, or a string run by `sh -c`. timeout: seconds, after
        which the command's process group is killed (result.timed_out)."""
        with self.exec_stream(cmd, env=env, cwd=cwd, stdin=stdin, timeout=timeout, uid=uid, gid=gid) as s:
            res = s.wait()
        if check and not res.ok:
            raise CommandFailed(res, _argv(cmd))
        return res

    def spawn(self, cmd: Argv, *, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
              stdin: Optional[Data] = None, stdin_open: bool = False, timeout: Optional[float] = None,
              tag: Optional[str] = None, pty: bool = False, rows: Optional[int] = None, cols: Optional[int] = None,
              uid: Optional[int] = None, gid: Optional[int] = None) -> Process:
        """Start a background process (pty=True: on a pseudo-terminal); see Process."""
        body = self._exec_body(cmd, env, cwd, stdin, timeout, uid, gid)
        for k, v in (("tag", tag), ("rows", rows), ("cols", cols)):
            if v is not None:
                body[k] = v
        if pty:
            body["pty"] = True
        if stdin_open:
            body["stdin_open"] = True
        return Process(self, self._t.request("POST", self._path("/procs"), body=body).json())

    def pty(self, cmd: Argv = ("sh",), *, rows: int = 24, cols: int = 80, **kw: Any) -> Process:
        """An interactive PTY process: write() keystrokes, output() the screen bytes, resize()."""
        return self.spawn(cmd, pty=True, rows=rows, cols=cols, stdin_open=True, **kw)

    def procs(self) -> List[Process]:
        return [Process(self, p) for p in self._t.request("GET", self._path("/procs")).json().get("procs", [])]

    def process(self, ref: str) -> Process:
        """A process by handle (p3), pid or tag."""
        return Process(self, self._t.request("GET", self._path("/procs/" + _seg(str(ref)))).json())

    def logs(self, tail: Optional[int] = None) -> Dict[str, Any]:
        return self._t.request("GET", self._path("/logs"), query={"tail": tail}).json()

    def snapshot(self, tags: Optional[Sequence[str]] = None, keep_paused: bool = False,
                 ttl_s: Optional[int] = None) -> Dict[str, Any]:
        body: Dict[str, Any] = {}
        if tags:
            body["tags"] = list(tags)
        if keep_paused:
            body["keep_paused"] = True
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return self._t.request("POST", self._path("/snapshot"), body=body).json()

    def fork(self, n: int = 1) -> List["Sandbox"]:
        r = self._t.request("POST", self._path("/fork"), body={"n": n}).json()
        return [self.client.get(i) for i in r.get("sandboxes", [])]

    def pause(self) -> "Sandbox":
        self.info = self._t.request("POST", self._path("/pause")).json()
        return self

    def resume(self) -> "Sandbox":
        self.info = self._t.request("POST", self._path("/resume")).json()
        return self

    def events(self, types: Optional[Sequence[str]] = None, limit: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        return self.client.events(sandbox=self.id, types=types, limit=limit)

    def delete(self, grace: Optional[float] = None) -> Dict[str, Any]:
        """Terminate (grace seconds, then force) and verify the cleanup; the final record."""
        self.info = self._t.request("DELETE", self._path(), query={"grace_ms": None if grace is None else int(grace * 1000)}).json()
        return self.info

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        from .errors import VmNotFound
        try:
            self.delete()
        except VmNotFound:
            pass


class Client(Closing):
    """A connection to silod. Defaults follow the CLI: SILO_HOST + SILO_API_TOKEN
    (https with SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY), else the unix socket
    SILO_SOCKET or $SILO_RUNTIME_DIR/silod.sock. CLI contexts are not read."""

    def __init__(self, host: Optional[str] = None, token: Optional[str] = None, socket_path: Optional[str] = None,
                 timeout: Optional[float] = None, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None) -> None:
        self._t = Transport(host, token, socket_path, timeout, ca, cert, key)

    @property
    def target(self) -> str:
        return self._t.target

    def close(self) -> None:
        self._t.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Any API call (docs/openapi.yaml) returning its JSON answer."""
        return self._t.request(method, path, **kw).json()

    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/v1/health")

    def providers(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/v1/providers").get("providers", [])

    def create(self, spec: Optional[str] = None, *, provider: Optional[str] = None, name: Optional[str] = None,
               image: Optional[str] = None, vcpus: Optional[int] = None, memory_mb: Optional[int] = None,
               env: Optional[Mapping[str, str]] = None, metadata: Optional[Mapping[str, str]] = None,
               network: Optional[bool] = None, timeout_s: Optional[int] = None, workdir: Optional[str] = None,
               secrets: Optional[Mapping[str, Any]] = None, isolation: Optional[str] = None,
               **fields: Any) -> Sandbox:
        """Create a sandbox and wait until it is ready.

        spec: hac.toml text (docs/hac-toml.md); or keyword fields on top of the
        provider's default template (CreateRequest in docs/openapi.yaml)."""
        body: Dict[str, Any] = dict(fields)
        for k, v in (("spec", spec), ("provider", provider), ("name", name), ("image", image), ("vcpus", vcpus),
                     ("memory_mb", memory_mb), ("network", network), ("timeout_s", timeout_s), ("workdir", workdir),
                     ("isolation", isolation)):
            if v is not None:
                body[k] = v
        for k, m in (("env", env), ("metadata", metadata), ("secrets", secrets)):
            if m:
                body[k] = dict(m)
        return Sandbox(self, self._t.request("POST", "/v1/sandboxes", body=body).json())

    def get(self, sandbox_id: str) -> Sandbox:
        return Sandbox(self, self._t.request("GET", "/v1/sandboxes/" + _seg(sandbox_id)).json())

    def list(self, *, state: Optional[str] = None, provider: Optional[str] = None, name: Optional[str] = None,
             metadata: Optional[Mapping[str, str]] = None) -> List[Sandbox]:
        """Live sandboxes (state="all" for past ones too), filtered; metadata: one KEY=VALUE pair."""
        md = None
        if metadata:
            if len(metadata) != 1:
                raise TypeError("metadata: one key=value filter")
            md = "%s=%s" % next(iter(metadata.items()))
        r = self._t.request("GET", "/v1/sandboxes", query={"state": state, "provider": provider, "name": name,
                                                           "metadata": md}).json()
        return [Sandbox(self, s) for s in r.get("sandboxes", [])]

    def delete(self, sandbox_id: str, grace: Optional[float] = None) -> Dict[str, Any]:
        return Sandbox(self, {"id": sandbox_id}).delete(grace)

    # snapshots
    def snapshots(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/v1/snapshots").get("snapshots", [])

    def snapshot(self, snap: str) -> Dict[str, Any]:
        return self.request("GET", "/v1/snapshots/" + _seg(snap))

    def restore(self, snap: str) -> Sandbox:
        return Sandbox(self, self._t.request("POST", "/v1/snapshots/" + _seg(snap) + "/restore").json())

    def delete_snapshot(self, snap: str) -> Dict[str, Any]:
        return self.request("DELETE", "/v1/snapshots/" + _seg(snap))

    # deployments
    def deploy(self, name: str, *, spec: Optional[str] = None, team: Optional[str] = None,
               restart: Optional[str] = None, set: Optional[Sequence[str]] = None, bundle: Optional[str] = None,
               spec_signature: Optional[str] = None, wait_s: Optional[int] = None) -> Dict[str, Any]:
        body: Dict[str, Any] = {"name": name}
        for k, v in (("spec", spec), ("team", team), ("restart", restart), ("bundle", bundle),
                     ("spec_signature", spec_signature), ("wait_s", wait_s)):
            if v is not None:
                body[k] = v
        if set:
            body["set"] = list(set)
        return self.request("POST", "/v1/deployments", body=body)

    def deployments(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/v1/deployments").get("deployments", [])

    def deployment(self, name: str) -> Dict[str, Any]:
        return self.request("GET", "/v1/deployments/" + _seg(name))

    def undeploy(self, name: str, grace: Optional[int] = None) -> Dict[str, Any]:
        return self.request("DELETE", "/v1/deployments/" + _seg(name), query={"grace": grace})

    def usage(self) -> Dict[str, Any]:
        return self.request("GET", "/v1/usage")

    def events(self, *, sandbox: Optional[str] = None, types: Optional[Sequence[str]] = None,
               limit: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """Server-sent events as dicts (Event in docs/openapi.yaml), as they come.
        Close the generator (or leave the loop) to disconnect."""
        r = self._t.request("GET", "/v1/events", query={"sandbox": sandbox, "types": ",".join(types) if types else None,
                                                        "limit": limit})
        try:
            yield from parse_sse(r.lines())
        finally:
            r.close()


def parse_sse(lines: Iterator[bytes]) -> Iterator[Dict[str, Any]]:
    """text/event-stream lines -> the JSON of each event's data (comments skipped)."""
    data: List[bytes] = []
    for line in lines:
        if not line:
            if data:
                try:
                    ev = json.loads(b"\n".join(data))
                except ValueError as e:
                    raise ProtocolError("silod sent an event that is not JSON: %s" % e) from e
                data = []
                if isinstance(ev, dict):
                    yield ev
            continue
        if line.startswith(b":"):
            continue
        k, _, v = line.partition(b":")
        if k == b"data":
            data.append(v[1:] if v.startswith(b" ") else v)
