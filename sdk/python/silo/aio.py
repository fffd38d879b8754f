# SPDX-License-Identifier: Apache-2.0
"""asyncio variants: AsyncClient, AsyncSandbox, AsyncFiles, AsyncProcess.

Same names and arguments as the synchronous classes, as coroutines. Each call
runs the synchronous request on a worker thread (asyncio.to_thread), so the
event loop never blocks on a socket; streams are async iterators that pull
the next chunk on a worker thread. Cancelling a streaming task closes the
stream's connection (for an exec, silod then kills the command).
"""
import asyncio
import functools
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, TypeVar

from . import client as _c

T = TypeVar("T")
_A = TypeVar("_A", bound="_AsyncClosing")
_END = object()


class _AsyncClosing:
    """`async with x:` closes x at the end."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _A) -> _A:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def _run(fn: Callable[..., T], *a: Any, **kw: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *a, **kw))


async def _aiter(it: Iterator[T], close: Optional[Callable[[], None]] = None) -> AsyncIterator[T]:
    try:
        while True:
            v = await asyncio.to_thread(next, it, _END)
            if v is _END:
                return
            yield v  # type: ignore[misc]
    finally:
        if close is not None:
            close()
        elif hasattr(it, "close"):
            it.close()  # type: ignore[attr-defined]


class AsyncExecStream(_AsyncClosing):
    """`async for chunk in stream` then `stream.result`."""

    def __init__(self, s: _c.ExecStream) -> None:
        self._s = s

    @property
    def result(self) -> Optional[_c.ExecResult]:
        return self._s.result

    def __aiter__(self) -> AsyncIterator[_c.Chunk]:
        return _aiter(self._s, self._s.close)

    async def wait(self) -> _c.ExecResult:
        return await _run(self._s.wait)

    async def close(self) -> None:
        self._s.close()


class AsyncProcess:
    def __init__(self, p: _c.Process) -> None:
        self.sync = p
        self.handle = p.handle
        self.pid = p.pid

    async def write(self, data: _c.Data, eof: bool = False, timeout: Optional[float] = None) -> int:
        return await _run(self.sync.write, data, eof, timeout)

    async def close_stdin(self) -> None:
        await _run(self.sync.close_stdin)

    async def signal(self, sig: Any = "TERM") -> None:
        await _run(self.sync.signal, sig)

    async def resize(self, rows: int, cols: int) -> None:
        await _run(self.sync.resize, rows, cols)

    async def wait(self, timeout: Optional[float] = None) -> _c.ExecResult:
        return await _run(self.sync.wait, timeout)

    async def output(self) -> AsyncExecStream:
        return AsyncExecStream(await _run(self.sync.output))

    async def refresh(self) -> Dict[str, Any]:
        return await _run(self.sync.refresh)

    async def kill(self) -> Dict[str, Any]:
        return await _run(self.sync.kill)


class AsyncFiles:
    def __init__(self, f: _c.Files) -> None:
        self.sync = f

    async def write(self, path: str, data: Any, mode: Optional[int] = None) -> int:
        return await _run(self.sync.write, path, data, mode)

    async def read(self, path: str) -> bytes:
        return await _run(self.sync.read, path)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return await _run(self.sync.read_text, path, encoding)

    async def stat(self, path: str) -> Dict[str, Any]:
        return await _run(self.sync.stat, path)

    async def exists(self, path: str) -> bool:
        return await _run(self.sync.exists, path)

    async def list(self, path: str, depth: Optional[int] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        return await _run(self.sync.list, path, depth, limit)

    async def mkdir(self, path: str, parents: bool = False, mode: Optional[int] = None) -> None:
        await _run(self.sync.mkdir, path, parents, mode)

    async def remove(self, path: str, recursive: bool = False) -> None:
        await _run(self.sync.remove, path, recursive)

    async def move(self, src: str, dst: str, overwrite: bool = True) -> None:
        await _run(self.sync.move, src, dst, overwrite)

    async def tar_out(self, path: str) -> bytes:
        return await _run(self.sync.tar_out, path)

    async def tar_in(self, path: str, archive: Any) -> int:
        return await _run(self.sync.tar_in, path, archive)

    def watch(self, path: str, recursive: bool = False) -> AsyncIterator[Dict[str, Any]]:
        return _aiter(self.sync.watch(path, recursive))


class AsyncSandbox:
    """`async with await client.create(...) as sb:` deletes it on exit."""

    def __init__(self, client: "AsyncClient", sb: _c.Sandbox) -> None:
        self.client = client
        self.sync = sb
        self.id = sb.id
        self.files = AsyncFiles(sb.files)

    @property
    def info(self) -> Dict[str, Any]:
        return self.sync.info

    @property
    def state(self) -> str:
        return self.sync.state

    async def refresh(self) -> "AsyncSandbox":
        await _run(self.sync.refresh)
        return self

    async def exec(self, cmd: _c.Argv, **kw: Any) -> _c.ExecResult:
        return await _run(self.sync.exec, cmd, **kw)

    async def exec_stream(self, cmd: _c.Argv, **kw: Any) -> AsyncExecStream:
        return AsyncExecStream(await _run(self.sync.exec_stream, cmd, **kw))

    async def spawn(self, cmd: _c.Argv, **kw: Any) -> AsyncProcess:
        return AsyncProcess(await _run(self.sync.spawn, cmd, **kw))

    async def pty(self, cmd: _c.Argv = ("sh",), **kw: Any) -> AsyncProcess:
        return AsyncProcess(await _run(self.sync.pty, cmd, **kw))

    async def procs(self) -> List[AsyncProcess]:
        return [AsyncProcess(p) for p in await _run(self.sync.procs)]

    async def process(self, ref: str) -> AsyncProcess:
        return AsyncProcess(await _run(self.sync.process, ref))

    async def logs(self, tail: Optional[int] = None) -> Dict[str, Any]:
        return await _run(self.sync.logs, tail)

    async def snapshot(self, **kw: Any) -> Dict[str, Any]:
        return await _run(self.sync.snapshot, **kw)

    async def fork(self, n: int = 1) -> List["AsyncSandbox"]:
        return [AsyncSandbox(self.client, s) for s in await _run(self.sync.fork, n)]

    async def pause(self) -> "AsyncSandbox":
        await _run(self.sync.pause)
        return self

    async def resume(self) -> "AsyncSandbox":
        await _run(self.sync.resume)
        return self

    def events(self, **kw: Any) -> AsyncIterator[Dict[str, Any]]:
        return self.client.events(sandbox=self.id, **kw)

    async def delete(self, grace: Optional[float] = None) -> Dict[str, Any]:
        return await _run(self.sync.delete, grace)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await _run(self.sync.__exit__, None, None, None)


class AsyncClient(_AsyncClosing):
    def __init__(self, host: Optional[str] = None, token: Optional[str] = None, socket_path: Optional[str] = None,
                 timeout: Optional[float] = None, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None) -> None:
        self.sync = _c.Client(host, token, socket_path, timeout, ca, cert, key)

    @property
    def target(self) -> str:
        return self.sync.target

    async def close(self) -> None:
        self.sync.close()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        return await _run(self.sync.request, method, path, **kw)

    async def health(self) -> Dict[str, Any]:
        return await _run(self.sync.health)

    async def providers(self) -> List[Dict[str, Any]]:
        return await _run(self.sync.providers)

    async def create(self, spec: Optional[str] = None, **kw: Any) -> AsyncSandbox:
        return AsyncSandbox(self, await _run(self.sync.create, spec, **kw))

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        return AsyncSandbox(self, await _run(self.sync.get, sandbox_id))

    async def list(self, **kw: Any) -> List[AsyncSandbox]:
        return [AsyncSandbox(self, s) for s in await _run(self.sync.list, **kw)]

    async def delete(self, sandbox_id: str, grace: Optional[float] = None) -> Dict[str, Any]:
        return await _run(self.sync.delete, sandbox_id, grace)

    async def snapshots(self) -> List[Dict[str, Any]]:
        return await _run(self.sync.snapshots)

    async def snapshot(self, snap: str) -> Dict[str, Any]:
        return await _run(self.sync.snapshot, snap)

    async def restore(self, snap: str) -> AsyncSandbox:
        return AsyncSandbox(self, await _run(self.sync.restore, snap))

    async def delete_snapshot(self, snap: str) -> Dict[str, Any]:
        return await _run(self.sync.delete_snapshot, snap)

    async def deploy(self, name: str, **kw: Any) -> Dict[str, Any]:
        return await _run(self.sync.deploy, name, **kw)

    async def deployments(self) -> List[Dict[str, Any]]:
        return await _run(self.sync.deployments)

    async def deployment(self, name: str) -> Dict[str, Any]:
        return await _run(self.sync.deployment, name)

    async def undeploy(self, name: str, grace: Optional[int] = None) -> Dict[str, Any]:
        return await _run(self.sync.undeploy, name, grace)

    async def usage(self) -> Dict[str, Any]:
        return await _run(self.sync.usage)

    def events(self, **kw: Any) -> AsyncIterator[Dict[str, Any]]:
        return _aiter(self.sync.events(**kw))
