# SPDX-License-Identifier: Apache-2.0
"""silo: a client for silod, the Silo sandbox manager.

    import silo
    c = silo.Client()                      # SILO_HOST/SILO_API_TOKEN, else the unix socket
    with c.create(provider="namespace") as sb:
        r = sb.exec(["sh", "-c", "echo hi"])
        assert r.stdout == "hi\\n" and r.exit_code == 0
        sb.files.write("/tmp/x", b"1")

Standard library only, Python 3.9+. asyncio: silo.AsyncClient (silo.aio).
Errors: silo.SiloError and one subclass per stable code (silo.PolicyDenied, ...).
"""
from .aio import AsyncClient, AsyncExecStream, AsyncFiles, AsyncProcess, AsyncSandbox
from .client import Chunk, Client, CommandFailed, ExecResult, ExecStream, Files, Process, Sandbox
from .errors import *  # noqa: F401,F403
from .errors import BY_CODE, SiloError, error_from_body

__version__ = "0.1.0"
__all__ = ["Client", "Sandbox", "Files", "Process", "ExecResult", "ExecStream", "Chunk", "CommandFailed",
           "AsyncClient", "AsyncSandbox", "AsyncFiles", "AsyncProcess", "AsyncExecStream", "SiloError",
           "BY_CODE", "error_from_body"] + [c.__name__ for c in BY_CODE.values()] + ["SandboxNotFound"]
