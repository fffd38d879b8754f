// SPDX-License-Identifier: Apache-2.0
// Typed errors, one class per stable code of docs/errors.md. silod answers a
// failure with {"error": {"code", "message", "vm_id"?, "errno"?}}; the code
// (never the message text) picks the class.

export const CODES = [
  "INVALID_CONFIG", "RESOURCE_EXCEEDED", "MAX_VMS_EXCEEDED", "BOOT_TIMEOUT", "VM_NOT_FOUND", "VSOCK_DISCONNECTED",
  "POLICY_DENIED", "SECURITY_VIOLATION", "CHECKSUM_MISMATCH", "PLUGIN_UNVERIFIED", "CLEANUP_FAILED",
  "REMOTE_UNREACHABLE", "PROVIDER_UNAVAILABLE", "IO_ERROR", "TIMEOUT", "PROTOCOL", "UNAUTHORIZED", "CONFLICT",
  "NOT_SUPPORTED", "INTERNAL", "NOT_FOUND", "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE",
  "FILE_NOT_FOUND", "PROCESS_NOT_FOUND",
] as const;
export type Code = (typeof CODES)[number];

export interface ErrorInit {
  code?: string;
  sandboxId?: string;
  errno?: number;
  status?: number;
  body?: unknown;
}

/** A failure reported by silod (or met on the way to it). */
export class SiloError extends Error {
  /** the stable name ("POLICY_DENIED"); a code newer than this SDK keeps its name */
  code: string;
  /** its number in docs/errors.md (0 if unknown) */
  number: number;
  sandboxId: string;
  errno: number;
  /** HTTP status (0 when nothing was answered) */
  status: number;
  body: unknown;
  constructor(message: string, init: ErrorInit = {}) {
    super(message);
    this.name = new.target.name;
    this.code = init.code ?? (new.target as unknown as { CODE?: string }).CODE ?? "INTERNAL";
    this.number = CODES.indexOf(this.code as Code) + 1;
    this.sandboxId = init.sandboxId ?? "";
    this.errno = init.errno ?? 0;
    this.status = init.status ?? 0;
    this.body = init.body;
  }
}

function cls(code: Code) {
  return class extends SiloError {
    static readonly CODE: Code = code;
  };
}

export class InvalidConfig extends cls("INVALID_CONFIG") {}
export class ResourceExceeded extends cls("RESOURCE_EXCEEDED") {}
export class MaxVmsExceeded extends cls("MAX_VMS_EXCEEDED") {}
export class BootTimeout extends cls("BOOT_TIMEOUT") {}
export class VmNotFound extends cls("VM_NOT_FOUND") {}
export class VsockDisconnected extends cls("VSOCK_DISCONNECTED") {}
export class PolicyDenied extends cls("POLICY_DENIED") {}
export class SecurityViolation extends cls("SECURITY_VIOLATION") {}
export class ChecksumMismatch extends cls("CHECKSUM_MISMATCH") {}
export class PluginUnverified extends cls("PLUGIN_UNVERIFIED") {}
export class CleanupFailed extends cls("CLEANUP_FAILED") {}
export class RemoteUnreachable extends cls("REMOTE_UNREACHABLE") {}
export class ProviderUnavailable extends cls("PROVIDER_UNAVAILABLE") {}
export class IoError extends cls("IO_ERROR") {}
export class Timeout extends cls("TIMEOUT") {}
export class ProtocolError extends cls("PROTOCOL") {}
export class Unauthorized extends cls("UNAUTHORIZED") {}
export class Conflict extends cls("CONFLICT") {}
export class NotSupported extends cls("NOT_SUPPORTED") {}
export class InternalError extends cls("INTERNAL") {}
export class NotFound extends cls("NOT_FOUND") {}
export class MethodNotAllowed extends cls("METHOD_NOT_ALLOWED") {}
export class PayloadTooLarge extends cls("PAYLOAD_TOO_LARGE") {}
export class UnsupportedMediaType extends cls("UNSUPPORTED_MEDIA_TYPE") {}
export class FileNotFound extends cls("FILE_NOT_FOUND") {}
export class ProcessNotFound extends cls("PROCESS_NOT_FOUND") {}
export const SandboxNotFound = VmNotFound;

export const BY_CODE: Record<Code, typeof SiloError> = {
  INVALID_CONFIG: InvalidConfig, RESOURCE_EXCEEDED: ResourceExceeded, MAX_VMS_EXCEEDED: MaxVmsExceeded,
  BOOT_TIMEOUT: BootTimeout, VM_NOT_FOUND: VmNotFound, VSOCK_DISCONNECTED: VsockDisconnected,
  POLICY_DENIED: PolicyDenied, SECURITY_VIOLATION: SecurityViolation, CHECKSUM_MISMATCH: ChecksumMismatch,
  PLUGIN_UNVERIFIED: PluginUnverified, CLEANUP_FAILED: CleanupFailed, REMOTE_UNREACHABLE: RemoteUnreachable,
  PROVIDER_UNAVAILABLE: ProviderUnavailable, IO_ERROR: IoError, TIMEOUT: Timeout, PROTOCOL: ProtocolError,
  UNAUTHORIZED: Unauthorized, CONFLICT: Conflict, NOT_SUPPORTED: NotSupported, INTERNAL: InternalError,
  NOT_FOUND: NotFound, METHOD_NOT_ALLOWED: MethodNotAllowed, PAYLOAD_TOO_LARGE: PayloadTooLarge,
  UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaType, FILE_NOT_FOUND: FileNotFound, PROCESS_NOT_FOUND: ProcessNotFound,
};

/** The error for an answer's body (parsed or raw). */
export function errorFromBody(status: number, body: unknown): SiloError {
  let obj = body;
  if (typeof body === "string" || body instanceof Uint8Array) {
    try {
      obj = JSON.parse(Buffer.from(body as Uint8Array).toString("utf8"));
    } catch {
      obj = undefined;
    }
  }
  const e = (obj as { error?: Record<string, unknown> } | undefined)?.error;
  if (!e || typeof e !== "object" || typeof e.code !== "string") {
    const code = status === 401 ? "UNAUTHORIZED" : status === 403 ? "POLICY_DENIED" : status === 404 ? "NOT_FOUND" : "PROTOCOL";
    return new BY_CODE[code](`silod answered HTTP ${status} without an error body`, { status });
  }
  const C = BY_CODE[e.code as Code] ?? SiloError;
  return new C(typeof e.message === "string" ? e.message : e.code, {
    code: e.code,
    sandboxId: typeof e.vm_id === "string" ? e.vm_id : "",
    errno: typeof e.errno === "number" ? e.errno : 0,
    status,
    body: obj,
  });
}
