//! Silo sandboxes from Rust: safe types over libsilo-client (include/silo/client.h),
//! which speaks silod's HTTP API over its unix socket or TCP/TLS with a token.
//!
//! Rules:
//! - Every fallible call returns `Result<T, silo::Error>`; the error carries the
//!   stable code of docs/errors.md (`Code`), silod's message, the sandbox id and errno.
//! - A `Sandbox` deletes its sandbox when dropped, unless `keep()` detached it;
//!   `delete()` does it now and reports the error. A `Process` is left running
//!   on drop (it belongs to the sandbox); `remove()` kills and forgets it.
//! - `Client` is `Send + Sync` (the C client is thread-safe: a pool of
//!   connections under a mutex); callbacks run on the calling thread, and a
//!   panic in one stops the stream and is resumed after the C call returns.
//! - JSON answers (docs/openapi.yaml) are returned as `String`s: the crate has no
//!   dependencies, parse them with the JSON library of your choice.

mod ffi;

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

/// The stable error codes (docs/errors.md, include/silo/error.h). Never renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    InvalidConfig = 1,
    ResourceExceeded = 2,
    MaxVmsExceeded = 3,
    BootTimeout = 4,
    VmNotFound = 5,
    VsockDisconnected = 6,
    PolicyDenied = 7,
    SecurityViolation = 8,
    ChecksumMismatch = 9,
    PluginUnverified = 10,
    CleanupFailed = 11,
    RemoteUnreachable = 12,
    ProviderUnavailable = 13,
    IoError = 14,
    Timeout = 15,
    Protocol = 16,
    Unauthorized = 17,
    Conflict = 18,
    NotSupported = 19,
    Internal = 20,
    NotFound = 21,
    MethodNotAllowed = 22,
    PayloadTooLarge = 23,
    UnsupportedMediaType = 24,
    FileNotFound = 25,
    ProcessNotFound = 26,
    /// A code newer than this crate.
    Unknown = -1,
}

const CODES: [Code; 26] = [
    Code::InvalidConfig, Code::ResourceExceeded, Code::MaxVmsExceeded, Code::BootTimeout, Code::VmNotFound,
    Code::VsockDisconnected, Code::PolicyDenied, Code::SecurityViolation, Code::ChecksumMismatch,
    Code::PluginUnverified, Code::CleanupFailed, Code::RemoteUnreachable, Code::ProviderUnavailable, Code::IoError,
    Code::Timeout, Code::Protocol, Code::Unauthorized, Code::Conflict, Code::NotSupported, Code::Internal,
    Code::NotFound, Code::MethodNotAllowed, Code::PayloadTooLarge, Code::UnsupportedMediaType, Code::FileNotFound,
    Code::ProcessNotFound,
];

impl Code {
    /// The code of a number (Unknown for one this crate does not know).
    pub fn from_number(n: i32) -> Code {
        if n >= 1 && (n as usize) <= CODES.len() { CODES[n as usize - 1] } else { Code::Unknown }
    }
    /// "INVALID_CONFIG", ... as docs/errors.md spells it (from the C library's table).
    pub fn name(self) -> &'static str {
        // SAFETY: silo_code_name returns a static string for every value.
        unsafe { CStr::from_ptr(ffi::silo_code_name(self as c_int)) }.to_str().unwrap_or("UNKNOWN")
    }
}

/// A failure: the stable code, the message, the sandbox it concerns ("" if none), errno (0 if none).
#[derive(Clone, Debug)]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub sandbox_id: String,
    pub errno: i32,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn cstr(b: &[c_char]) -> String {
    let bytes: Vec<u8> = b.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn new_err() -> ffi::silo_error {
    ffi::silo_error { code: 0, sys_errno: 0, vm_id: [0; ffi::SILO_ID_MAX], message: [0; ffi::SILO_ERROR_MSG_MAX] }
}

fn check(rc: c_int, e: &ffi::silo_error) -> Result<bool> {
    if rc >= 0 {
        return Ok(rc == 1);
    }
    Err(Error { code: Code::from_number(e.code), message: cstr(&e.message), sandbox_id: cstr(&e.vm_id), errno: e.sys_errno })
}

fn invalid(what: &str) -> Error {
    Error { code: Code::InvalidConfig, message: format!("{what}: contains a NUL byte"), sandbox_id: String::new(), errno: 0 }
}

fn c(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid(what))
}

fn opt_c(s: Option<&str>, what: &str) -> Result<Option<CString>> {
    s.map(|s| c(s, what)).transpose()
}

fn ptr_of(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// A buffer the C library allocated: copied out and freed.
fn take(p: *mut c_char, len: Option<usize>) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: p is a NUL-terminated buffer of len bytes (or a C string) from libsilo-client.
    let v = unsafe {
        match len {
            Some(n) => std::slice::from_raw_parts(p as *const u8, n).to_vec(),
            None => CStr::from_ptr(p).to_bytes().to_vec(),
        }
    };
    unsafe { ffi::silo_client_free_buf(p as *mut c_void) };
    v
}

fn take_string(p: *mut c_char) -> String {
    String::from_utf8_lossy(&take(p, None)).into_owned()
}

/// The strings of `"key": ["a", "b"]` in a JSON object from silod (ids: no escapes).
fn string_array(json: &str, key: &str) -> Option<Vec<String>> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('[')?;
    let body = &rest[..rest.find(']')?];
    body.split(',').map(str::trim).filter(|x| !x.is_empty())
        .map(|x| x.strip_prefix('"').and_then(|x| x.strip_suffix('"')).filter(|x| !x.contains(['"', '\\'])).map(String::from))
        .collect()
}

/// Where and how to connect; `Default` follows the CLI's environment rules
/// ($SILO_HOST with $SILO_API_TOKEN, $SILO_CA, $SILO_CLIENT_CERT, $SILO_CLIENT_KEY,
/// else $SILO_SOCKET or $SILO_RUNTIME_DIR/silod.sock).
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub host: Option<String>,
    pub token: Option<String>,
    pub socket: Option<String>,
    /// Per request (not streams).
    pub timeout: Option<Duration>,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// A connection to silod.
pub struct Client {
    raw: *mut ffi::silo_client,
}

// SAFETY: libsilo-client handles may be used from many threads at once (client.h).
unsafe impl Send for Client {}
unsafe impl Sync for Client {}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: raw came from silo_client_new and is freed once.
        unsafe { ffi::silo_client_free(self.raw) }
    }
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStatus {
    /// 128+signal when killed
    pub code: i32,
    pub signal: i32,
    pub timed_out: bool,
    pub duration_ms: i64,
}

impl ExitStatus {
    fn from(x: &ffi::silo_client_exit) -> ExitStatus {
        ExitStatus { code: x.exit_code, signal: x.signal, timed_out: x.timed_out != 0, duration_ms: x.duration_ms }
    }
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal == 0 && !self.timed_out
    }
}

/// The collected result of a command.
#[derive(Clone, Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A command to run: `Exec::new(["sh", "-c", "echo hi"]).env("K", "V").cwd("/tmp")`.
#[derive(Clone, Debug, Default)]
pub struct Exec {
    argv: Vec<String>,
    env: Vec<String>,
    cwd: Option<String>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    tag: Option<String>,
    pty: Option<(u16, u16)>,
    stdin_open: bool,
}

impl Exec {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(argv: I) -> Exec {
        Exec { argv: argv.into_iter().map(Into::into).collect(), ..Exec::default() }
    }
    pub fn env(mut self, key: &str, value: &str) -> Exec {
        self.env.push(format!("{key}={value}"));
        self
    }
    pub fn cwd(mut self, dir: &str) -> Exec {
        self.cwd = Some(dir.into());
        self
    }
    /// Fed to the command, then its stdin is closed.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Exec {
        self.stdin = Some(data.into());
        self
    }
    /// Then its process group is killed and `ExitStatus::timed_out` is set.
    pub fn timeout(mut self, t: Duration) -> Exec {
        self.timeout = Some(t);
        self
    }
    /// Background processes: a tag to find it by.
    pub fn tag(mut self, tag: &str) -> Exec {
        self.tag = Some(tag.into());
        self
    }
    /// Background processes: on a pseudo-terminal of rows x cols.
    pub fn pty(mut self, rows: u16, cols: u16) -> Exec {
        self.pty = Some((rows, cols));
        self
    }
    /// Background processes: keep stdin open for `Process::write`.
    pub fn stdin_open(mut self) -> Exec {
        self.stdin_open = true;
        self
    }
}

/// The C view of an Exec; owns the strings its pointers point into.
struct RawExec {
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_p: Vec<*const c_char>,
    env_p: Vec<*const c_char>,
    cwd: Option<CString>,
    tag: Option<CString>,
}

impl RawExec {
    fn new(e: &Exec) -> Result<RawExec> {
        let argv = e.argv.iter().map(|a| c(a, "argv")).collect::<Result<Vec<_>>>()?;
        let env = e.env.iter().map(|a| c(a, "env")).collect::<Result<Vec<_>>>()?;
        let mut argv_p: Vec<*const c_char> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_p.push(ptr::null());
        let mut env_p: Vec<*const c_char> = env.iter().map(|s| s.as_ptr()).collect();
        env_p.push(ptr::null());
        Ok(RawExec { _argv: argv, _env: env, argv_p, env_p, cwd: opt_c(e.cwd.as_deref(), "cwd")?,
                     tag: opt_c(e.tag.as_deref(), "tag")? })
    }
    fn opts(&self, e: &Exec) -> ffi::silo_client_exec_opts {
        let (rows, cols) = e.pty.unwrap_or((0, 0));
        ffi::silo_client_exec_opts {
            size: std::mem::size_of::<ffi::silo_client_exec_opts>(),
            argv: self.argv_p.as_ptr(),
            env: if e.env.is_empty() { ptr::null() } else { self.env_p.as_ptr() },
            cwd: ptr_of(&self.cwd),
            stdin_data: e.stdin.as_ref().map_or(ptr::null(), |s| s.as_ptr() as *const c_void),
            stdin_len: e.stdin.as_ref().map_or(0, |s| s.len()),
            timeout_ms: e.timeout.map_or(0, |t| t.as_millis().min(u32::MAX as u128) as u32),
            tag: ptr_of(&self.tag),
            pty: e.pty.is_some() as c_int,
            rows,
            cols,
            stdin_open: e.stdin_open as c_int,
        }
    }
}

/// A Rust closure behind a C callback: its panic is kept and resumed later.
struct Cb<'a, F: ?Sized> {
    f: &'a mut F,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

fn run_cb<F: ?Sized>(cb: &mut Cb<'_, F>, call: impl FnOnce(&mut F) -> bool) -> c_int {
    if cb.panic.is_some() {
        return 1;
    }
    match catch_unwind(AssertUnwindSafe(|| call(cb.f))) {
        Ok(go_on) => !go_on as c_int,
        Err(p) => {
            cb.panic = Some(p);
            1
        }
    }
}

unsafe extern "C" fn output_tramp<F: FnMut(Stream, &[u8]) -> bool>(ud: *mut c_void, stream: c_int, data: *const c_void,
                                                                      len: usize) -> c_int {
    let cb = &mut *(ud as *mut Cb<'_, F>);
    let s = if stream == 2 { Stream::Stderr } else { Stream::Stdout };
    let d = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data as *const u8, len) };
    run_cb(cb, |f| f(s, d))
}

unsafe extern "C" fn data_tramp<F: FnMut(&[u8]) -> bool>(ud: *mut c_void, data: *const c_void, len: usize) -> c_int {
    let cb = &mut *(ud as *mut Cb<'_, F>);
    let d = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data as *const u8, len) };
    run_cb(cb, |f| f(d))
}

unsafe extern "C" fn event_tramp<F: FnMut(&str) -> bool>(ud: *mut c_void, json: *const c_char, len: usize) -> c_int {
    let cb = &mut *(ud as *mut Cb<'_, F>);
    let d = std::slice::from_raw_parts(json as *const u8, len);
    let s = String::from_utf8_lossy(d);
    run_cb(cb, |f| f(&s))
}

fn resume<F: ?Sized>(cb: Cb<'_, F>) {
    if let Some(p) = cb.panic {
        resume_unwind(p);
    }
}

impl Client {
    /// Connect as the CLI does (the environment; see `ClientOptions`).
    pub fn new() -> Result<Client> {
        Client::with_options(&ClientOptions::default())
    }

    pub fn with_options(o: &ClientOptions) -> Result<Client> {
        let host = opt_c(o.host.as_deref(), "host")?;
        let token = opt_c(o.token.as_deref(), "token")?;
        let socket = opt_c(o.socket.as_deref(), "socket")?;
        let (ca, cert, key) = (opt_c(o.ca.as_deref(), "ca")?, opt_c(o.cert.as_deref(), "cert")?,
                               opt_c(o.key.as_deref(), "key")?);
        let opts = ffi::silo_client_opts {
            size: std::mem::size_of::<ffi::silo_client_opts>(),
            host: ptr_of(&host),
            token: ptr_of(&token),
            socket: ptr_of(&socket),
            timeout_ms: o.timeout.map_or(0, |t| t.as_millis().min(i64::MAX as u128) as _),
            ca: ptr_of(&ca),
            cert: ptr_of(&cert),
            key: ptr_of(&key),
        };
        let mut raw = ptr::null_mut();
        let mut e = new_err();
        // SAFETY: opts and its strings outlive the call; raw is written on success.
        check(unsafe { ffi::silo_client_new(&opts, &mut raw, &mut e) }, &e)?;
        Ok(Client { raw })
    }

    /// "unix:/run/silo/silod.sock" or "https://HOST:PORT"
    pub fn target(&self) -> String {
        // SAFETY: a string owned by the client, copied at once.
        unsafe { CStr::from_ptr(ffi::silo_client_target(self.raw)) }.to_string_lossy().into_owned()
    }

    /// libsilo-client's version.
    pub fn version() -> String {
        unsafe { CStr::from_ptr(ffi::silo_client_version()) }.to_string_lossy().into_owned()
    }

    /// Any request of docs/openapi.yaml (path with its query); the answer's body.
    pub fn request(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>> {
        let (m, p, ct) = (c(method, "method")?, c(path, "path")?, opt_c(content_type, "content type")?);
        let (mut resp, mut len, mut e) = (ptr::null_mut(), 0usize, new_err());
        let rc = unsafe {
            ffi::silo_client_request(self.raw, m.as_ptr(), p.as_ptr(), ptr_of(&ct), body.as_ptr() as *const c_void,
                                     body.len(), &mut resp, &mut len, &mut e)
        };
        let v = take(resp, Some(len));
        check(rc, &e)?;
        Ok(v)
    }

    fn create_raw(&self, body: &str, toml: bool) -> Result<Sandbox<'_>> {
        let b = c(body, "spec")?;
        let mut id = [0 as c_char; ffi::SILO_ID_MAX];
        let mut e = new_err();
        check(unsafe { ffi::silo_client_create(self.raw, b.as_ptr(), toml as c_int, id.as_mut_ptr(), ptr::null_mut(), &mut e) }, &e)?;
        Ok(Sandbox { client: self, id: cstr(&id), keep: false })
    }

    /// Create from a JSON CreateRequest: `{"provider": "namespace", "memory_mb": 128}`.
    pub fn create(&self, json: &str) -> Result<Sandbox<'_>> {
        self.create_raw(json, false)
    }

    /// Create from hac.toml text.
    pub fn create_toml(&self, toml: &str) -> Result<Sandbox<'_>> {
        self.create_raw(toml, true)
    }

    /// An existing sandbox, by id or name; dropping it deletes it unless `keep()`.
    pub fn attach(&self, id: &str) -> Result<Sandbox<'_>> {
        let mut sb = Sandbox { client: self, id: id.to_string(), keep: true };
        sb.info()?;
        sb.keep = false;
        Ok(sb)
    }

    /// The sandboxes as JSON; query e.g. "state=all&provider=namespace" (values escaped).
    pub fn list(&self, query: Option<&str>) -> Result<String> {
        let q = opt_c(query, "query")?;
        let (mut json, mut e) = (ptr::null_mut(), new_err());
        let rc = unsafe { ffi::silo_client_list(self.raw, ptr_of(&q), &mut json, &mut e) };
        let s = take_string(json);
        check(rc, &e).map(|_| s)
    }

    /// A new sandbox from a snapshot.
    pub fn restore(&self, snapshot: &str) -> Result<Sandbox<'_>> {
        let s = c(snapshot, "snapshot")?;
        let mut id = [0 as c_char; ffi::SILO_ID_MAX];
        let mut e = new_err();
        check(unsafe { ffi::silo_client_restore(self.raw, s.as_ptr(), id.as_mut_ptr(), ptr::null_mut(), &mut e) }, &e)?;
        Ok(Sandbox { client: self, id: cstr(&id), keep: false })
    }

    /// A deployment from a DeployRequest (`{"name": ..., "spec": ...}`); its JSON.
    pub fn deploy(&self, json: &str) -> Result<String> {
        let b = c(json, "deployment")?;
        let (mut out, mut e) = (ptr::null_mut(), new_err());
        let rc = unsafe { ffi::silo_client_deploy(self.raw, b.as_ptr(), &mut out, &mut e) };
        let s = take_string(out);
        check(rc, &e).map(|_| s)
    }

    pub fn undeploy(&self, name: &str) -> Result<()> {
        let n = c(name, "name")?;
        let mut e = new_err();
        check(unsafe { ffi::silo_client_undeploy(self.raw, n.as_ptr(), &mut e) }, &e).map(|_| ())
    }

    /// Each event's JSON to f until it returns false or the stream ends
    /// (query e.g. "sandbox=ID&types=ready,terminated&limit=N").
    pub fn events<F: FnMut(&str) -> bool>(&self, query: Option<&str>, mut f: F) -> Result<()> {
        let q = opt_c(query, "query")?;
        let mut cb = Cb { f: &mut f, panic: None };
        let mut e = new_err();
        let rc = unsafe {
            ffi::silo_client_events(self.raw, ptr_of(&q), event_tramp::<F>, &mut cb as *mut Cb<'_, F> as *mut c_void, &mut e)
        };
        resume(cb);
        check(rc, &e).map(|_| ())
    }
}

/// A sandbox of silod. Dropping it deletes the sandbox (errors ignored) unless
/// `keep()` detached it; `delete()` reports them.
pub struct Sandbox<'c> {
    client: &'c Client,
    id: String,
    keep: bool,
}

macro_rules! call {
    ($sb:expr, $f:ident $(, $a:expr)*) => {{
        let id = c(&$sb.id, "id")?;
        let mut e = new_err();
        let rc = unsafe { ffi::$f($sb.client.raw, id.as_ptr() $(, $a)*, &mut e) };
        (rc, e)
    }};
}

impl<'c> Sandbox<'c> {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Keep the sandbox after this value is dropped; its id.
    pub fn keep(mut self) -> String {
        self.keep = true;
        std::mem::take(&mut self.id)
    }

    /// Delete it now (silod's default grace period).
    pub fn delete(mut self) -> Result<()> {
        self.keep = true;
        let (rc, e) = call!(self, silo_client_delete, -1, ptr::null_mut());
        check(rc, &e).map(|_| ())
    }

    /// Its JSON (Sandbox in docs/openapi.yaml).
    pub fn info(&self) -> Result<String> {
        let mut json = ptr::null_mut();
        let (rc, e) = call!(self, silo_client_get, &mut json);
        let s = take_string(json);
        check(rc, &e).map(|_| s)
    }

    /// Run a command and collect its output.
    pub fn exec(&self, cmd: &Exec) -> Result<Output> {
        let raw = RawExec::new(cmd)?;
        let o = raw.opts(cmd);
        let (mut out, mut out_len, mut err, mut err_len) = (ptr::null_mut(), 0usize, ptr::null_mut(), 0usize);
        let mut x = ffi::silo_client_exit::default();
        let (rc, e) = call!(self, silo_client_exec_collect, &o, &mut out, &mut out_len, &mut err, &mut err_len, &mut x);
        let (stdout, stderr) = (take(out, Some(out_len)), take(err, Some(err_len)));
        check(rc, &e)?;
        Ok(Output { stdout, stderr, status: ExitStatus::from(&x) })
    }

    /// Run a command, its output to f as it comes (return false to stop: the
    /// command is killed and the result is None).
    pub fn exec_stream<F: FnMut(Stream, &[u8]) -> bool>(&self, cmd: &Exec, mut f: F) -> Result<Option<ExitStatus>> {
        let raw = RawExec::new(cmd)?;
        let o = raw.opts(cmd);
        let mut x = ffi::silo_client_exit::default();
        let mut cb = Cb { f: &mut f, panic: None };
        let ud = &mut cb as *mut Cb<'_, F> as *mut c_void;
        let (rc, e) = call!(self, silo_client_exec, &o, Some(output_tramp::<F> as ffi::output_fn), ud, &mut x);
        resume(cb);
        Ok(if check(rc, &e)? { None } else { Some(ExitStatus::from(&x)) })
    }

    /// Start a background process.
    pub fn spawn(&self, cmd: &Exec) -> Result<Process<'_, 'c>> {
        let raw = RawExec::new(cmd)?;
        let o = raw.opts(cmd);
        let mut h = [0 as c_char; ffi::SILO_ID_MAX];
        let (rc, e) = call!(self, silo_client_spawn, &o, h.as_mut_ptr(), ptr::null_mut());
        check(rc, &e)?;
        Ok(Process { sandbox: self, handle: cstr(&h) })
    }

    /// A process by handle, pid or tag.
    pub fn process(&self, handle: &str) -> Process<'_, 'c> {
        Process { sandbox: self, handle: handle.to_string() }
    }

    /// Files inside the sandbox.
    pub fn files(&self) -> Files<'_, 'c> {
        Files { sb: self }
    }

    /// A snapshot; its id. body: JSON ({"tags": [...], "keep_paused", "ttl_s"}) or None.
    pub fn snapshot(&self, body: Option<&str>) -> Result<String> {
        let b = opt_c(body, "snapshot options")?;
        let mut snap = [0 as c_char; ffi::SILO_ID_MAX];
        let (rc, e) = call!(self, silo_client_snapshot, ptr_of(&b), snap.as_mut_ptr(), ptr::null_mut());
        check(rc, &e).map(|_| cstr(&snap))
    }

    /// n copy-on-write copies, each owned (deleted on drop) like this one.
    pub fn fork(&self, n: u32) -> Result<Vec<Sandbox<'c>>> {
        let mut json = ptr::null_mut();
        let (rc, e) = call!(self, silo_client_fork, n, &mut json);
        let s = take_string(json);
        check(rc, &e)?;
        let ids = string_array(&s, "sandboxes").ok_or_else(|| Error {
            code: Code::Protocol, message: format!("fork: no \"sandboxes\" array in silod's answer: {s:.200}"),
            sandbox_id: self.id.clone(), errno: 0,
        })?;
        Ok(ids.into_iter().map(|id| Sandbox { client: self.client, id, keep: false }).collect())
    }

    pub fn pause(&self) -> Result<()> {
        let (rc, e) = call!(self, silo_client_pause);
        check(rc, &e).map(|_| ())
    }

    pub fn resume(&self) -> Result<()> {
        let (rc, e) = call!(self, silo_client_resume);
        check(rc, &e).map(|_| ())
    }
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        if !self.keep {
            if let Ok(id) = CString::new(self.id.as_str()) {
                let mut e = new_err();
                unsafe { ffi::silo_client_delete(self.client.raw, id.as_ptr(), -1, ptr::null_mut(), &mut e) };
            }
        }
    }
}

/// Files inside a sandbox.
pub struct Files<'s, 'c> {
    sb: &'s Sandbox<'c>,
}

impl Files<'_, '_> {
    pub fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        let p = c(path, "path")?;
        let (rc, e) = call!(self.sb, silo_client_file_write, p.as_ptr(), data.as_ptr() as *const c_void, data.len(), -1);
        check(rc, &e).map(|_| ())
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = c(path, "path")?;
        let (mut data, mut len) = (ptr::null_mut(), 0usize);
        let (rc, e) = call!(self.sb, silo_client_file_read, p.as_ptr(), &mut data, &mut len);
        let v = take(data, Some(len));
        check(rc, &e).map(|_| v)
    }

    /// Its JSON (FileInfo).
    pub fn stat(&self, path: &str) -> Result<String> {
        let p = c(path, "path")?;
        let mut json = ptr::null_mut();
        let (rc, e) = call!(self.sb, silo_client_stat, p.as_ptr(), &mut json);
        let s = take_string(json);
        check(rc, &e).map(|_| s)
    }

    /// The entries (JSON) down to depth (0: 1).
    pub fn list(&self, path: &str, depth: i32) -> Result<String> {
        let p = c(path, "path")?;
        let mut json = ptr::null_mut();
        let (rc, e) = call!(self.sb, silo_client_list_dir, p.as_ptr(), depth, &mut json);
        let s = take_string(json);
        check(rc, &e).map(|_| s)
    }

    pub fn mkdir(&self, path: &str, parents: bool) -> Result<()> {
        let p = c(path, "path")?;
        let (rc, e) = call!(self.sb, silo_client_mkdir, p.as_ptr(), parents as c_int);
        check(rc, &e).map(|_| ())
    }

    pub fn remove(&self, path: &str, recursive: bool) -> Result<()> {
        let p = c(path, "path")?;
        let (rc, e) = call!(self.sb, silo_client_remove, p.as_ptr(), recursive as c_int);
        check(rc, &e).map(|_| ())
    }

    /// A tar archive of path, streamed to f (return false to stop).
    pub fn tar_out<F: FnMut(&[u8]) -> bool>(&self, path: &str, mut f: F) -> Result<()> {
        let p = c(path, "path")?;
        let mut cb = Cb { f: &mut f, panic: None };
        let ud = &mut cb as *mut Cb<'_, F> as *mut c_void;
        let (rc, e) = call!(self.sb, silo_client_tar_out, p.as_ptr(), data_tramp::<F>, ud);
        resume(cb);
        check(rc, &e).map(|_| ())
    }

    /// Unpack a tar archive into the directory path.
    pub fn tar_in(&self, path: &str, tar: &[u8]) -> Result<()> {
        let p = c(path, "path")?;
        let (rc, e) = call!(self.sb, silo_client_tar_in, p.as_ptr(), tar.as_ptr() as *const c_void, tar.len());
        check(rc, &e).map(|_| ())
    }
}

/// A background process of a sandbox (left running when dropped).
pub struct Process<'s, 'c> {
    sandbox: &'s Sandbox<'c>,
    handle: String,
}

impl Process<'_, '_> {
    /// "p3"
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// sig: "TERM", "KILL", "9", ...
    pub fn signal(&self, sig: &str) -> Result<()> {
        let (h, s) = (c(&self.handle, "process")?, c(sig, "signal")?);
        let (rc, e) = call!(self.sandbox, silo_client_proc_signal, h.as_ptr(), s.as_ptr());
        check(rc, &e).map(|_| ())
    }

    /// To its stdin (`Exec::stdin_open`); eof closes it after data.
    pub fn write(&self, data: &[u8], eof: bool) -> Result<()> {
        let h = c(&self.handle, "process")?;
        let (rc, e) = call!(self.sandbox, silo_client_proc_write, h.as_ptr(), data.as_ptr() as *const c_void, data.len(),
                            eof as c_int);
        check(rc, &e).map(|_| ())
    }

    /// Wait for its exit (None: silod's default, 30 s; still running then: Code::Timeout).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<ExitStatus> {
        let h = c(&self.handle, "process")?;
        let mut x = ffi::silo_client_exit::default();
        let ms = timeout.map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32);
        let (rc, e) = call!(self.sandbox, silo_client_proc_wait, h.as_ptr(), ms, &mut x);
        check(rc, &e).map(|_| ExitStatus::from(&x))
    }

    /// Attach as a reader until it exits (None if f stopped it).
    pub fn output<F: FnMut(Stream, &[u8]) -> bool>(&self, mut f: F) -> Result<Option<ExitStatus>> {
        let h = c(&self.handle, "process")?;
        let mut x = ffi::silo_client_exit::default();
        let mut cb = Cb { f: &mut f, panic: None };
        let ud = &mut cb as *mut Cb<'_, F> as *mut c_void;
        let (rc, e) = call!(self.sandbox, silo_client_proc_output, h.as_ptr(), Some(output_tramp::<F> as ffi::output_fn),
                            ud, &mut x);
        resume(cb);
        Ok(if check(rc, &e)? { None } else { Some(ExitStatus::from(&x)) })
    }

    /// Kill it if it runs and forget it.
    pub fn remove(self) -> Result<()> {
        let h = c(&self.handle, "process")?;
        let (rc, e) = call!(self.sandbox, silo_client_proc_remove, h.as_ptr());
        check(rc, &e).map(|_| ())
    }
}
