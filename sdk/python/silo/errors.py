# SPDX-License-Identifier: Apache-2.0
"""Typed exceptions, one per stable code of docs/errors.md.

silod answers every failure with {"error": {"code", "message", "vm_id"?,
"errno"?}}; the code (never the message text) picks the class. Codes this
version does not know become a plain SiloError that still carries the code.
"""
import builtins
from typing import Any, Dict, Optional, Type


class SiloError(Exception):
    """A failure reported by silod (or met on the way to it).

    code: the stable name ("POLICY_DENIED"); number: its number (0 if unknown);
    message: silod's text; sandbox_id: the sandbox concerned ("" if none);
    errno: the errno in the sandbox or host (0 if none); status: the HTTP status
    (0 when the failure happened before an answer); body: the whole error body.
    """

    code = "INTERNAL"
    number = 20

    def __init__(self, message: str, *, code: Optional[str] = None, sandbox_id: str = "", errno: int = 0,
                 status: int = 0, body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
            self.number = _NUMBERS.get(code, 0)
        self.message = message
        self.sandbox_id = sandbox_id
        self.errno = errno
        self.status = status
        self.body = body or {}

    def __str__(self) -> str:
        return "%s%s: %s" % (self.code, " [%s]" % self.sandbox_id if self.sandbox_id else "", self.message)


def _cls(name: str, code: str, number: int, *bases: type) -> Type[SiloError]:
    return type(name, (SiloError,) + bases, {"code": code, "number": number, "__doc__": "silod error %s (%d)" % (code, number)})


InvalidConfig = _cls("InvalidConfig", "INVALID_CONFIG", 1, ValueError)
ResourceExceeded = _cls("ResourceExceeded", "RESOURCE_EXCEEDED", 2)
MaxVmsExceeded = _cls("MaxVmsExceeded", "MAX_VMS_EXCEEDED", 3)
BootTimeout = _cls("BootTimeout", "BOOT_TIMEOUT", 4)
VmNotFound = _cls("VmNotFound", "VM_NOT_FOUND", 5, LookupError)
VsockDisconnected = _cls("VsockDisconnected", "VSOCK_DISCONNECTED", 6)
PolicyDenied = _cls("PolicyDenied", "POLICY_DENIED", 7, builtins.PermissionError)
SecurityViolation = _cls("SecurityViolation", "SECURITY_VIOLATION", 8)
ChecksumMismatch = _cls("ChecksumMismatch", "CHECKSUM_MISMATCH", 9)
PluginUnverified = _cls("PluginUnverified", "PLUGIN_UNVERIFIED", 10)
CleanupFailed = _cls("CleanupFailed", "CLEANUP_FAILED", 11)
RemoteUnreachable = _cls("RemoteUnreachable", "REMOTE_UNREACHABLE", 12, builtins.ConnectionError)
ProviderUnavailable = _cls("ProviderUnavailable", "PROVIDER_UNAVAILABLE", 13)
IoError = _cls("IoError", "IO_ERROR", 14)
Timeout = _cls("Timeout", "TIMEOUT", 15, builtins.TimeoutError)
ProtocolError = _cls("ProtocolError", "PROTOCOL", 16)
Unauthorized = _cls("Unauthorized", "UNAUTHORIZED", 17)
Conflict = _cls("Conflict", "CONFLICT", 18)
NotSupported = _cls("NotSupported", "NOT_SUPPORTED", 19)
InternalError = _cls("InternalError", "INTERNAL", 20)
NotFound = _cls("NotFound", "NOT_FOUND", 21, LookupError)
MethodNotAllowed = _cls("MethodNotAllowed", "METHOD_NOT_ALLOWED", 22)
PayloadTooLarge = _cls("PayloadTooLarge", "PAYLOAD_TOO_LARGE", 23)
UnsupportedMediaType = _cls("UnsupportedMediaType", "UNSUPPORTED_MEDIA_TYPE", 24)
FileNotFound = _cls("FileNotFound", "FILE_NOT_FOUND", 25, builtins.FileNotFoundError)
ProcessNotFound = _cls("ProcessNotFound", "PROCESS_NOT_FOUND", 26, LookupError)
SandboxNotFound = VmNotFound  # the same class under the SDK's noun

BY_CODE: Dict[str, Type[SiloError]] = {c.code: c for c in (
    InvalidConfig, ResourceExceeded, MaxVmsExceeded, BootTimeout, VmNotFound, VsockDisconnected, PolicyDenied,
    SecurityViolation, ChecksumMismatch, PluginUnverified, CleanupFailed, RemoteUnreachable, ProviderUnavailable,
    IoError, Timeout, ProtocolError, Unauthorized, Conflict, NotSupported, InternalError, NotFound, MethodNotAllowed,
    PayloadTooLarge, UnsupportedMediaType, FileNotFound, ProcessNotFound)}
_NUMBERS = {c.code: c.number for c in BY_CODE.values()}


def error_from_body(status: int, body: Any) -> SiloError:
    """The exception for an error body (a dict, or bytes/str to parse)."""
    import json
    obj = body
    if isinstance(body, (bytes, str)):
        try:
            obj = json.loads(body or b"null")
        except ValueError:
            obj = None
    e = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(e, dict) or not isinstance(e.get("code"), str):
        code = {401: "UNAUTHORIZED", 403: "POLICY_DENIED", 404: "NOT_FOUND"}.get(status, "PROTOCOL")
        return BY_CODE[code]("silod answered HTTP %d without an error body" % status, status=status)
    code = e["code"]
    cls = BY_CODE.get(code, SiloError)
    msg = e.get("message") if isinstance(e.get("message"), str) else code
    eno = e.get("errno") if isinstance(e.get("errno"), int) else 0
    vm = e.get("vm_id") if isinstance(e.get("vm_id"), str) else ""
    return cls(msg, code=code, sandbox_id=vm, errno=eno, status=status, body=obj)
