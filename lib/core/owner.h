/* SPDX-License-Identifier: Apache-2.0
 * Who owns a sandbox, and what happens to it when the owner is gone
 * (docs/architecture.md "Ownership, watchdog and the orphan sweep").
 *
 * Every sandbox created with an owner kind has an ownership record,
 * $SILO_RUNTIME_DIR/owners/<id>, published complete and locked (written into
 * an O_TMPFILE, then linked) BEFORE its run directory exists and removed only
 * AFTER the run directory is gone, so a run directory of ours always has a
 * record and a record is never seen half-written. Format (text, at most OWNER_REC_MAX bytes, one
 * "key value" per line, unknown keys refused):
 *   silo-owner 1
 *   kind run|silod
 *   owner PID START          the creating process (START: /proc/PID/stat field 22)
 *   watchdog PID START       kind run only
 *   sandbox PID START        the provider's supervising process, once spawned
 *   provider NAME            namespace, qemu, kvm
 *   state DIR                kind silod only: the owning silod's state dir
 *   client PID START         kind silod, optional: the API client the sandbox is
 *                            bound to (POST /v1/sandboxes?bind=client); silod
 *                            deletes it when that process is gone
 *
 * Ownership rules:
 *   kind run    (embedded `silo run`, the public C API) dies with its owner.
 *               The owner holds an exclusive flock on the record for the
 *               sandbox's whole life and shares it with its watchdog (a forked
 *               child in its own session). The watchdog waits on a pidfd of the
 *               owner and on a socket pair; when the owner dies without saying "done"
 *               (or the deadline the owner set passes), it tears the sandbox
 *               down completely and exits. A record is orphaned only when its
 *               lock is free AND neither the recorded owner nor the watchdog
 *               (pid + start time) is alive.
 *   kind silod  survives silod (restarts reattach it through the registry).
 *               Only a silod on the same state dir sweeps it (silod.lock makes
 *               that silod the only live one), and only if its registry did not
 *               reattach it. `silo run` never touches it.
 * A sweep claims a record by taking its lock, so two sweepers never tear down
 * the same sandbox; a record that is unlinked while waiting is skipped.
 */
#ifndef SILO_CORE_OWNER_H
#define SILO_CORE_OWNER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "core/sandbox.h"

#define OWNER_REC_MAX 4096
#define OWNER_TEARDOWN_MS 5000   /* bound on waiting for killed processes */

typedef struct owner_rec {
	sb_owner kind;                 /* SB_OWNER_PROCESS ("run") or SB_OWNER_DAEMON ("silod") */
	pid_t owner_pid;
	unsigned long long owner_start;
	pid_t wd_pid;
	unsigned long long wd_start;
	pid_t sb_pid;
	unsigned long long sb_start;
	pid_t client_pid;
	unsigned long long client_start;
	char provider[32];
	char state_dir[PATH_MAX];
} owner_rec;

/* Strict parser for a record's bytes; INVALID_CONFIG naming the line otherwise. */
int owner_parse(const char *txt, size_t len, owner_rec *out, silo_error *err);
/* The record's text (for tests and the writer). */
int owner_format(const owner_rec *r, char *buf, size_t len);

/* "/proc/PID/stat" start time; false when the process is gone or a zombie. */
bool owner_proc_start(pid_t pid, unsigned long long *start);
/* Is pid alive (not a zombie) with this start time (0 = any)? */
bool owner_proc_alive(pid_t pid, unsigned long long start);

/* ---- the owner's side (sandbox.c) ---- */

/* Write and lock the record for sb (kind, owner = this process, the client
 * it is bound to if any); for SB_OWNER_PROCESS also fork the watchdog. Call
 * before the run dir exists. */
int owner_begin(sandbox *sb, sb_owner kind, const char *state_dir, pid_t client, silo_error *err);
/* Record the supervising process once the provider started it. */
void owner_note_spawn(sandbox *sb);
/* SB_OWNER_PROCESS: the watchdog tears the sandbox down after ms even if the
 * owner still lives (a stopped or hung owner); 0 clears it. */
void owner_set_deadline(sandbox *sb, uint64_t ms);
/* The sandbox is gone: remove the record if the host is clean (kept
 * otherwise so a sweep retries), release the watchdog and wait for it. */
void owner_end(sandbox *sb, bool host_clean);
/* silod reattached sb after a restart: rewrite the record (owner = this
 * process, the client binding kept), creating it for sandboxes from before
 * records existed. */
void owner_adopt(sandbox *sb, const char *state_dir);
/* The client sb is bound to (0 if none). */
pid_t owner_client(const sandbox *sb, unsigned long long *start);

/* ---- the sweep ---- */

typedef struct owner_sweep_opts {
	/* NULL: `silo run` (kind run orphans only). Set: a silod on this state
	 * dir (also kind silod records of that state dir that is_live rejects). */
	const char *state_dir;
	bool (*is_live)(void *ud, const char *id);
	void *ud;
	/* called for each sandbox torn down, with what could not be removed */
	void (*on_reaped)(void *ud, const char *id, const owner_rec *r, const cleanup_report *rep);
} owner_sweep_opts;

typedef struct owner_sweep_stats {
	int seen, live, reaped, dirty;
} owner_sweep_stats;

/* Tear down every orphan the rules above allow this caller to (see header). */
void owner_sweep(const owner_sweep_opts *o, owner_sweep_stats *st);

/* Tear down sandbox id completely: the recorded supervisor (pid + start
 * time), every process in its cgroups or carrying its tag, the provider's
 * files and cgroups (terminate without state), host mounts and loop devices
 * below the run dir, the run dir; rep lists what is still there. */
void owner_reap(const char *id, const owner_rec *r, cleanup_report *rep);

/* owner_reap with the record of id when there is one (else only the provider
 * name, e.g. from the registry), removing the record once the host is clean. */
void owner_reap_id(const char *id, const char *provider, cleanup_report *rep);

#endif
