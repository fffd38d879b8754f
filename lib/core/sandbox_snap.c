/* SPDX-License-Identifier: Apache-2.0
 * Pause, resume and snapshot of one sandbox (provider-independent part; the
 * store is lib/snapshot, the manager side lib/core/mgr_snapshot.c).
 * docs/snapshots.md describes what each provider saves.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/sandbox.h"

int sandbox_pause(sandbox *sb, silo_error *err)
{
	if (!sb->ops->pause)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot pause",
				    sb->ops->name);
	sb_state st = sandbox_get_state(sb);
	if (st == SB_PAUSED)
		return 0;
	if (st != SB_RUNNING)
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, sb->id, "sandbox is %s, not running",
				    sb_state_name(st));
	chan_set_paused(sb->ch, true);
	if (sb->ops->pause(sb, err) < 0) {
		chan_set_paused(sb->ch, false);
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	sandbox_set_state(sb, SB_PAUSED, "paused");
	return 0;
}

int sandbox_resume(sandbox *sb, silo_error *err)
{
	if (!sb->ops->resume)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot resume",
				    sb->ops->name);
	sb_state st = sandbox_get_state(sb);
	if (st == SB_RUNNING)
		return 0;
	if (st != SB_PAUSED)
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, sb->id, "sandbox is %s, not paused",
				    sb_state_name(st));
	if (sb->ops->resume(sb, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	chan_set_paused(sb->ch, false);
	sandbox_set_state(sb, SB_RUNNING, "resumed");
	return 0;
}

int sandbox_snapshot(sandbox *sb, const char *payload_dir, bool keep_paused, silo_error *err)
{
	if (!sb->ops->snapshot)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot snapshot",
				    sb->ops->name);
	bool was_paused = sandbox_get_state(sb) == SB_PAUSED;
	if (!was_paused && sandbox_pause(sb, err) < 0) {
		silo_error_prefix(err, "snapshot");
		return -1;
	}
	int rc = sb->ops->snapshot(sb, payload_dir, err);
	if (rc < 0)
		silo_error_set_vm(err, sb->id);
	if (!keep_paused && !was_paused) {
		silo_error e2 = {0};
		if (sandbox_resume(sb, &e2) < 0) {
			if (rc == 0)
				*err = e2;
			log_error("%s: resume after snapshot: %s", sb->id, e2.message);
			return -1;
		}
	}
	return rc;
}
