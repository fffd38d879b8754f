/* SPDX-License-Identifier: Apache-2.0
 * silo-oci: an OCI runtime (the command line of runc, crun and runsc) whose
 * containers are Silo sandboxes (docs/kubernetes.md, "silo-oci"). Internals
 * shared by the files of runtime/:
 *   main.c        global options, the command table, logging (--log, --log-format)
 *   config.c      config.json and process.json (runtime-spec 1.x), bounded and checked
 *   state.c       the state directory of a container (--root/ID): state.json, locks
 *   ctl.c         the control socket between the commands and a supervisor
 *   supervisor.c  the per-container process that owns the sandbox
 *   commands.c    create, start, state, kill, delete, exec, ps, pause, resume, features
 *   rootfs.c      VM providers: a bundle's root as an ext4 disk, cached by content
 *
 * Process model. `create` forks the supervisor, which creates the sandbox,
 * reports "created" and then waits for `start` on its control socket; `create`
 * writes the supervisor's pid to --pid-file and exits, so the supervisor is
 * reparented to the engine's subreaper (conmon, containerd-shim), which waits
 * for it. `start` tells it to run the process; the supervisor relays stdio
 * (or a pty whose master went to --console-socket), forwards signals, and when
 * the process ends records the status, destroys the sandbox (nothing left on the
 * host) and ends the same way the process did (exit status, or the same signal),
 * which is what the engine reports as the container's exit. `exec` runs another
 * process in the sandbox through the supervisor; the pid it reports is a relay
 * that ends like that process.
 *
 * State across kill -9: state.json is replaced atomically at every change and
 * names the supervisor (pid and start time) and the sandbox (id, provider, run
 * directory); a supervisor that died is noticed by its pid and start time, and
 * `delete` then terminates the sandbox it left (the provider finds its processes
 * from the run directory) before removing the state directory.
 */
#ifndef SILO_RUNTIME_RT_H
#define SILO_RUNTIME_RT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define RT_OCI_VERSION "1.0.2"
#define RT_DEFAULT_ROOT "/run/silo-oci"
#define RT_CONFIG_MAX (4u << 20)        /* bytes of config.json / process.json */
#define RT_MAX_ARGS 4096                /* process.args, process.env entries */
#define RT_MAX_MOUNTS 128
#define RT_MAX_HOOKS 32                 /* per hook kind */
#define RT_MAX_RLIMITS 16
#define RT_MAX_GIDS 64
#define RT_ID_MAX 128                   /* container ids: [A-Za-z0-9_.+-] */

/* ---- config.json ---- */
typedef struct rt_rlimit {
	int resource;                   /* RLIMIT_* */
	uint64_t soft, hard;
} rt_rlimit;

typedef struct rt_mount {
	char *dest, *type, *source;
	bool bind, ro, tmpfs;
	char *tmpfs_opts;               /* size=, mode=, nr_inodes= of a tmpfs */
} rt_mount;

enum { RT_HOOK_PRESTART, RT_HOOK_CREATE_RUNTIME, RT_HOOK_CREATE_CONTAINER, RT_HOOK_START_CONTAINER,
       RT_HOOK_POSTSTART, RT_HOOK_POSTSTOP, RT_HOOK__N };
typedef struct rt_hook {
	char *path;
	char **args, **env;             /* strv, may be NULL */
	int timeout_s;                  /* 0 = none */
} rt_hook;

typedef struct rt_process {
	bool terminal;
	uint16_t rows, cols;            /* consoleSize, 0 = unknown */
	char **args, **env;             /* strv */
	char *cwd;
	uint32_t uid, gid;
	uint32_t gids[RT_MAX_GIDS];     /* additionalGids */
	size_t ngids;
	rt_rlimit rlimits[RT_MAX_RLIMITS];
	size_t nrlimits;
} rt_process;

typedef struct rt_config {
	char *oci_version;
	char *root;                     /* root.path made absolute against the bundle */
	bool root_ro;
	char *hostname;
	bool has_process;               /* "process" is optional until start (runtime-spec) */
	rt_process process;
	rt_mount mounts[RT_MAX_MOUNTS];
	size_t nmounts;
	rt_hook hooks[RT_HOOK__N][RT_MAX_HOOKS];
	size_t nhooks[RT_HOOK__N];
	json_t *annotations;            /* object of strings (may be empty) */
	uint64_t memory_limit;          /* bytes, 0 = none */
	int64_t cpu_quota;              /* µs per period, <= 0 = none */
	uint64_t cpu_period;
	int64_t pids_limit;             /* <= 0 = none */
} rt_config;

/* Parse and check config.json text (bundle: the absolute bundle directory, for a
 * relative root.path). INVALID_CONFIG naming the field ("process.args[2]: ..."). */
int rt_config_parse(const char *text, size_t len, const char *bundle, rt_config *out, silo_error *err);
/* Read BUNDLE/config.json. */
int rt_config_load(const char *bundle, rt_config *out, silo_error *err);
void rt_config_free(rt_config *c);
/* A "process" object (config.json's, or `exec --process FILE`); what: its name in errors. */
int rt_process_parse(json_t *p, const char *what, rt_process *out, silo_error *err);
void rt_process_free(rt_process *p);
json_t *rt_process_json(const rt_process *p);

/* ---- the container's state directory ---- */
typedef enum rt_status { RT_CREATING, RT_CREATED, RT_RUNNING, RT_PAUSED, RT_STOPPED } rt_status;
const char *rt_status_name(rt_status s);

typedef struct rt_state {
	char id[RT_ID_MAX + 1];
	char bundle[PATH_MAX];
	char rootfs[PATH_MAX];
	rt_status status;
	pid_t pid;                      /* the supervisor */
	unsigned long long starttime;   /* its start time (/proc/PID/stat), 0 = unknown */
	char sandbox[64];               /* the Silo sandbox id, "" before it exists */
	char provider[16];
	char silo_rundir[PATH_MAX];     /* SILO_RUNTIME_DIR of the sandbox */
	pid_t sandbox_pid;              /* the sandbox's supervising host process (namespace init, VMM) */
	int exit_code;                  /* stopped: 0..255, or 128 + signal */
	char created[40];               /* RFC 3339 */
	json_t *annotations;
} rt_state;

typedef struct rt_global {
	char root[PATH_MAX];            /* --root */
	char log[PATH_MAX];             /* --log, "" = stderr only */
	bool log_json;                  /* --log-format json */
	bool debug;
	bool supervisor;                /* this process is a supervisor: fd 2 is its log pipe, not a terminal */
} rt_global;

extern rt_global rt_g;

bool rt_id_valid(const char *id);
/* ROOT/ID into buf. */
void rt_dir(const char *id, char *buf, size_t len);
int rt_state_write(const rt_state *s, silo_error *err);
/* Read ROOT/ID/state.json; VM_NOT_FOUND when there is no such container. */
int rt_state_read(const char *id, rt_state *s, silo_error *err);
void rt_state_free(rt_state *s);
/* Is the supervisor still alive (pid and start time)? */
bool rt_supervisor_alive(const rt_state *s);
/* The status to report: a stopped supervisor means stopped. */
rt_status rt_state_status(const rt_state *s);
/* state.json of the runtime spec ("ociVersion", "id", "status", "pid", "bundle", ...). */
json_t *rt_state_json(const rt_state *s);
/* flock ROOT/ID/lock exclusively (commands that change the container). fd or -1. */
int rt_lock(const char *id, silo_error *err);

/* ---- control socket: ROOT/ID/ctl.sock, one JSON line each way, fds by SCM_RIGHTS ---- */
#define RT_CTL_SOCK "ctl.sock"
#define RT_CTL_LINE_MAX (256u << 10)
/* Connect to a container's supervisor (uid 0 only). fd or -1 (VM_NOT_FOUND when nobody listens). */
int rt_ctl_connect(const char *id, silo_error *err);
/* Send one line (a JSON object) with up to 4 fds. */
int rt_ctl_send(int fd, json_t *msg, const int *fds, int nfds, silo_error *err);
/* Receive one line; fds (up to *nfds, CLOEXEC) into fds. *msg NULL on EOF. timeout_ms < 0: forever. */
int rt_ctl_recv(int fd, json_t **msg, int *fds, int *nfds, int timeout_ms, silo_error *err);
/* One request, one reply ({"ok": true, ...} or {"error": {...}} turned into err). */
int rt_ctl_call(const char *id, json_t *req, json_t **reply, int timeout_ms, silo_error *err);

/* Exit the way a process ended: killed by the same signal (no core dump), or
 * with its status (ctl.c). */
__attribute__((noreturn)) void rt_exit_as(int code, int sig);

/* ---- supervisor ---- */
typedef struct rt_create_opts {
	const char *id, *bundle, *pid_file, *console_socket;
	pid_t pid;                      /* out: the supervisor */
} rt_create_opts;
/* Fork the supervisor and wait until the sandbox exists (or failed). */
int rt_create(rt_create_opts *o, silo_error *err);

/* The supervisor (supervisor.c): runs in the child `create` forked; reports
 * "OK <pid>" or "E<CODE> <message>" on report_fd, never returns. */
__attribute__((noreturn)) void rt_supervise(const rt_create_opts *o, rt_config *cfg, int report_fd);

/* ---- hooks (hooks.c) ---- */
/* Run the hooks of one kind (runtime-spec "hooks") on the host, each with the
 * container's state on stdin; the first failure or timeout is returned. */
int rt_run_hooks(const rt_config *c, int kind, const rt_state *st, silo_error *err);

/* ---- pty ---- */
/* A new pty pair; the master is sent over the unix socket at path (SCM_RIGHTS,
 * as runc does), the slave stays (raw mode, CLOEXEC). */
int rt_console(const char *socket_path, int *slave, silo_error *err);

/* ---- VM root disks (rootfs.c) ---- */
/* An ext4 image of the tree at root, built or taken from the cache
 * ($CACHE/oci/bundles/<key>.ext4, key = a digest of every entry's path, type,
 * mode, owner, size, mtime and symlink target). */
int rt_rootfs_ext4(const char *root, char *out, size_t len, silo_error *err);

/* The layers of the overlay mount at root (an engine's rootfs: podman, containerd
 * and docker mount one), topmost first: its upperdir, then its lowerdirs, from
 * /proc/self/mountinfo. An overlay mount cannot be id-mapped; its layers can.
 * NOT_SUPPORTED when root is not the root of an overlay mount, or uses
 * metacopy, data-only layers or user xattrs. */
int rt_overlay_layers(const char *root, char ***layers, silo_error *err);

/* ---- settings: $SILO_OCI_CONFIG or /etc/silo/oci.toml ---- */
typedef struct rt_settings {
	char provider[16];              /* "" = automatic */
	char fallback[64];              /* order when automatic */
	bool tcg;                       /* qemu without hardware acceleration counts as available */
	uint32_t memory_mb, vcpus, disk_mb;
} rt_settings;
int rt_settings_load(rt_settings *s, silo_error *err);

/* ---- logging ---- */
void rt_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report err (stderr and --log) and return the exit status for it. */
int rt_fail(const silo_error *err);

/* ---- commands (commands.c) ---- */
int rt_cmd_create(int argc, char **argv);
int rt_cmd_start(int argc, char **argv);
int rt_cmd_run(int argc, char **argv);
int rt_cmd_state(int argc, char **argv);
int rt_cmd_kill(int argc, char **argv);
int rt_cmd_delete(int argc, char **argv);
int rt_cmd_exec(int argc, char **argv);
int rt_cmd_ps(int argc, char **argv);
int rt_cmd_pause(int argc, char **argv);
int rt_cmd_resume(int argc, char **argv);
int rt_cmd_features(int argc, char **argv);
int rt_cmd_list(int argc, char **argv);
int rt_cmd_spec(int argc, char **argv);

/* signal names and numbers ("KILL", "SIGKILL", "9") */
int rt_signal_parse(const char *s);

#endif
