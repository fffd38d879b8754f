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

/* Pause (pause) or resume the guest through the provider. The channel is
 * marked paused from before the guest stops until after it runs again. */
static int pause_or_resume(sandbox *sb, bool pause, silo_error *err)
{
	int (*op)(sandbox *, silo_error *) = pause ? sb->ops->pause : sb->ops->resume;
	sb_state from = pause ? SB_RUNNING : SB_PAUSED, to = pause ? SB_PAUSED : SB_RUNNING;
	if (!op)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot %s", sb->ops->name,
				    pause ? "pause" : "resume");
	sb_state st = sandbox_get_state(sb);
	if (st == to)
		return 0;
	if (st != from)
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, sb->id, "sandbox is %s, not %s", sb_state_name(st),
				    pause ? "running" : "paused");
	if (pause)
		chan_set_paused(sb->ch, true);
	if (op(sb, err) < 0) {
		if (pause)
			chan_set_paused(sb->ch, false);
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	if (!pause)
		chan_set_paused(sb->ch, false);
	sandbox_set_state(sb, to, pause ? "paused" : "resumed");
	return 0;
}

int sandbox_pause(sandbox *sb, silo_error *err)
{
	return pause_or_resume(sb, true, err);
}

int sandbox_resume(sandbox *sb, silo_error *err)
{
	return pause_or_resume(sb, false, err);
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
