/* SPDX-License-Identifier: Apache-2.0
 *
 * libsilo-client: a C client for silod's HTTP API (docs/openapi.yaml) over its
 * unix socket or TCP with a bearer token. Sandboxes made through it are
 * ordinary silod sandboxes: listed by `silo ps`, audited, counted against
 * quotas. (include/silo/silo.h is the other C API: libsilo runs sandboxes in
 * the calling process, without silod; docs/sdk.md says when to use which.)
 *
 * Rules:
 * - Every fallible function returns a negative value (or NULL) and fills the
 *   caller's silo_error (include/silo/error.h) with the stable code silod sent
 *   (docs/errors.md), its message, the sandbox id and errno. A failure on the
 *   way (no silod, a dropped connection) is REMOTE_UNREACHABLE; bytes from
 *   silod that do not parse are PROTOCOL. err may be NULL.
 * - No global state of the library's own (libcurl's one-time global init is
 *   done once, thread-safely). A silo_client may be used from many threads at
 *   once: each call takes an idle connection from the client's pool (under
 *   its mutex) or opens one. Callbacks run on the calling thread.
 * - Strings the library returns (JSON documents, file contents) are
 *   NUL-terminated and freed with silo_client_free_buf().
 * - Stream callbacks return 0 to go on, non-zero to stop: the connection is
 *   closed (for an exec or process output silod then kills the command) and
 *   the call returns 1, not an error (an exit status is not filled in).
 * - The ABI: opaque handles, option structs that start with their size
 *   (set .size = sizeof the struct), symbols versioned SILO_CLIENT_0.1.
 */
#ifndef SILO_CLIENT_H
#define SILO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <silo/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct silo_client silo_client;

typedef struct silo_client_opts {
	size_t size;            /* sizeof(silo_client_opts) */
	const char *host;       /* http(s)://HOST:PORT; NULL: $SILO_HOST */
	const char *token;      /* bearer token; NULL: $SILO_API_TOKEN */
	const char *socket;     /* unix socket; NULL: $SILO_SOCKET, else $SILO_RUNTIME_DIR/silod.sock */
	long timeout_ms;        /* per request (not streams); 0: none */
	/* TLS to an https:// host (docs/remote.md), PEM file paths; NULL: $SILO_CA,
	 * $SILO_CLIENT_CERT, $SILO_CLIENT_KEY; without a CA the system's store. */
	const char *ca;         /* CA that signed silod's certificate */
	const char *cert;       /* client certificate for mutual TLS (with key) */
	const char *key;
} silo_client_opts;

/* Connect (lazily: the first call opens a connection). opts NULL: the CLI's
 * rules for $SILO_HOST (with $SILO_API_TOKEN, $SILO_CA, $SILO_CLIENT_CERT,
 * $SILO_CLIENT_KEY), else the unix socket. CLI contexts (`silo context`) are
 * not read: pass their URL and files explicitly. opts->size from before the
 * TLS fields is accepted (they are then taken from the environment). */
SILO_PUBLIC int silo_client_new(const silo_client_opts *opts, silo_client **out, silo_error *err);
SILO_PUBLIC void silo_client_free(silo_client *c);
/* "unix:/run/silo/silod.sock" or "http://127.0.0.1:7700" */
SILO_PUBLIC const char *silo_client_target(const silo_client *c);
SILO_PUBLIC void silo_client_free_buf(void *p);
SILO_PUBLIC const char *silo_client_version(void);

/* Any request; the answer body in *resp (NUL-terminated; resp may be NULL).
 * path includes the query (values escaped with silo_client_escape). */
SILO_PUBLIC int silo_client_request(silo_client *c, const char *method, const char *path, const char *content_type,
				    const void *body, size_t body_len, char **resp, size_t *resp_len, silo_error *err);
SILO_PUBLIC char *silo_client_escape(const char *s);

/* ---- sandboxes (JSON answers as in docs/openapi.yaml) ---- */
/* Create from a JSON CreateRequest ({"provider": "namespace", ...}) or hac.toml
 * text (is_toml). The sandbox id goes to id (may be NULL), its JSON to *json
 * (may be NULL). */
SILO_PUBLIC int silo_client_create(silo_client *c, const char *body, int is_toml, char id[SILO_ID_MAX], char **json,
				   silo_error *err);
SILO_PUBLIC int silo_client_get(silo_client *c, const char *id, char **json, silo_error *err);
/* query: "state=all&provider=namespace" style (escaped), or NULL */
SILO_PUBLIC int silo_client_list(silo_client *c, const char *query, char **json, silo_error *err);
/* grace_ms < 0: silod's default */
SILO_PUBLIC int silo_client_delete(silo_client *c, const char *id, int grace_ms, char **json, silo_error *err);
SILO_PUBLIC int silo_client_pause(silo_client *c, const char *id, silo_error *err);
SILO_PUBLIC int silo_client_resume(silo_client *c, const char *id, silo_error *err);
/* body: JSON ({"tags": [...], "keep_paused", "ttl_s"}) or NULL; the snapshot's id to snap_id */
SILO_PUBLIC int silo_client_snapshot(silo_client *c, const char *id, const char *body, char snap_id[SILO_ID_MAX],
				     char **json, silo_error *err);
SILO_PUBLIC int silo_client_restore(silo_client *c, const char *snap, char id[SILO_ID_MAX], char **json,
				    silo_error *err);
/* n copies; *json = {"snapshot", "sandboxes": [...]} */
SILO_PUBLIC int silo_client_fork(silo_client *c, const char *id, unsigned n, char **json, silo_error *err);

/* ---- commands ---- */
enum { SILO_CLIENT_STDOUT = 1, SILO_CLIENT_STDERR = 2 };

typedef struct silo_client_exec_opts {
	size_t size;                     /* sizeof(silo_client_exec_opts) */
	const char *const *argv;         /* NULL-terminated, at least one */
	const char *const *env;          /* "KEY=VALUE", NULL-terminated, or NULL */
	const char *cwd;                 /* or NULL */
	const void *stdin_data;          /* fed, then stdin is closed */
	size_t stdin_len;
	uint32_t timeout_ms;             /* 0: none; then the process group is killed */
	/* background processes (silo_client_spawn) only: */
	const char *tag;                 /* or NULL */
	int pty;                         /* on a pseudo-terminal of rows x cols */
	uint16_t rows, cols;
	int stdin_open;                  /* keep stdin open for silo_client_proc_write */
} silo_client_exec_opts;

typedef struct silo_client_exit {
	int exit_code;                   /* 128+signal when killed */
	int signal;
	int timed_out;
	int64_t duration_ms;
} silo_client_exit;

/* stream: SILO_CLIENT_STDOUT or SILO_CLIENT_STDERR; return non-zero to stop */
typedef int (*silo_client_output_fn)(void *ud, int stream, const void *data, size_t len);

/* Run a command, streaming its output to cb (NULL: discard) as it comes. */
SILO_PUBLIC int silo_client_exec(silo_client *c, const char *id, const silo_client_exec_opts *o,
				 silo_client_output_fn cb, void *ud, silo_client_exit *res, silo_error *err);
/* Run a command and collect its output (NUL-terminated; out/errout may be NULL). */
SILO_PUBLIC int silo_client_exec_collect(silo_client *c, const char *id, const silo_client_exec_opts *o, char **out,
					 size_t *out_len, char **errout, size_t *err_len, silo_client_exit *res,
					 silo_error *err);
/* Start a background process; its handle ("p3") to proc, its JSON to *json. */
SILO_PUBLIC int silo_client_spawn(silo_client *c, const char *id, const silo_client_exec_opts *o, char proc[SILO_ID_MAX],
				  char **json, silo_error *err);
/* proc: a handle, pid or tag. sig: "TERM", "KILL", "9", ... */
SILO_PUBLIC int silo_client_proc_signal(silo_client *c, const char *id, const char *proc, const char *sig,
					silo_error *err);
SILO_PUBLIC int silo_client_proc_write(silo_client *c, const char *id, const char *proc, const void *data, size_t len,
				       int eof, silo_error *err);
SILO_PUBLIC int silo_client_proc_resize(silo_client *c, const char *id, const char *proc, uint16_t rows, uint16_t cols,
					silo_error *err);
/* timeout_ms 0: silod's default (30 s); still running then: SILO_ERR_TIMEOUT */
SILO_PUBLIC int silo_client_proc_wait(silo_client *c, const char *id, const char *proc, uint32_t timeout_ms,
				      silo_client_exit *res, silo_error *err);
/* Attach as a reader until it exits (its exit status to res). */
SILO_PUBLIC int silo_client_proc_output(silo_client *c, const char *id, const char *proc, silo_client_output_fn cb,
					void *ud, silo_client_exit *res, silo_error *err);
/* Kill it if it runs and forget it. */
SILO_PUBLIC int silo_client_proc_remove(silo_client *c, const char *id, const char *proc, silo_error *err);
SILO_PUBLIC int silo_client_procs(silo_client *c, const char *id, char **json, silo_error *err);

/* ---- files (paths inside the sandbox) ---- */
/* mode < 0: silod's default */
SILO_PUBLIC int silo_client_file_write(silo_client *c, const char *id, const char *path, const void *data, size_t len,
				       int mode, silo_error *err);
SILO_PUBLIC int silo_client_file_read(silo_client *c, const char *id, const char *path, char **data, size_t *len,
				      silo_error *err);
SILO_PUBLIC int silo_client_stat(silo_client *c, const char *id, const char *path, char **json, silo_error *err);
/* depth 0: 1 */
SILO_PUBLIC int silo_client_list_dir(silo_client *c, const char *id, const char *path, int depth, char **json,
				     silo_error *err);
SILO_PUBLIC int silo_client_mkdir(silo_client *c, const char *id, const char *path, int parents, silo_error *err);
SILO_PUBLIC int silo_client_remove(silo_client *c, const char *id, const char *path, int recursive, silo_error *err);
SILO_PUBLIC int silo_client_move(silo_client *c, const char *id, const char *from, const char *to, int overwrite,
				 silo_error *err);
/* A tar archive of path, streamed to cb (return non-zero to stop). */
typedef int (*silo_client_data_fn)(void *ud, const void *data, size_t len);
SILO_PUBLIC int silo_client_tar_out(silo_client *c, const char *id, const char *path, silo_client_data_fn cb, void *ud,
				    silo_error *err);
SILO_PUBLIC int silo_client_tar_in(silo_client *c, const char *id, const char *path, const void *tar, size_t len,
				   silo_error *err);

/* ---- deployments and events ---- */
/* body: a DeployRequest ({"name": ..., "spec": ...}) */
SILO_PUBLIC int silo_client_deploy(silo_client *c, const char *body, char **json, silo_error *err);
SILO_PUBLIC int silo_client_undeploy(silo_client *c, const char *name, silo_error *err);
/* Each event's JSON (Event in docs/openapi.yaml) to cb until it returns
 * non-zero or the stream ends (query: "sandbox=ID&types=ready,terminated&limit=N"). */
typedef int (*silo_client_event_fn)(void *ud, const char *json, size_t len);
SILO_PUBLIC int silo_client_events(silo_client *c, const char *query, silo_client_event_fn cb, void *ud,
				   silo_error *err);

#ifdef __cplusplus
}
#endif

#endif
