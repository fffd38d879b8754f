/* SPDX-License-Identifier: Apache-2.0
 * Manager side of snapshots (manager.h, docs/snapshots.md): snapshot a live
 * sandbox into the store, restore one into a new sandbox (through
 * manager_create, so admission, registry, events and audit are the same as
 * for a create), fork N copies, pause and resume. Each operation holds an
 * operation slot on the source sandbox (delete waits), and a restore holds
 * the snapshot (snap_hold) until the new sandbox records it in its run
 * directory, so neither delete nor gc can pull it away in between.
 * A fork is admitted as a whole before its snapshot (mgr_admit_copies: the
 * create rules for all N copies), and its copies' "restored" audit records are
 * appended as one batch once the copies are made (audit_append_batch); their
 * state rows are group-committed with every other transition (manager.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/manager.h"
#include "core/mgr_internal.h"
#include "snapshot/snapshot.h"

typedef struct snap_job {
	const char *kind;
	const mgr_snap_opts *o;
	snap_info info;
	bool done;
	char *hold;                   /* commit with a hold (fork), or NULL */
	size_t hold_len;
} snap_job;

static int do_snapshot(sandbox *sb, void *ud, silo_error *err)
{
	snap_job *j = ud;
	snap_writer *w = NULL;
	if (snap_begin(j->kind, &w, err) < 0)
		return -1;
	if (sandbox_snapshot(sb, snap_writer_payload(w), j->o->keep_paused, err) < 0) {
		snap_abort(w);
		return -1;
	}
	snap_meta meta = {
		.provider = sb->ops->name,
		.source = sb->id,
		.spec = &sb->spec,
		.tags = j->o->tags,
		.ttl_ms = j->o->ttl_ms,
		.hold_out = j->hold,
		.hold_len = j->hold_len,
	};
	if (snap_commit(w, &meta, &j->info, err) < 0)
		return -1;
	j->done = true;
	return 0;
}

static int snapshot_kind(manager *m, const char *id, const mgr_snap_opts *o, const char *kind, snap_info *out,
			 char *hold, size_t hold_len, silo_error *err)
{
	static const mgr_snap_opts none = {0};
	if (!o)
		o = &none;
	uint64_t t0 = now_mono_ns();
	snap_job j = {.kind = kind, .o = o, .hold = hold, .hold_len = hold_len};
	int rc = manager_with_sandbox(m, id, true, do_snapshot, &j, err);
	uint64_t us = (now_mono_ns() - t0) / 1000;
	json_t *d = rc == 0 ? json_pack("{s:s,s:s,s:I,s:I,s:b}", "snapshot", j.info.id, "kind", kind, "bytes",
					(json_int_t)j.info.bytes, "duration_us", (json_int_t)us, "keep_paused",
					o->keep_paused)
			    : json_pack("{s:s,s:s}", "kind", kind, "error", err->message);
	char rid[SILO_ID_MAX];
	manager_audit(m, o->actor, manager_resolve(m, id, rid, NULL) == 0 ? rid : id, "snapshot", us / 1000, d);
	json_decref(d);
	if (rc < 0) {
		if (hold && hold[0])
			snap_release(hold);
		return -1;
	}
	*out = j.info;
	return 0;
}

int manager_snapshot(manager *m, const char *id, const mgr_snap_opts *o, json_t **out, silo_error *err)
{
	snap_info info;
	uint64_t t0 = now_mono_ns();
	if (snapshot_kind(m, id, o, "snapshot", &info, NULL, 0, err) < 0)
		return -1;
	*out = snap_info_json(&info);
	json_object_set_new(*out, "duration_us", json_integer((json_int_t)((now_mono_ns() - t0) / 1000)));
	snap_info_free(&info);
	return 0;
}

/* One copy's "restored" record, kept for the fork's batch. */
typedef struct copy_rec {
	json_t *details;
	uint64_t ms;
	char id[SILO_ID_MAX];         /* the copy's id, "" if it got none */
} copy_rec;

/* Restore an opened (verified, held) snapshot. secrets_from: the live source of a
 * fork, whose secret values the copy gets (a snapshot never stores them). The
 * "restored" audit record is appended here, or, with rec, left in *rec for the
 * caller's batch (a fork appends its copies' records as one). */
static int restore_one(manager *m, const snap_info *s, const vm_spec *secrets_from, const char *actor,
		       char id_out[SILO_ID_MAX], copy_rec *rec, silo_error *err)
{
	uint64_t t0 = now_mono_ns();
	mgr_create_opts co = {
		.actor = actor,
		.restore_dir = s->payload,
		.restore_id = s->id,
		.restore_provider = s->provider,
		.secrets_from = secrets_from,
	};
	int rc = manager_create(m, &s->spec, &co, id_out, err);
	uint64_t us = (now_mono_ns() - t0) / 1000;
	json_t *d = rc == 0 ? json_pack("{s:s,s:I}", "snapshot", s->id, "duration_us", (json_int_t)us)
			    : json_pack("{s:s,s:s}", "snapshot", s->id, "error", err->message);
	if (rec) {
		*rec = (copy_rec){.details = d, .ms = us / 1000};
		snprintf(rec->id, sizeof rec->id, "%s", id_out);
		return rc;
	}
	manager_audit(m, actor, id_out[0] ? id_out : NULL, "restored", us / 1000, d);
	json_decref(d);
	return rc;
}

int manager_restore(manager *m, const char *snap, const char *actor, char id_out[SILO_ID_MAX], silo_error *err)
{
	id_out[0] = '\0';
	char sid[SILO_ID_MAX];
	if (snap_resolve(snap, sid, err) < 0)
		return -1;
	if (mgr_pool_take(m, NULL, sid, actor, id_out) == 0)
		return 0;   /* restored ahead of time by a warm pool */
	return mgr_restore_nopool(m, sid, actor, id_out, err);
}

int mgr_restore_nopool(manager *m, const char *snap, const char *actor, char id_out[SILO_ID_MAX],
		       silo_error *err)
{
	id_out[0] = '\0';
	snap_info s;
	if (snap_open(snap, true, &s, err) < 0)
		return -1;
	char hold[PATH_MAX + 128];
	if (snap_hold(s.id, hold, sizeof hold, err) < 0) {
		snap_info_free(&s);
		return -1;
	}
	int rc = restore_one(m, &s, NULL, actor, id_out, NULL, err);
	snap_release(hold);
	snap_info_free(&s);
	return rc;
}

typedef struct fork_job {
	manager *m;
	const snap_info *s;
	const vm_spec *src;           /* the source's spec, with its secrets' values */
	const char *actor;
	unsigned n, next;
	char (*ids)[SILO_ID_MAX];
	copy_rec *recs;               /* per copy, appended as one audit batch */
	pthread_mutex_t lock;
	bool failed;
	silo_error err;
} fork_job;

static void *fork_worker(void *arg)
{
	fork_job *j = arg;
	for (;;) {
		pthread_mutex_lock(&j->lock);
		unsigned i = j->failed ? j->n : j->next++;
		pthread_mutex_unlock(&j->lock);
		if (i >= j->n)
			return NULL;
		silo_error e = {0};
		char nid[SILO_ID_MAX] = "";
		if (restore_one(j->m, j->s, j->src, j->actor, nid, &j->recs[i], &e) < 0) {
			pthread_mutex_lock(&j->lock);
			if (!j->failed) {
				j->failed = true;
				j->err = e;
				silo_error_prefix(&j->err, "fork %u of %u", i + 1, j->n);
			}
			pthread_mutex_unlock(&j->lock);
			return NULL;
		}
		snprintf(j->ids[i], SILO_ID_MAX, "%s", nid);
	}
}

int manager_fork(manager *m, const char *id, unsigned n, const char *actor, json_t **out, silo_error *err)
{
	*out = NULL;
	if (n < 1 || n > 256)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, id, "n: %u is out of range (1-256)", n);
	uint64_t t0 = now_mono_ns();
	/* fork snapshots of forks that are all gone, and expired snapshots, are
	 * collected here (and by `silo snapshot gc`) */
	silo_error ge;
	if (snap_gc(UINT64_MAX, NULL, &ge) < 0)
		log_warn("snapshot gc: %s", ge.message);
	mgr_snap_opts so = {.actor = actor};
	snap_info s;
	char hold[PATH_MAX + 128] = "";
	vm_spec src = {0};
	char src_id[SILO_ID_MAX], src_prov[32];
	if (manager_sandbox_spec(m, id, src_id, src_prov, &src, err) < 0)
		return -1;
	/* the copies are sandboxes like any other (docs/hac-toml.md "Capacity"):
	 * refused before the snapshot if they would not all be admitted */
	if (mgr_admit_copies(m, &src, n, err) < 0) {
		silo_error_set_vm(err, src_id);
		spec_free(&src);
		return -1;
	}
	/* held from the commit on: a concurrent gc cannot collect it before the
	 * copies reference it */
	if (snapshot_kind(m, id, &so, "fork", &s, hold, sizeof hold, err) < 0) {
		spec_free(&src);
		return -1;
	}
	uint64_t t_snap = now_mono_ns();
	/* verified once for all copies (it was written a moment ago by us; the
	 * check still catches a store that does not keep what it was given) */
	if (snap_verify(&s, err) < 0) {
		snap_release(hold);
		snap_delete(s.id, true, NULL);
		snap_info_free(&s);
		spec_free(&src);
		return -1;
	}
	/* restores run in parallel (each is mostly kernel work: namespaces,
	 * mounts, a QEMU start), at most 2 per CPU */
	fork_job fj = {.m = m, .s = &s, .src = &src, .actor = actor, .n = n, .ids = xcalloc(n, sizeof(char[SILO_ID_MAX])),
		       .recs = xcalloc(n, sizeof(copy_rec))};
	pthread_mutex_init(&fj.lock, NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN), par = 2 * ncpu;
	const char *pe = getenv("SILO_FORK_PARALLEL");   /* restores at a time (docs/snapshots.md) */
	if (pe && atol(pe) > 0)
		par = atol(pe);
	unsigned workers = (unsigned)MIN((long)n, MAX(1L, par));
	pthread_t th[16];
	workers = MIN(workers, (unsigned)ARRAY_SIZE(th));
	unsigned started = 0;
	for (unsigned i = 1; i < workers; i++)
		if (pthread_create(&th[started], NULL, fork_worker, &fj) == 0)
			started++;
	fork_worker(&fj);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&fj.lock);
	/* the copies' "restored" records: one batch, in copy order */
	audit_record *ar = xcalloc(n, sizeof *ar);
	size_t nar = 0;
	for (unsigned i = 0; i < n; i++)
		if (fj.recs[i].details)
			ar[nar++] = (audit_record){actor, fj.recs[i].id[0] ? fj.recs[i].id : NULL, "restored",
						   fj.recs[i].ms, fj.recs[i].details};
	mgr_audit_batch(m, ar, nar);
	for (size_t i = 0; i < nar; i++)
		json_decref(ar[i].details);
	free(ar);
	free(fj.recs);
	int rc = fj.failed ? -1 : 0;
	if (rc < 0)
		*err = fj.err;
	json_t *ids = json_array();
	for (unsigned i = 0; i < n; i++)
		if (fj.ids[i][0])
			json_array_append_new(ids, json_string(fj.ids[i]));
	free(fj.ids);
	snap_release(hold);
	spec_free(&src);
	if (rc < 0) {
		/* all or nothing */
		size_t i;
		json_t *v;
		json_array_foreach(ids, i, v)
		{
			silo_error e2;
			if (manager_delete(m, json_string_value(v), actor, 0, &e2) < 0)
				log_error("fork rollback: %s", e2.message);
		}
		json_decref(ids);
		snap_delete(s.id, true, NULL);
		snap_info_free(&s);
		return -1;
	}
	uint64_t t1 = now_mono_ns();
	*out = json_pack("{s:s,s:o,s:I,s:I}", "snapshot", s.id, "sandboxes", ids, "snapshot_us",
			 (json_int_t)((t_snap - t0) / 1000), "fork_us", (json_int_t)((t1 - t_snap) / 1000));
	snap_info_free(&s);
	return 0;
}

static int do_pause(sandbox *sb, void *ud, silo_error *err)
{
	return *(bool *)ud ? sandbox_pause(sb, err) : sandbox_resume(sb, err);
}

static int pause_resume(manager *m, const char *id, const char *actor, bool pause, silo_error *err)
{
	uint64_t t0 = now_mono_ns();
	int rc = manager_with_sandbox(m, id, true, do_pause, &pause, err);
	json_t *d = json_pack("{s:b}", "ok", rc == 0);
	char rid[SILO_ID_MAX];
	manager_audit(m, actor, manager_resolve(m, id, rid, NULL) == 0 ? rid : id, pause ? "paused" : "resumed",
		      (now_mono_ns() - t0) / 1000000, d);
	json_decref(d);
	return rc;
}

int manager_pause(manager *m, const char *id, const char *actor, silo_error *err)
{
	return pause_resume(m, id, actor, true, err);
}

int manager_resume(manager *m, const char *id, const char *actor, silo_error *err)
{
	return pause_resume(m, id, actor, false, err);
}
