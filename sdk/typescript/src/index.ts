// SPDX-License-Identifier: Apache-2.0
// @silo/sdk: a client for silod (docs/openapi.yaml) over its unix socket or
// TCP with a bearer token. Node 18+, no runtime dependencies (node:http).
//
// Target, as the CLI chooses it: SILO_HOST (http://HOST:PORT, token
// SILO_API_TOKEN), else the unix socket SILO_SOCKET or
// $SILO_RUNTIME_DIR/silod.sock (/run/silo for root, $XDG_RUNTIME_DIR/silo or
// /tmp/silo otherwise). Every failure rejects with the SiloError subclass of
// its stable code. Streams are async iterators; every call takes an
// AbortSignal (`signal`): aborting closes the connection (for an exec, silod
// then kills the command) and rejects with the signal's reason.
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { ProtocolError, RemoteUnreachable, InvalidConfig, FileNotFound, VmNotFound, SiloError, errorFromBody } from "./errors.js";

export * from "./errors.js";

export interface ClientOptions {
  host?: string;
  token?: string;
  socketPath?: string;
  /** TLS to an https:// host, PEM file paths; default $SILO_CA, $SILO_CLIENT_CERT, $SILO_CLIENT_KEY */
  ca?: string;
  cert?: string;
  key?: string;
}

// TLS as the CLI does it (docs/remote.md): TLS 1.2+, the given CA (else the
// system's), a client certificate and key for mutual TLS.
function tlsAgent(https_: boolean, opts: ClientOptions): http.Agent {
  const e = process.env;
  const files = { ca: opts.ca ?? (e.SILO_CA || undefined), cert: opts.cert ?? (e.SILO_CLIENT_CERT || undefined),
    key: opts.key ?? (e.SILO_CLIENT_KEY || undefined) };
  if (!https_) {
    if (files.ca || files.cert || files.key)
      throw new InvalidConfig("ca/cert/key (SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY) need an https:// host");
    return new http.Agent({ keepAlive: true });
  }
  if (!files.cert !== !files.key)
    throw new InvalidConfig("cert and key (SILO_CLIENT_CERT, SILO_CLIENT_KEY): give both or neither");
  const pem: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  for (const k of ["ca", "cert", "key"] as const) {
    const f = files[k];
    if (!f) continue;
    try {
      pem[k] = fs.readFileSync(f);
    } catch (err) {
      throw new InvalidConfig(`${k} (${f}): ${(err as Error).message}`);
    }
  }
  return new https.Agent({ keepAlive: true, minVersion: "TLSv1.2", ...pem });
}
export interface CallOptions {
  signal?: AbortSignal;
}
type Json = Record<string, unknown>;
const MAX_LINE = 16 << 20;

export function defaultSocket(): string {
  const e = process.env;
  if (e.SILO_SOCKET) return e.SILO_SOCKET;
  let rd = e.SILO_RUNTIME_DIR;
  if (!rd) rd = process.getuid && process.getuid() === 0 ? "/run/silo" : path.join(e.XDG_RUNTIME_DIR || "/tmp", "silo");
  return path.join(rd, "silod.sock");
}

interface Req {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

/** Splits a byte stream into lines, each at most MAX_LINE bytes. */
async function* lines(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let size = 0;
  for await (const chunk of src) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      pending.push(chunk.subarray(start, nl));
      const line = Buffer.concat(pending);
      pending = [];
      size = 0;
      yield line.length && line[line.length - 1] === 13 ? line.subarray(0, line.length - 1) : line;
      start = nl + 1;
    }
    if (start < chunk.length) {
      size += chunk.length - start;
      if (size > MAX_LINE) throw new ProtocolError(`silod sent a line longer than ${MAX_LINE} bytes`);
      pending.push(chunk.subarray(start));
    }
  }
  if (size) yield Buffer.concat(pending);
}

export class Client {
  readonly target: string;
  private agent: http.Agent;
  private socketPath?: string;
  private base?: URL;
  private token?: string;

  constructor(opts: ClientOptions = {}) {
    const host = opts.host ?? (opts.socketPath ? undefined : process.env.SILO_HOST || undefined);
    this.token = opts.token ?? (process.env.SILO_API_TOKEN || undefined);
    if (host) {
      let u: URL | undefined;
      try {
        u = new URL(host);
      } catch {
        u = undefined;
      }
      if (!u || (u.protocol !== "http:" && u.protocol !== "https:"))
        throw new InvalidConfig(`SILO_HOST: expected http://HOST:PORT, got '${host}'`);
      this.base = u;
      this.target = host.replace(/\/$/, "");
      this.agent = tlsAgent(u.protocol === "https:", opts);
    } else {
      this.socketPath = opts.socketPath ?? defaultSocket();
      this.target = "unix:" + this.socketPath;
      this.agent = new http.Agent({ keepAlive: true });
    }
    if (this.token && /[\r\n]/.test(this.token)) throw new InvalidConfig("token: contains a line break");
  }

  close(): void {
    this.agent.destroy();
  }

  /** One request; the response (a stream) once its head is in. >= 400 rejects with its SiloError. */
  async raw(method: string, p: string, r: Req = {}): Promise<http.IncomingMessage> {
    if (r.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(r.query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) p += "?" + s.replace(/\+/g, "%20");
    }
    let body: Buffer | undefined;
    let ctype = r.contentType;
    if (r.body instanceof Uint8Array) body = Buffer.from(r.body);
    else if (typeof r.body === "string") body = Buffer.from(r.body);
    else if (r.body !== undefined) {
      body = Buffer.from(JSON.stringify(r.body));
      ctype = ctype ?? "application/json";
    } else if (method === "POST" || method === "PUT") body = Buffer.alloc(0);
    const headers: Record<string, string> = {};
    if (ctype) headers["Content-Type"] = ctype;
    if (body) headers["Content-Length"] = String(body.length);
    if (this.token) headers["Authorization"] = "Bearer " + this.token;
    const mod = this.base?.protocol === "https:" ? https : http;
    const opts: http.RequestOptions = this.socketPath
      ? { socketPath: this.socketPath, path: p, method, headers, agent: this.agent }
      : { host: this.base!.hostname, port: this.base!.port, path: p, method, headers, agent: this.agent };
    if (r.signal) opts.signal = r.signal;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = mod.request(opts, resolve);
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (e.name === "AbortError") reject(r.signal?.reason ?? e);
        else reject(new RemoteUnreachable(`cannot reach silod at ${this.target}: ${e.message} (is silod running?)`));
      });
      req.end(body);
    });
    if ((res.statusCode ?? 0) >= 400) {
      const data = await collect(res, 1 << 20);
      throw errorFromBody(res.statusCode ?? 0, data);
    }
    return res;
  }

  async bytes(method: string, p: string, r: Req = {}): Promise<Buffer> {
    return collect(await this.raw(method, p, r), 512 << 20);
  }

  /** Any API call returning its JSON answer. */
  async request<T = Json>(method: string, p: string, r: Req = {}): Promise<T> {
    const b = await this.bytes(method, p, r);
    try {
      return (b.length ? JSON.parse(b.toString("utf8")) : {}) as T;
    } catch (e) {
      throw new ProtocolError(`silod sent invalid JSON: ${(e as Error).message}`);
    }
  }

  health(o: CallOptions = {}): Promise<Json> {
    return this.request("GET", "/v1/health", o);
  }

  /** Create a sandbox (and wait until it is ready) from options or hac.toml text. */
  async create(opts: CreateOptions | string = {}, o: CallOptions = {}): Promise<Sandbox> {
    const body = typeof opts === "string" ? { spec: opts } : opts;
    return new Sandbox(this, await this.request("POST", "/v1/sandboxes", { body, signal: o.signal }));
  }

  async get(id: string, o: CallOptions = {}): Promise<Sandbox> {
    return new Sandbox(this, await this.request("GET", "/v1/sandboxes/" + enc(id), o));
  }

  async list(f: ListFilter = {}, o: CallOptions = {}): Promise<Sandbox[]> {
    const md = f.metadata ? Object.entries(f.metadata).map(([k, v]) => `${k}=${v}`)[0] : undefined;
    const r = await this.request<{ sandboxes: Json[] }>("GET", "/v1/sandboxes", {
      query: { state: f.state, provider: f.provider, name: f.name, metadata: md }, signal: o.signal,
    });
    return (r.sandboxes ?? []).map((s) => new Sandbox(this, s));
  }

  async snapshots(o: CallOptions = {}): Promise<Json[]> {
    return (await this.request<{ snapshots: Json[] }>("GET", "/v1/snapshots", o)).snapshots ?? [];
  }

  async restore(snap: string, o: CallOptions = {}): Promise<Sandbox> {
    return new Sandbox(this, await this.request("POST", `/v1/snapshots/${enc(snap)}/restore`, o));
  }

  deleteSnapshot(snap: string, o: CallOptions = {}): Promise<Json> {
    return this.request("DELETE", "/v1/snapshots/" + enc(snap), o);
  }

  deploy(req: { name: string; spec?: string; team?: string; restart?: string; set?: string[]; bundle?: string; wait_s?: number }, o: CallOptions = {}): Promise<Json> {
    return this.request("POST", "/v1/deployments", { body: req, signal: o.signal });
  }

  async deployments(o: CallOptions = {}): Promise<Json[]> {
    return (await this.request<{ deployments: Json[] }>("GET", "/v1/deployments", o)).deployments ?? [];
  }

  deployment(name: string, o: CallOptions = {}): Promise<Json> {
    return this.request("GET", "/v1/deployments/" + enc(name), o);
  }

  undeploy(name: string, grace?: number, o: CallOptions = {}): Promise<Json> {
    return this.request("DELETE", "/v1/deployments/" + enc(name), { query: { grace }, signal: o.signal });
  }

  /** Server-sent events as objects, as they come (break out of the loop or abort to stop). */
  async *events(f: { sandbox?: string; types?: string[]; limit?: number } = {}, o: CallOptions = {}): AsyncGenerator<Json> {
    const res = await this.raw("GET", "/v1/events", {
      query: { sandbox: f.sandbox, types: f.types?.join(","), limit: f.limit }, signal: o.signal,
    });
    let data: Buffer[] = [];
    try {
      for await (const line of lines(res)) {
        if (!line.length) {
          if (data.length) {
            const ev = parseJson(Buffer.concat(data).toString("utf8"), "an event");
            data = [];
            yield ev;
          }
        } else if (line.subarray(0, 5).toString() === "data:") {
          if (data.length) data.push(Buffer.from("\n"));
          data.push(line.subarray(line[5] === 32 ? 6 : 5));
        }
      }
    } finally {
      res.destroy();
    }
  }
}

export interface CreateOptions {
  spec?: string;
  name?: string;
  provider?: "kvm" | "qemu" | "namespace";
  vcpus?: number;
  memory_mb?: number;
  image?: string;
  workdir?: string;
  network?: boolean;
  timeout_s?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  isolation?: "vm" | "any";
  [field: string]: unknown;
}
export interface ListFilter {
  state?: string;
  provider?: string;
  name?: string;
  metadata?: Record<string, string>;
}
export interface ExecOptions extends CallOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string | Uint8Array;
  /** milliseconds; then the command's process group is killed (timedOut) */
  timeoutMs?: number;
  uid?: number;
  gid?: number;
}
export interface SpawnOptions extends ExecOptions {
  tag?: string;
  pty?: boolean;
  rows?: number;
  cols?: number;
  stdinOpen?: boolean;
}
export interface ExitStatus {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  durationMs: number;
}
export interface ExecResult extends ExitStatus {
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}
export interface Chunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function parseJson(s: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new ProtocolError(`silod sent ${what} that is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new ProtocolError(`silod sent ${what} that is not an object`);
  return v as Json;
}

async function collect(res: http.IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.destroy();
      throw new ProtocolError(`the answer from silod is larger than ${max} bytes`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

function exitOf(j: Json): ExitStatus {
  return {
    exitCode: Number(j.exit_code ?? -1),
    signal: Number(j.signal ?? 0),
    timedOut: j.timed_out === true,
    durationMs: Number(j.duration_ms ?? 0),
  };
}

/** Output of a running command: `for await (const c of stream)`, then `await stream.result`. */
export class ExecStream implements AsyncIterable<Chunk> {
  /** resolves with the exit status once the stream was read to its end */
  readonly result: Promise<ExitStatus>;
  private resolve!: (e: ExitStatus) => void;
  private reject!: (e: unknown) => void;
  private started = false;
  constructor(private res: http.IncomingMessage, private sandboxId: string) {
    this.result = new Promise((a, b) => {
      this.resolve = a;
      this.reject = b;
    });
    this.result.catch(() => undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Chunk> {
    if (this.started) throw new Error("an ExecStream is read once");
    this.started = true;
    let done = false;
    try {
      for await (const line of lines(this.res)) {
        if (!line.length) continue;
        const j = parseJson(line.toString("utf8"), "an exec line");
        if (typeof j.stream === "string") {
          if ((j.stream !== "stdout" && j.stream !== "stderr") || typeof j.data !== "string")
            throw new ProtocolError("silod sent an exec line with a bad stream or data");
          const data = Buffer.from(j.data, "base64");
          if (data.length) yield { stream: j.stream, data };
        } else if (j.error) {
          throw errorFromBody(200, j);
        } else if (typeof j.exit_code === "number") {
          done = true;
          this.resolve(exitOf(j));
        } else throw new ProtocolError("silod sent an exec line of no known kind");
      }
      if (!done) throw new RemoteUnreachable("the exec stream ended without an exit status", { sandboxId: this.sandboxId });
    } catch (e) {
      this.reject(e);
      throw e;
    } finally {
      if (!done) {
        this.reject(new ProtocolError("the stream was closed before the command ended"));
        this.res.destroy();
      }
    }
  }

  /** Read to the end, collecting the output. */
  async collect(): Promise<ExecResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    for await (const c of this) (c.stream === "stdout" ? out : err).push(c.data);
    const st = await this.result;
    const stdoutBytes = Buffer.concat(out);
    const stderrBytes = Buffer.concat(err);
    return { ...st, stdoutBytes, stderrBytes, stdout: stdoutBytes.toString("utf8"), stderr: stderrBytes.toString("utf8") };
  }
}

export class Process {
  readonly handle: string;
  readonly pid: number;
  constructor(readonly sandbox: Sandbox, public info: Json) {
    this.handle = String(info.proc ?? "");
    this.pid = Number(info.pid ?? 0);
  }
  private p(tail = ""): string {
    return this.sandbox.path(`/procs/${enc(this.handle)}${tail}`);
  }
  async refresh(o: CallOptions = {}): Promise<Json> {
    this.info = await this.sandbox.client.request("GET", this.p(), o);
    return this.info;
  }
  /** Feed its stdin (spawned with stdinOpen); eof closes it (^D on a PTY). */
  async write(data: string | Uint8Array, eof = false, o: CallOptions = {}): Promise<number> {
    const r = await this.sandbox.client.request("POST", this.p("/stdin"), {
      query: { eof: eof || undefined }, body: typeof data === "string" ? Buffer.from(data) : data,
      contentType: "application/octet-stream", signal: o.signal,
    });
    return Number(r.accepted ?? 0);
  }
  async signal(sig: string | number = "TERM", o: CallOptions = {}): Promise<void> {
    await this.sandbox.client.request("POST", this.p("/signal"), { body: { signal: sig }, signal: o.signal });
  }
  async resize(rows: number, cols: number, o: CallOptions = {}): Promise<void> {
    await this.sandbox.client.request("POST", this.p("/resize"), { body: { rows, cols }, signal: o.signal });
  }
  async wait(timeoutMs?: number, o: CallOptions = {}): Promise<ExitStatus> {
    const r = await this.sandbox.client.request("GET", this.p("/wait"), { query: { timeout_ms: timeoutMs }, signal: o.signal });
    return exitOf((r.exit ?? {}) as Json);
  }
  /** Attach as a reader: its output from the oldest byte silod holds, until it exits. */
  async output(o: CallOptions = {}): Promise<ExecStream> {
    return new ExecStream(await this.sandbox.client.raw("GET", this.p("/output"), o), this.sandbox.id);
  }
  kill(o: CallOptions = {}): Promise<Json> {
    return this.sandbox.client.request("DELETE", this.p(), o);
  }
}

export class Files {
  constructor(private sb: Sandbox) {}
  private c() {
    return this.sb.client;
  }
  async write(p: string, data: string | Uint8Array, mode?: number, o: CallOptions = {}): Promise<number> {
    const r = await this.c().request("PUT", this.sb.path("/files"), {
      query: { path: p, mode: mode === undefined ? undefined : mode.toString(8).padStart(4, "0") },
      body: typeof data === "string" ? Buffer.from(data) : data, contentType: "application/octet-stream", signal: o.signal,
    });
    return Number(r.size ?? 0);
  }
  read(p: string, o: CallOptions = {}): Promise<Buffer> {
    return this.c().bytes("GET", this.sb.path("/files"), { query: { path: p }, signal: o.signal });
  }
  async readText(p: string, o: CallOptions = {}): Promise<string> {
    return (await this.read(p, o)).toString("utf8");
  }
  stat(p: string, o: CallOptions = {}): Promise<Json> {
    return this.c().request("GET", this.sb.path("/fs/stat"), { query: { path: p }, signal: o.signal });
  }
  async exists(p: string, o: CallOptions = {}): Promise<boolean> {
    try {
      await this.stat(p, o);
      return true;
    } catch (e) {
      if (e instanceof FileNotFound) return false;
      throw e;
    }
  }
  async list(p: string, opts: { depth?: number; limit?: number } = {}, o: CallOptions = {}): Promise<Json[]> {
    const r = await this.c().request<{ entries: Json[] }>("GET", this.sb.path("/fs/list"), {
      query: { path: p, depth: opts.depth, limit: opts.limit }, signal: o.signal,
    });
    return r.entries ?? [];
  }
  async mkdir(p: string, parents = false, o: CallOptions = {}): Promise<void> {
    await this.c().request("POST", this.sb.path("/fs/mkdir"), { body: { path: p, parents }, signal: o.signal });
  }
  async remove(p: string, recursive = false, o: CallOptions = {}): Promise<void> {
    await this.c().request("POST", this.sb.path("/fs/remove"), { body: { path: p, recursive }, signal: o.signal });
  }
  async move(from: string, to: string, overwrite = true, o: CallOptions = {}): Promise<void> {
    await this.c().request("POST", this.sb.path("/fs/move"), { body: { from, to, overwrite }, signal: o.signal });
  }
  /** A tar archive of p, as it is streamed. */
  async *tarOut(p: string, o: CallOptions = {}): AsyncGenerator<Buffer> {
    const res = await this.c().raw("GET", this.sb.path("/archive"), { query: { path: p }, signal: o.signal });
    try {
      for await (const c of res as AsyncIterable<Buffer>) yield c;
    } finally {
      res.destroy();
    }
  }
  async tarIn(p: string, tar: Uint8Array, o: CallOptions = {}): Promise<number> {
    const r = await this.c().request("PUT", this.sb.path("/archive"), {
      query: { path: p }, body: tar, contentType: "application/x-tar", signal: o.signal,
    });
    return Number(r.bytes ?? 0);
  }
}

export class Sandbox {
  readonly id: string;
  readonly files: Files;
  constructor(readonly client: Client, public info: Json) {
    this.id = String(info.id);
    this.files = new Files(this);
  }
  get state(): string {
    return String(this.info.state ?? "");
  }
  get name(): string {
    return String(this.info.name ?? "");
  }
  /** @internal */
  path(tail = ""): string {
    return `/v1/sandboxes/${enc(this.id)}${tail}`;
  }
  async refresh(o: CallOptions = {}): Promise<this> {
    this.info = await this.client.request("GET", this.path(), o);
    return this;
  }
  private execBody(cmd: string | string[], o: SpawnOptions): Json {
    const argv = typeof cmd === "string" ? ["sh", "-c", cmd] : cmd;
    if (!argv.length) throw new InvalidConfig("argv: at least one argument is required");
    const b: Json = { argv };
    if (o.env) b.env = o.env;
    if (o.cwd !== undefined) b.cwd = o.cwd;
    if (o.stdin !== undefined) b.stdin = Buffer.from(o.stdin as Uint8Array).toString("base64");
    if (o.timeoutMs !== undefined) b.timeout_ms = o.timeoutMs;
    if (o.uid !== undefined) b.uid = o.uid;
    if (o.gid !== undefined) b.gid = o.gid;
    return b;
  }
  /** Run a command; iterate the stream for its output as it comes. */
  async execStream(cmd: string | string[], o: ExecOptions = {}): Promise<ExecStream> {
    const res = await this.client.raw("POST", this.path("/exec"), { body: this.execBody(cmd, o), signal: o.signal });
    return new ExecStream(res, this.id);
  }
  /** Run a command to its end: its whole output and exit status. */
  async exec(cmd: string | string[], o: ExecOptions = {}): Promise<ExecResult> {
    return (await this.execStream(cmd, o)).collect();
  }
  async spawn(cmd: string | string[], o: SpawnOptions = {}): Promise<Process> {
    const b = this.execBody(cmd, o);
    if (o.tag !== undefined) b.tag = o.tag;
    if (o.pty) b.pty = true;
    if (o.rows !== undefined) b.rows = o.rows;
    if (o.cols !== undefined) b.cols = o.cols;
    if (o.stdinOpen) b.stdin_open = true;
    return new Process(this, await this.client.request("POST", this.path("/procs"), { body: b, signal: o.signal }));
  }
  /** An interactive PTY process: write() keystrokes, output() the screen bytes, resize(). */
  pty(cmd: string | string[] = ["sh"], o: SpawnOptions = {}): Promise<Process> {
    return this.spawn(cmd, { rows: 24, cols: 80, ...o, pty: true, stdinOpen: true });
  }
  async procs(o: CallOptions = {}): Promise<Process[]> {
    const r = await this.client.request<{ procs: Json[] }>("GET", this.path("/procs"), o);
    return (r.procs ?? []).map((p) => new Process(this, p));
  }
  async process(ref: string, o: CallOptions = {}): Promise<Process> {
    return new Process(this, await this.client.request("GET", this.path("/procs/" + enc(ref)), o));
  }
  snapshot(opts: { tags?: string[]; keep_paused?: boolean; ttl_s?: number } = {}, o: CallOptions = {}): Promise<Json> {
    return this.client.request("POST", this.path("/snapshot"), { body: opts, signal: o.signal });
  }
  async fork(n = 1, o: CallOptions = {}): Promise<Sandbox[]> {
    const r = await this.client.request<{ sandboxes: string[] }>("POST", this.path("/fork"), { body: { n }, signal: o.signal });
    return Promise.all((r.sandboxes ?? []).map((id) => this.client.get(id, o)));
  }
  async pause(o: CallOptions = {}): Promise<this> {
    this.info = await this.client.request("POST", this.path("/pause"), o);
    return this;
  }
  async resume(o: CallOptions = {}): Promise<this> {
    this.info = await this.client.request("POST", this.path("/resume"), o);
    return this;
  }
  events(f: { types?: string[]; limit?: number } = {}, o: CallOptions = {}): AsyncGenerator<Json> {
    return this.client.events({ ...f, sandbox: this.id }, o);
  }
  /** Terminate (graceMs, then force) and verify the cleanup; the final record. */
  async delete(graceMs?: number, o: CallOptions = {}): Promise<Json> {
    this.info = await this.client.request("DELETE", this.path(), { query: { grace_ms: graceMs }, signal: o.signal });
    return this.info;
  }
  /** `await using sb = await client.create(...)` (TS 5.2+) deletes it. */
  async [(Symbol as unknown as { asyncDispose: symbol }).asyncDispose ?? Symbol.for("Symbol.asyncDispose")](): Promise<void> {
    try {
      await this.delete(0);
    } catch (e) {
      if (!(e instanceof VmNotFound)) throw e;
    }
  }
}

/** Run fn with a new sandbox, deleted afterwards whatever happens. */
export async function withSandbox<T>(client: Client, opts: CreateOptions | string, fn: (sb: Sandbox) => Promise<T>): Promise<T> {
  const sb = await client.create(opts);
  try {
    return await fn(sb);
  } finally {
    await sb.delete(0).catch((e) => {
      if (!(e instanceof SiloError)) throw e;
    });
  }
}
