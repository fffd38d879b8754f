/* SPDX-License-Identifier: Apache-2.0
 * The manager: many sandboxes, tracked independently, on top of sandbox.c.
 * Adds provider discovery, unique ids, a limit on concurrent sandboxes
 * (MAX_VMS_EXCEEDED), host capacity checks (RESOURCE_EXCEEDED), the registry
 * (SQLite), the audit log, metrics, an event bus, a monitor thread (dead
 * processes, lost channels, lifetimes) and recovery after a restart.
 * Used by silod; every function is thread-safe.
 */
#ifndef SILO_CORE_MANAGER_H
#define SILO_CORE_MANAGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/channel.h"
#include "core/proc.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "metrics/metrics.h"
#include "spec/spec.h"

typedef struct manager manager;

typedef enum mgr_event_type {
	MGR_EV_READY = 0,
	MGR_EV_SPAWNED,
	MGR_EV_TERMINATED,
	MGR_EV_STATE_CHANGE,
	MGR_EV_HEALTH_WARNING,
	MGR_EV_SECURITY_VIOLATION,
	MGR_EV_ERROR,
	MGR_EV_DEPLOYMENT,             /* deploy.c: deployed, undeployed, restarted, ... */
	MGR_EV_BUDGET_WARNING,         /* deploy.c: a team spent 80% of its budget */
	MGR_EV_BUDGET_EXCEEDED,        /* deploy.c: a team spent its budget; its agents are stopped */
	MGR_EV_ISOLATION_FALLBACK,     /* no vm provider was available: the sandbox shares the host kernel */
	MGR_EV_EGRESS_DENIED,          /* a sandbox tried to reach what its egress allow-list refuses */
	MGR_EV_TARGET,                 /* daemon/targets.c: a remote target went offline or online, a queued op ran */
	MGR_EV__COUNT
} mgr_event_type;

typedef struct mgr_event {
	uint64_t seq;                  /* increasing per manager */
	mgr_event_type type;
	uint64_t ts_ms;                /* wall clock */
	char sandbox_id[SILO_ID_MAX];  /* "" for manager-wide events */
	char prev_state[16];           /* state-change only */
	char state[16];
	char code[32];                 /* error code name (error, security-violation) */
	char reason[512];
	char deployment[65];           /* deployment events: the agent name, else "" */
	char team[65];                 /* deployment and budget events: the team, else "" */
} mgr_event;

/* "ready", "spawned", "terminated", "state-change", "health-warning",
 * "security-violation", "error", "deployment", "budget-warning", "budget-exceeded",
 * "isolation-fallback". */
const char *mgr_event_name(mgr_event_type t);
json_t *mgr_event_json(const mgr_event *ev);

/* A JSON column of a registry row (text, NULL = none) for a view: a value of
 * type want (JSON_OBJECT, JSON_ARRAY), empty when missing or of another type. */
json_t *mgr_json_column(const char *text, json_type want);

/* Called synchronously from the thread that raised the event, with no manager
 * or sandbox lock held; must not block. */
typedef void (*mgr_event_cb)(void *ud, const mgr_event *ev);

typedef struct manager_config {
	const char *state_dir;         /* registry.db and audit.jsonl live here; NULL = silo_state_dir() */
	unsigned max_sandboxes;        /* 0 = 64 */
	int boot_timeout_ms;           /* 0 = spec, else provider default */
	int grace_ms;                  /* terminate grace period; 0 = 3000 */
	const char *fallback;          /* provider fallback order, NULL = default */
	bool min_isolation_vm;         /* a floor for every create: no sandbox shares the host kernel */
	unsigned error_threshold;      /* health-warning when more errors than this ... */
	unsigned error_window_ms;      /* ... happen within this window; 0 = 60000 */
	uint32_t capacity_vcpus;       /* 0 = read from the host */
	uint64_t capacity_memory_mb;   /* 0 = read from the host */
	double cpu_overcommit;         /* allocatable vCPUs = cores x this; 0 = env or 16 */
	double memory_overcommit;      /* allocatable MB = memory x this; 0 = env or 1.0; above 1.0
					* creates also need MemAvailable above the reserve */
	bool recover;                  /* reattach sandboxes recorded by a previous process */
	int monitor_interval_ms;       /* 0 = 500 */
} manager_config;

int manager_open(const manager_config *cfg, manager **out, silo_error *err);
/* Stop the monitor; with terminate_all, destroy every sandbox, else leave them
 * running for the next manager to recover (silod restart). */
void manager_close(manager *m, bool terminate_all);

int manager_subscribe(manager *m, mgr_event_cb cb, void *ud);  /* returns a subscription id */
void manager_unsubscribe(manager *m, int sub_id);

/* Providers as probed at open: JSON array of {name, version, accel, available, reason}. */
json_t *manager_providers_json(manager *m);

typedef struct mgr_create_opts {
	const char *actor;             /* for the audit log */
	const char *id;                /* NULL = generate a unique one */
	/* Restore from a verified snapshot instead of spawning (sandbox_opts). */
	const char *restore_dir, *restore_id, *restore_provider;
	bool no_pool;                  /* do not take a warm-pool sandbox (the pool itself) */
	bool cold;                     /* boot cold: no warm pool, no template (sandbox_opts.cold) */
	/* Optional quota, decided atomically with admission: admit() is called
	 * under the table lock with the number of live sandboxes whose spec
	 * metadata has owner_key = owner_value; a negative return refuses. */
	const char *owner_key, *owner_value;
	int (*admit)(void *ud, size_t owned, silo_error *err);
	void *admit_ud;
	/* Fork: the source sandbox's spec, whose in-memory secret values the copies get. */
	const vm_spec *secrets_from;
	/* Bind the sandbox to this client process (POST /v1/sandboxes?bind=client,
	 * `silo run` through silod): deleted by the monitor once the process is
	 * gone, also across silod restarts (lib/core/owner.h). 0 = not bound. */
	pid_t bind_client;
} mgr_create_opts;

/* Create and wait until ready. id_out gets the sandbox id (also on failure,
 * when one was assigned). The spec's secrets are read here (files, variables of
 * this process) and kept in memory only: every exec gets them in its environment,
 * nothing stored holds them (spec_format). An inline secret shown as "***" is an
 * error for a create, and is left unavailable for a restore (the snapshot never
 * held it) unless opts->secrets_from supplies it. Sandboxes with secrets are never
 * taken from a warm pool. */
int manager_create(manager *m, const vm_spec *spec, const mgr_create_opts *opts,
		   char id_out[SILO_ID_MAX], silo_error *err);
/* Terminate (grace then force), verify cleanup, record. VM_NOT_FOUND if not live. */
int manager_delete(manager *m, const char *id, const char *actor, int grace_ms, silo_error *err);

/* A copy of a live sandbox's spec (free with spec_free), its id and provider. */
int manager_sandbox_spec(manager *m, const char *id_or_name, char rid[SILO_ID_MAX], char provider[32],
			 vm_spec *spec, silo_error *err);

/* JSON views. id may also be a unique name of a live sandbox. */
int manager_get_json(manager *m, const char *id, json_t **out, silo_error *err);
typedef struct mgr_list_filter {
	const char *state;             /* NULL = live sandboxes only; "all" = every record */
	const char *provider;
	const char *name_prefix;
	const char *meta_key, *meta_value;
} mgr_list_filter;
int manager_list_json(manager *m, const mgr_list_filter *f, json_t **out, silo_error *err);
/* State history + log tails for `silo logs`. */
int manager_logs_json(manager *m, const char *id, size_t tail_bytes, json_t **out, silo_error *err);

/* ---- operations on a live sandbox ---- */

/* An operation slot on a live, running sandbox (delete waits until it ends,
 * and sets manager_op_cancelled first: a long stream checks it each slice):
 * the channel and the process table for the layers above (HTTP handlers,
 * lib/core/proc.h users). */
typedef struct mgr_op mgr_op;
int manager_op_begin(manager *m, const char *id, mgr_op **out, silo_error *err);
chan *manager_op_chan(mgr_op *op);
proc_table *manager_op_procs(mgr_op *op);
const char *manager_op_id(const mgr_op *op);   /* the resolved sandbox id */
bool manager_op_cancelled(mgr_op *op);
void manager_op_end(mgr_op *op);
/* Start a process in op's sandbox with the spec's env and secrets under the
 * request's own (proc_start); a background start is audited. */
int manager_proc_start(mgr_op *op, const exec_req *req, const proc_opts *o, const char *actor, proc **out,
		       silo_error *err);

/* A foreground exec: a session process (proc.h) with one reader, killed if
 * freed before it was waited for. Output is flow-controlled (channel.h): with
 * cb it is delivered on the thread in manager_exec_wait; with cb NULL take it
 * with manager_exec_read. Output nobody takes blocks the process, never fills
 * memory. */
typedef struct mgr_exec mgr_exec;
int manager_exec_start(manager *m, const char *id, const exec_req *req, chan_output_cb cb, void *ud,
		       const char *actor, mgr_exec **out, silo_error *err);
/* Wait for the exit (timeout_ms < 0 = forever), delivering output to cb. */
int manager_exec_wait(mgr_exec *x, int timeout_ms, exec_result *res, silo_error *err);
/* chan_exec_read: > 0 bytes of *stream, 0 = ended (then manager_exec_wait), -1 error (TIMEOUT: none yet). */
ssize_t manager_exec_read(mgr_exec *x, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err);
/* The process has exited (what remains is at most one window of queued output). */
bool manager_exec_ended(mgr_exec *x);
int manager_exec_signal(mgr_exec *x, int sig, silo_error *err);
/* Release the exec (drops its output and kills it first if it has not been waited for). */
void manager_exec_free(mgr_exec *x);
/* Port forwarding (docs/network.md): expose the sandbox's guest_port on the
 * host, on listen ("127.0.0.1:PORT", 0 = any) or a unix socket. Forwards end
 * with the sandbox (or manager_port_remove). */
#define MAX_PORT_FORWARDS 16
int manager_port_add(manager *m, const char *id, uint16_t guest_port, const char *listen, const char *unix_path,
		     const char *actor, json_t **out, silo_error *err);
int manager_port_list(manager *m, const char *id, json_t **out, silo_error *err);
int manager_port_remove(manager *m, const char *id, uint16_t guest_port, const char *actor, silo_error *err);
int manager_file_put(manager *m, const char *id, const char *path, int src_fd, uint32_t mode,
		     const char *actor, silo_error *err);
int manager_file_get(manager *m, const char *id, const char *path, int dst_fd, uint64_t max_bytes,
		     const char *actor, silo_error *err);

/* Run fn on a live, ready sandbox while holding an operation slot (delete
 * waits for it); allow_paused also admits a paused one. Used by
 * lib/core/mgr_snapshot.c (snapshot, fork, pause, resume). */
typedef int (*mgr_sandbox_fn)(sandbox *sb, void *ud, silo_error *err);
int manager_with_sandbox(manager *m, const char *id, bool allow_paused, mgr_sandbox_fn fn, void *ud,
			 silo_error *err);

/* ---- snapshots, fork, pause (mgr_snapshot.c, docs/snapshots.md) ---- */
typedef struct mgr_snap_opts {
	const char *actor;
	char *const *tags;             /* NULL-terminated, may be NULL */
	bool keep_paused;
	uint64_t ttl_ms;               /* 0 = no expiry */
} mgr_snap_opts;
/* Snapshot a live sandbox into the store; *out = the snapshot's JSON. */
int manager_snapshot(manager *m, const char *id, const mgr_snap_opts *o, json_t **out, silo_error *err);
/* Verify a snapshot (id or tag) and restore it into a new sandbox. */
int manager_restore(manager *m, const char *snap, const char *actor, char id_out[SILO_ID_MAX],
		    silo_error *err);
/* n copies of a live sandbox (snapshot of kind "fork", then n restores);
 * all or nothing. *out = {"snapshot": id, "sandboxes": [ids]}. */
int manager_fork(manager *m, const char *id, unsigned n, const char *actor, json_t **out, silo_error *err);
int manager_pause(manager *m, const char *id, const char *actor, silo_error *err);
int manager_resume(manager *m, const char *id, const char *actor, silo_error *err);

/* ---- warm pools (mgr_pool.c) ---- */
/* Keep k sandboxes ready and paused for source: a hac.toml path, or
 * "snapshot=ID_OR_TAG". Call before manager_pools_start. */
int manager_pool_add(manager *m, const char *source, unsigned k, silo_error *err);
/* Same, with normalize (may be NULL) applied to a spec template once, as the
 * API applies its creation policy to every create, so a create of the same
 * hac.toml matches the template (silod passes api_normalize_spec). */
typedef int (*mgr_spec_fn)(void *ud, vm_spec *spec, silo_error *err);
int manager_pool_add_normalized(manager *m, const char *source, unsigned k, mgr_spec_fn normalize, void *ud,
				silo_error *err);
int manager_pools_start(manager *m, silo_error *err);
/* Stop refilling and delete the ready sandboxes (manager_close calls it). */
void manager_pools_stop(manager *m);
/* [{template, name, k, ready, ready_ids, taken, filled, failures[, snapshot, last_error]}] */
json_t *manager_pools_json(manager *m);

/* Record an error raised outside the manager (API layer: bad requests, policy
 * denials): counts it and may raise a health-warning. */
void manager_note_error(manager *m, const silo_error *err);
/* Prometheus text; caller frees. */
char *manager_metrics_text(manager *m);
metrics *manager_metrics(manager *m);
/* Summary for /v1/health. */
json_t *manager_health_json(manager *m);
/* Resolve a live sandbox's id (id or unique name) into out; VM_NOT_FOUND otherwise. */
/* The lifetime of a live sandbox (spec timeout_s, counted from its creation)
 * becomes "seconds_from_now from now" (E2B's setTimeout and connect): the
 * monitor ends it then. Kept in memory: a restarted silod applies the spec's
 * own. *end_ms (may be NULL) = the new end, wall clock. */
int manager_set_lifetime(manager *m, const char *id, uint32_t seconds_from_now, uint64_t *end_ms, silo_error *err);
/* Its creation time and lifetime end (0: unlimited), wall clock ms. */
int manager_lifetime(manager *m, const char *id, uint64_t *created_ms, uint64_t *end_ms, silo_error *err);
int manager_resolve(manager *m, const char *id_or_name, char out[SILO_ID_MAX], silo_error *err);
/* Publish an event raised outside the manager (deploy.c) on the event bus.
 * deployment and team may be NULL. */
void manager_emit(manager *m, mgr_event_type type, const char *sandbox_id, const char *deployment,
		  const char *team, const char *state, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));
/* Audit a record from the API layer. */
void manager_audit(manager *m, const char *actor, const char *sandbox_id, const char *event,
		   uint64_t duration_ms, json_t *details);

/* Per-request timing (silod's Server-Timing reply header, asked for with
 * X-Silo-Timing: docs/openapi.yaml): marks kept by the calling thread only, so
 * a request handled on one thread sees its own steps. mgr_timing_start begins
 * at since_ns (monotonic), or with 0 turns timing off (what a request that did
 * not ask sets, so nothing is left from an earlier one); each mark records the time since the previous
 * one under a static name (no-op unless started; at most MGR_TIMING_MAX,
 * later marks fold into the last); mgr_timing_format writes
 * "name;dur=MS, ..., total;dur=MS" and stops. */
#define MGR_TIMING_MAX 16
void mgr_timing_start(uint64_t since_ns);
void mgr_timing_mark(const char *name);
void mgr_timing_format(char *buf, size_t n);

#endif
