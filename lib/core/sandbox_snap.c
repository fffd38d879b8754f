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
 * marked paused from before the guest stops until after it runs again. A
 * held sandbox (hold: paused in state only) resumes without the provider,
 * and its channel is never marked paused (its agent still answers pings). */
static int pause_or_resume(sandbox *sb, bool pause, bool hold, silo_error *err)
{
	int (*op)(sandbox *, silo_error *) = pause ? sb->ops->pause : sb->ops->resume;
	pthread_mutex_lock(&sb->lock);
	bool held = sb->held;
	pthread_mutex_unlock(&sb->lock);
	sb_state from = pause ? SB_RUNNING : SB_PAUSED, to = pause ? SB_PAUSED : SB_RUNNING;
	if (!op && !hold && !held)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot %s", sb->ops->name,
				    pause ? "pause" : "resume");
	sb_state st = sandbox_get_state(sb);
	if (st == to)
		return 0;
	if (st != from)
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, sb->id, "sandbox is %s, not %s", sb_state_name(st),
				    pause ? "running" : "paused");
	if (hold || held) {
		pthread_mutex_lock(&sb->lock);
		sb->held = hold;
		pthread_mutex_unlock(&sb->lock);
		sandbox_set_state(sb, to, pause ? "held" : "resumed");
		return 0;
	}
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
	return pause_or_resume(sb, true, false, err);
}

int sandbox_resume(sandbox *sb, silo_error *err)
{
	return pause_or_resume(sb, false, false, err);
}

int sandbox_hold(sandbox *sb, silo_error *err)
{
	return pause_or_resume(sb, true, true, err);
}

/* A held sandbox is stopped for real (a snapshot needs a still guest); it
 * stays paused, now frozen by the provider. */
static int freeze_held(sandbox *sb, silo_error *err)
{
	pthread_mutex_lock(&sb->lock);
	bool held = sb->held;
	pthread_mutex_unlock(&sb->lock);
	if (!held || !sb->ops->pause)
		return 0;
	chan_set_paused(sb->ch, true);
	if (sb->ops->pause(sb, err) < 0) {
		chan_set_paused(sb->ch, false);
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	pthread_mutex_lock(&sb->lock);
	sb->held = false;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}

int sandbox_snapshot(sandbox *sb, const char *payload_dir, bool keep_paused, silo_error *err)
{
	if (!sb->ops->snapshot)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id, "the %s provider cannot snapshot",
				    sb->ops->name);
	if (freeze_held(sb, err) < 0) {
		silo_error_prefix(err, "snapshot");
		return -1;
	}
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
