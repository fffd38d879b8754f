/* SPDX-License-Identifier: Apache-2.0
 * Host-side cleanup verification after a terminate (docs/security.md):
 * a provider-independent sweep for what a sandbox may leave on the host -
 * processes, mounts, cgroups, unix sockets, tap devices, temp files - and a
 * record of the result (CleanupVerification) kept in the state directory, so
 * the API can show it and the next silod start can retry what was left.
 *
 * Residue items are strings with a kind prefix (stable, shown in the API):
 *   "process PID (COMM): REASON"   a host process whose cwd/root is in the run dir,
 *                                  or whose command line carries "silo-<id>"
 *   "mount PATH"                   a mount point at or below the run dir
 *   "cgroup PATH"                  a cgroup directory named after the sandbox
 *   "socket PATH"                  a bound unix socket at or below the run dir
 *   "tap NAME"                     the sandbox's tap device (st<id suffix>)
 *   "loop DEV (FILE)"              a loop device whose backing file is below the run dir
 *   "PATH"                         a file or directory that could not be removed
 * Providers' own residue ("pid N ...", "cgroup P", "mount LINE", paths) uses
 * the same shapes.
 */
#ifndef SILO_CORE_CLEANUP_H
#define SILO_CORE_CLEANUP_H

#include <jansson.h>
#include <stdbool.h>

#include "core/sandbox.h"

/* Name of the tap device reserved for a sandbox: "st" + the id's last 12 chars. */
void cleanup_tap_name(const char *id, char out[16]);

/* Remove what is safe to remove now (temp files beside the run dir, the
 * sandbox's tap device), then append everything still present to *out. */
void cleanup_sweep(const char *id, const char *rundir, char ***out);
/* cleanup_sweep with a choice of what is looked at. Without
 * CLEANUP_SCAN_HOST the scan of every host process (cwd or root in the run
 * dir, "silo-<id>" in the command line) is skipped: only for a sandbox whose
 * processes all lived in a pid namespace whose init is known to be gone (the
 * kernel kills and reaps every task of a pid namespace before its init exits:
 * zap_pid_ns_processes) and whose host-side helpers are checked by pid and
 * start time (provider residue(), net_residue()); see provider_ops.pidns_contained.
 * Anything else left (already in *out or found here) brings the scan back:
 * a cgroup of the sandbox (its tasks cannot leave their cgroups, so an empty,
 * removed cgroup is a second proof), or a busy mount or run dir (the scan
 * names the host process that holds it).
 * Kernel threads are never looked at (no address space: nothing to hold). */
enum { CLEANUP_SCAN_HOST = 1u << 0 };
void cleanup_sweep_scoped(const char *id, const char *rundir, unsigned flags, char ***out);

/* Release what a sandbox may still hold, with no provider state (orphans,
 * retries): SIGKILL every process in its cgroups (thawed first) or carrying
 * its tag silo-<id>, until none is left or timeout_ms; remove its cgroups;
 * detach mounts (lazily, deepest first) and loop devices below rundir; remove
 * rundir. With left, then sweep and append what is still there. rundir may be
 * NULL (only what is named after the id is touched). */
void cleanup_release(const char *id, const char *rundir, int timeout_ms, char ***left);
/* The steps of cleanup_release: processes still alive at the end (0 = none),
 * 0 or -1 (a cgroup is still there), nothing. */
int cleanup_kill_sandbox(const char *id, int timeout_ms);
int cleanup_remove_cgroups(const char *id, int timeout_ms);
void cleanup_release_mounts(const char *rundir);

/* Append a copy of item to *v unless it is there already. */
void cleanup_add(char ***v, const char *item);

/* Persist rep as <state_dir>/cleanup/<id>.json. */
int cleanup_record(const char *state_dir, const char *id, const char *rundir, const cleanup_report *rep,
		   silo_error *err);
/* {"terminated","host_clean","residual_paths","checked","retried"?} or NULL when none recorded. */
json_t *cleanup_load_json(const char *state_dir, const char *id);

/* At start: for every record that is not host_clean, release the sandbox again
 * (cleanup_release; the run dir only where silod puts run dirs), re-check,
 * and rewrite the record. Clean records older than 30
 * days are deleted. Returns how many records
 * became clean; *still_dirty (may be NULL) gets how many did not. */
int cleanup_retry_pending(const char *state_dir, int *still_dirty);

#endif
