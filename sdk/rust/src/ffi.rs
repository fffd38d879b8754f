//! The C ABI of include/silo/client.h and include/silo/error.h, by hand
//! (no bindgen: no crate registry). Keep in step with those headers; the
//! option structs start with their size, so appending fields stays compatible.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};

pub const SILO_ERROR_MSG_MAX: usize = 1024;
pub const SILO_ID_MAX: usize = 64;

#[repr(C)]
pub struct silo_error {
    pub code: c_int,
    pub sys_errno: c_int,
    pub vm_id: [c_char; SILO_ID_MAX],
    pub message: [c_char; SILO_ERROR_MSG_MAX],
}

#[repr(C)]
pub struct silo_client {
    _private: [u8; 0],
}

#[repr(C)]
pub struct silo_client_opts {
    pub size: usize,
    pub host: *const c_char,
    pub token: *const c_char,
    pub socket: *const c_char,
    pub timeout_ms: c_long,
    pub ca: *const c_char,
    pub cert: *const c_char,
    pub key: *const c_char,
}

#[repr(C)]
pub struct silo_client_exec_opts {
    pub size: usize,
    pub argv: *const *const c_char,
    pub env: *const *const c_char,
    pub cwd: *const c_char,
    pub stdin_data: *const c_void,
    pub stdin_len: usize,
    pub timeout_ms: u32,
    pub tag: *const c_char,
    pub pty: c_int,
    pub rows: u16,
    pub cols: u16,
    pub stdin_open: c_int,
}

#[repr(C)]
#[derive(Default)]
pub struct silo_client_exit {
    pub exit_code: c_int,
    pub signal: c_int,
    pub timed_out: c_int,
    pub duration_ms: i64,
}

pub type output_fn = unsafe extern "C" fn(ud: *mut c_void, stream: c_int, data: *const c_void, len: usize) -> c_int;
pub type data_fn = unsafe extern "C" fn(ud: *mut c_void, data: *const c_void, len: usize) -> c_int;
pub type event_fn = unsafe extern "C" fn(ud: *mut c_void, json: *const c_char, len: usize) -> c_int;

type Err = *mut silo_error;
type Cl = *mut silo_client;
type S = *const c_char;

extern "C" {
    pub fn silo_code_name(code: c_int) -> S;
    pub fn silo_client_new(opts: *const silo_client_opts, out: *mut Cl, err: Err) -> c_int;
    pub fn silo_client_free(c: Cl);
    pub fn silo_client_target(c: *const silo_client) -> S;
    pub fn silo_client_free_buf(p: *mut c_void);
    pub fn silo_client_version() -> S;
    pub fn silo_client_request(c: Cl, method: S, path: S, ctype: S, body: *const c_void, body_len: usize,
                               resp: *mut *mut c_char, resp_len: *mut usize, err: Err) -> c_int;
    pub fn silo_client_create(c: Cl, body: S, is_toml: c_int, id: *mut c_char, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_get(c: Cl, id: S, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_list(c: Cl, query: S, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_delete(c: Cl, id: S, grace_ms: c_int, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_pause(c: Cl, id: S, err: Err) -> c_int;
    pub fn silo_client_resume(c: Cl, id: S, err: Err) -> c_int;
    pub fn silo_client_snapshot(c: Cl, id: S, body: S, snap: *mut c_char, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_restore(c: Cl, snap: S, id: *mut c_char, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_fork(c: Cl, id: S, n: c_uint, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_exec(c: Cl, id: S, o: *const silo_client_exec_opts, cb: Option<output_fn>, ud: *mut c_void,
                            res: *mut silo_client_exit, err: Err) -> c_int;
    pub fn silo_client_exec_collect(c: Cl, id: S, o: *const silo_client_exec_opts, out: *mut *mut c_char,
                                    out_len: *mut usize, errout: *mut *mut c_char, err_len: *mut usize,
                                    res: *mut silo_client_exit, err: Err) -> c_int;
    pub fn silo_client_spawn(c: Cl, id: S, o: *const silo_client_exec_opts, proc_: *mut c_char,
                             json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_proc_signal(c: Cl, id: S, proc_: S, sig: S, err: Err) -> c_int;
    pub fn silo_client_proc_write(c: Cl, id: S, proc_: S, data: *const c_void, len: usize, eof: c_int, err: Err) -> c_int;
    pub fn silo_client_proc_wait(c: Cl, id: S, proc_: S, timeout_ms: u32, res: *mut silo_client_exit, err: Err) -> c_int;
    pub fn silo_client_proc_output(c: Cl, id: S, proc_: S, cb: Option<output_fn>, ud: *mut c_void,
                                   res: *mut silo_client_exit, err: Err) -> c_int;
    pub fn silo_client_proc_remove(c: Cl, id: S, proc_: S, err: Err) -> c_int;
    pub fn silo_client_file_write(c: Cl, id: S, path: S, data: *const c_void, len: usize, mode: c_int, err: Err) -> c_int;
    pub fn silo_client_file_read(c: Cl, id: S, path: S, data: *mut *mut c_char, len: *mut usize, err: Err) -> c_int;
    pub fn silo_client_stat(c: Cl, id: S, path: S, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_list_dir(c: Cl, id: S, path: S, depth: c_int, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_mkdir(c: Cl, id: S, path: S, parents: c_int, err: Err) -> c_int;
    pub fn silo_client_remove(c: Cl, id: S, path: S, recursive: c_int, err: Err) -> c_int;
    pub fn silo_client_tar_out(c: Cl, id: S, path: S, cb: data_fn, ud: *mut c_void, err: Err) -> c_int;
    pub fn silo_client_tar_in(c: Cl, id: S, path: S, tar: *const c_void, len: usize, err: Err) -> c_int;
    pub fn silo_client_deploy(c: Cl, body: S, json: *mut *mut c_char, err: Err) -> c_int;
    pub fn silo_client_undeploy(c: Cl, name: S, err: Err) -> c_int;
    pub fn silo_client_events(c: Cl, query: S, cb: event_fn, ud: *mut c_void, err: Err) -> c_int;
}
