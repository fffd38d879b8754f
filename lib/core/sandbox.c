/* SPDX-License-Identifier: Apache-2.0
 * Provider-independent sandbox lifecycle: state machine, create (spawn +
 * wait for the agent handshake, BOOT_TIMEOUT with provider diagnostics),
 * destroy (grace then force, cleanup verification), reattach.
 * docs/architecture.md has the state diagram.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/cleanup.h"
#include "core/defaults.h"
#include "core/owner.h"
#include "core/proc.h"
#include "core/sandbox.h"
#include "net/net.h"
#include "snapshot/snapshot.h"

#define DEFAULT_BOOT_TIMEOUT_NS_MS 10000   /* namespace: a process start */
#define DEFAULT_BOOT_TIMEOUT_VM_MS 120000  /* qemu TCG boots take seconds to a minute */
#define CONNECT_RETRY_MS 10

static const char *const state_names[SB__STATE_COUNT] = {
	[SB_PROVISIONING] = "provisioning", [SB_RUNNING] = "running",   [SB_PAUSED] = "paused",
	[SB_STOPPING] = "stopping",         [SB_TERMINATED] = "terminated", [SB_ERROR] = "error",
};

/* transitions[from] is a bit set of legal targets. */
#define B(s) (1u << (s))
static const unsigned transitions[SB__STATE_COUNT] = {
	[SB_PROVISIONING] = B(SB_RUNNING) | B(SB_ERROR) | B(SB_STOPPING),
	[SB_RUNNING] = B(SB_PAUSED) | B(SB_STOPPING) | B(SB_ERROR),
	[SB_PAUSED] = B(SB_RUNNING) | B(SB_STOPPING) | B(SB_ERROR),
	[SB_STOPPING] = B(SB_TERMINATED) | B(SB_ERROR),
	[SB_TERMINATED] = 0,
	[SB_ERROR] = B(SB_STOPPING) | B(SB_TERMINATED),
};
#undef B

const char *sb_state_name(sb_state s)
{
	if ((unsigned)s >= SB__STATE_COUNT)
		return "unknown";
	return state_names[s];
}

int sb_state_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < SB__STATE_COUNT; i++)
		if (!strcmp(state_names[i], name))
			return i;
	return -1;
}

bool sb_state_transition_ok(sb_state from, sb_state to)
{
	if ((unsigned)from >= SB__STATE_COUNT || (unsigned)to >= SB__STATE_COUNT)
		return false;
	return (transitions[from] >> to) & 1u;
}

void sandbox_set_state(sandbox *sb, sb_state s, const char *reason)
{
	pthread_mutex_lock(&sb->lock);
	sb_state old = sb->state;
	if (old == s || !sb_state_transition_ok(old, s)) {
		if (old != s)
			log_debug("%s: ignoring illegal transition %s -> %s", sb->id, sb_state_name(old),
				  sb_state_name(s));
		pthread_mutex_unlock(&sb->lock);
		return;
	}
	sb->state = s;
	snprintf(sb->state_reason, sizeof sb->state_reason, "%s", reason ? reason : "");
	sb_state_cb cb = sb->on_state;
	void *ud = sb->on_state_ud;
	/* The callback runs under the lock so transitions are reported in order;
	 * it must not call back into sandbox_set_state. */
	if (cb)
		cb(ud, sb, old, s, reason ? reason : "");
	pthread_mutex_unlock(&sb->lock);
}

sb_state sandbox_get_state(sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
	sb_state s = sb->state;
	pthread_mutex_unlock(&sb->lock);
	return s;
}

void cleanup_report_free(cleanup_report *r)
{
	if (!r)
		return;
	strv_free(r->residual_paths);
	r->residual_paths = NULL;
}

/* ---- spec copy ---- */


/* ---- helpers ---- */

static void strv_append(char ***v, char *s)
{
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = s;
	(*v)[n + 1] = NULL;
}

static sandbox *sb_alloc(const char *id, const vm_spec *spec, const provider_ops *ops)
{
	sandbox *sb = xcalloc(1, sizeof *sb);
	if (id && *id)
		snprintf(sb->id, sizeof sb->id, "%s", id);
	else
		random_id("sb-", sb->id, sizeof sb->id);
	spec_copy(&sb->spec, spec);
	sb->ops = ops;
	sb->exec_uid = sb->exec_gid = -1;
	pthread_mutex_init(&sb->lock, NULL);
	sb->state = SB_PROVISIONING;
	sb->net_fd = -1;
	sb->created_ms = now_realtime_ms();
	snprintf(sb->rundir, sizeof sb->rundir, "%s/sandboxes/%s", silo_runtime_dir(), sb->id);
	return sb;
}

void sandbox_close_channel(sandbox *sb, bool kill_background)
{
	proc_table_free(sb->procs, kill_background);
	sb->procs = NULL;
	if (sb->ch)
		chan_close(sb->ch);
	sb->ch = NULL;
}

static void sb_free(sandbox *sb)
{
	if (!sb)
		return;
	/* the owner lets go without terminating (silod exits): silo-net runs on */
	net_close(sb->net);
	sb->net = NULL;
	if (sb->net_fd >= 0)
		close(sb->net_fd);
	owner_end(sb, false);   /* normally ended already; a kept record is swept later */
	sandbox_close_channel(sb, true);
	spec_free(&sb->spec);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

static bool id_is_safe(const char *id)
{
	if (!id || !*id || strlen(id) >= SILO_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			return false;
	return true;
}

static void on_chan_violation(void *ud, const char *what)
{
	sandbox *sb = ud;
	log_warn("%s: agent protocol violation: %s", sb->id, what);
	char reason[256];
	snprintf(reason, sizeof reason, "SECURITY_VIOLATION: agent protocol violation: %s", what);
	sandbox_set_state(sb, SB_ERROR, reason);
}

static void on_chan_disconnect(void *ud)
{
	sandbox *sb = ud;
	/* Only an unexpected loss matters; during stopping it is the normal end. */
	log_debug("%s: agent channel disconnected", sb->id);
}

/* Connect and handshake until deadline_ns. 0 ok; -1 with err. */
/* resync: reconnecting to an agent that served an earlier host (chan_opts.resync). */
static int wait_ready(sandbox *sb, uint64_t deadline_ns, int heartbeat_ms, bool resync, silo_error *err)
{
	silo_error last = {0};
	bool have_last = false;
	for (;;) {
		uint64_t now = now_mono_ns();
		if (now >= deadline_ns)
			break;
		if (sb->ops->alive && !sb->ops->alive(sb)) {
			char diag[2048] = "";
			if (sb->ops->diagnostics)
				sb->ops->diagnostics(sb, diag, sizeof diag);
			return silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, 0, sb->id,
					    "%s: the sandbox process exited before the agent answered%s%s",
					    sb->ops->name, diag[0] ? ": " : "", diag);
		}
		int remaining = (int)((deadline_ns - now) / 1000000);
		if (remaining <= 0)
			remaining = 1;
		silo_error e = {0};
		int fd = sb->ops->connect(sb, remaining, &e);
		if (fd >= 0) {
			chan_opts co = {
				.vm_id = sb->id,
				.handshake_timeout_ms = remaining,
				.heartbeat_ms = heartbeat_ms,
				.resync = resync,
				.on_violation = on_chan_violation,
				.on_disconnect = on_chan_disconnect,
				.on_dns = sandbox_net_on_dns,
				.ud = sb,
			};
			sb->ch = chan_open(fd, &co, &sb->agent, &e);
			if (sb->ch) {
				sb->procs = proc_table_new(sb->ch, sb->id);
				return 0;
			}
			if (e.code == SILO_ERR_PROTOCOL || e.code == SILO_ERR_SECURITY_VIOLATION) {
				*err = e;   /* a hostile or broken agent: no point in retrying */
				silo_error_set_vm(err, sb->id);
				return -1;
			}
		}
		last = e;
		have_last = true;
		struct timespec ts = {0, CONNECT_RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	char diag[2048] = "";
	if (sb->ops->diagnostics)
		sb->ops->diagnostics(sb, diag, sizeof diag);
	return silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, ETIMEDOUT, sb->id,
			    "%s: the agent did not answer the handshake in time%s%.300s%s%s%.1500s",
			    sb->ops->name, have_last && last.message[0] ? " (last: " : "",
			    have_last ? last.message : "", have_last && last.message[0] ? ")" : "",
			    diag[0] ? "; diagnostics: " : "", diag);
}

/* ---- create / destroy ---- */

static int default_boot_timeout(const provider_ops *ops)
{
	return !strcmp(ops->name, "namespace") ? DEFAULT_BOOT_TIMEOUT_NS_MS : DEFAULT_BOOT_TIMEOUT_VM_MS;
}

static const char *need_vm_by(const vm_spec *spec, const sandbox_opts *opts)
{
	return spec_requires_vm(spec) ? "vm.isolation = \"vm\", from the spec or --isolation vm" : opts->require_vm;
}

/* One start: a restore (opts->restore_dir), or a boot with the provider chosen
 * (chosen, or provider_choose when NULL). */
static int create_one(const vm_spec *spec, const sandbox_opts *opts, const provider_choice *chosen, sandbox **out,
		      silo_error *err)
{
	*out = NULL;
	if (opts->id && !id_is_safe(opts->id))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "id: \"%s\" must be 1-63 of [A-Za-z0-9_-]",
				 opts->id);
	const char *need_vm = need_vm_by(spec, opts);
	provider_choice pc = {0};
	if (chosen && !opts->restore_dir) {
		pc = *chosen;
	} else if (opts->restore_dir) {
		pc.ops = provider_find(opts->restore_provider);
		if (!pc.ops)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "restore: unknown provider \"%s\"",
					 opts->restore_provider ? opts->restore_provider : "");
		if (!pc.ops->restore)
			return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "restore: the %s provider cannot restore snapshots",
					 pc.ops->name);
		if (need_vm && !pc.ops->vm)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0,
					 "isolation \"vm\" is required (%s) and the snapshot was taken by the %s provider, "
					 "which shares the host kernel",
					 need_vm, pc.ops->name);
	} else if (provider_choose(spec->provider, opts->fallback, need_vm, &pc, err) < 0) {
		return -1;
	}
	const provider_ops *ops = pc.ops;
	uint64_t t0 = now_mono_ns();
	sandbox *sb = sb_alloc(opts->id, spec, ops);
	sb->fell_back = pc.fell_back;
	if (pc.fell_back)
		snprintf(sb->fallback_why, sizeof sb->fallback_why, "%s", pc.why);
	sb->on_state = opts->on_state;
	sb->on_state_ud = opts->on_state_ud;
	sb->on_net = opts->on_net;
	sb->on_net_ud = opts->on_net_ud;
	if (path_exists(sb->rundir)) {
		silo_fail_vm(err, SILO_ERR_CONFLICT, EEXIST, sb->id, "run directory %s already exists",
			     sb->rundir);
		sb_free(sb);
		return -1;
	}
	/* an imported image's Env, WorkingDir and User where the spec is silent */
	if (image_defaults_apply(&sb->spec, err) < 0) {
		silo_error_set_vm(err, sb->id);
		sb_free(sb);
		return -1;
	}
	/* the ownership record exists before the run dir (owner.h) */
	if (owner_begin(sb, opts->owner, opts->owner_state_dir, opts->owner_client, err) < 0) {
		sb_free(sb);
		return -1;
	}
	if (mkdir_p(sb->rundir, 0700) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "mkdir %s", sb->rundir);
		owner_end(sb, !path_exists(sb->rundir));
		sb_free(sb);
		return -1;
	}
	int src = sandbox_net_prepare(sb, err);
	if (src == 0 && opts->restore_dir) {
		src = snap_mark_use(sb->rundir, opts->restore_id ? opts->restore_id : "", err);
		if (src == 0)
			src = ops->restore(sb, &sb->spec, opts->restore_dir, err);
	} else if (src == 0) {
		src = ops->spawn(sb, &sb->spec, err);
	}
	if (src == 0 && sandbox_net_spawned(sb, err) < 0) {
		silo_error e2 = {0};
		ops->terminate(sb, 0, &e2);
		src = -1;
	}
	if (src < 0) {
		sandbox_net_stop(sb);
		silo_error_set_vm(err, sb->id);
		char reason[300];
		snprintf(reason, sizeof reason, "%s: %s", silo_code_name(err->code), err->message);
		sandbox_set_state(sb, SB_ERROR, reason);
		rm_rf(sb->rundir);
		owner_end(sb, !path_exists(sb->rundir));
		sb_free(sb);
		return -1;
	}
	owner_note_spawn(sb);
	sb->spawn_ns = now_mono_ns() - t0;
	int timeout_ms = opts->boot_timeout_ms > 0        ? opts->boot_timeout_ms
			 : spec->boot_timeout_ms > 0       ? (int)spec->boot_timeout_ms
							   : default_boot_timeout(ops);
	int hb = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : 1000;
	/* a restored agent served the host that took the snapshot: its port may
	 * hold the tail of that session, or drop a hello sent before the guest
	 * sees the new connection (resync: skip stale bytes, say hello again) */
	if (wait_ready(sb, t0 + (uint64_t)timeout_ms * 1000000ull, hb, opts->restore_dir != NULL, err) < 0 ||
	    sandbox_net_ready(sb, err) < 0 ||
	    sandbox_exec_defaults(sb, err) < 0) {
		sandbox_net_stop(sb);
		char reason[300];
		snprintf(reason, sizeof reason, "%s: %.200s", silo_code_name(err->code), err->message);
		sandbox_close_channel(sb, true);
		silo_error e2 = {0};
		if (ops->terminate(sb, 0, &e2) < 0)
			log_error("%s: cleanup after failed boot: %s", sb->id, e2.message);
		cleanup_report rep = {0};
		sandbox_verify_cleanup(sb, &rep);
		if (!rep.host_clean) {
			size_t n = strlen(err->message);
			for (char **p = rep.residual_paths; p && *p && n + 2 < sizeof err->message; p++)
				n += (size_t)snprintf(err->message + n, sizeof err->message - n, "%s%s",
						      p == rep.residual_paths ? "; left behind: " : ", ", *p);
		}
		owner_end(sb, rep.host_clean);
		cleanup_report_free(&rep);
		sandbox_set_state(sb, SB_ERROR, reason);
		sb_free(sb);
		return -1;
	}
	sb->ready_ns = now_mono_ns() - t0;
	sandbox_set_state(sb, SB_RUNNING, "agent ready");
	*out = sb;
	return 0;
}

/* How long a template restore may take to answer before the start boots cold. */
#define TPL_RESTORE_TIMEOUT_MS 20000

int sandbox_create(const vm_spec *spec, const sandbox_opts *opts, sandbox **out, silo_error *err)
{
	sandbox_opts none = {0};
	if (!opts)
		opts = &none;
	*out = NULL;
	if (opts->restore_dir || opts->cold)
		return create_one(spec, opts, NULL, out, err);
	uint64_t t0 = now_mono_ns();
	provider_choice pc = {0};
	if (provider_choose(spec->provider, opts->fallback, need_vm_by(spec, opts), &pc, err) < 0)
		return -1;
	tpl_plan tp;
	silo_error te = {0};
	if (tpl_prepare(pc.ops, spec, &tp, &te) < 0) {
		/* e.g. a boot file that fails the keyring check: the cold boot reports it */
		log_warn("template key: %s: booting cold", te.message);
		tp.use = false;
	}
	char tid[SILO_ID_MAX], payload[PATH_MAX + 16], hold[PATH_MAX + 128];
	if (tp.use && tpl_find(tp.key, tid, payload, hold, sizeof hold) == 1) {
		sandbox_opts ro = *opts;
		ro.restore_dir = payload;
		ro.restore_id = tid;
		ro.restore_provider = pc.ops->name;
		/* a template that does not come up is replaced by a cold boot: do not
		 * wait the whole boot timeout for it */
		int bt = opts->boot_timeout_ms > 0  ? opts->boot_timeout_ms
			 : spec->boot_timeout_ms > 0 ? (int)spec->boot_timeout_ms
						     : INT_MAX;
		ro.boot_timeout_ms = MIN(bt, TPL_RESTORE_TIMEOUT_MS);
		int rc = create_one(spec, &ro, NULL, out, &te);
		snap_release(hold);
		if (rc == 0) {
			(*out)->from_template = true;
			snprintf((*out)->template_id, sizeof (*out)->template_id, "%s", tid);
			(*out)->fell_back = pc.fell_back;
			if (pc.fell_back)
				snprintf((*out)->fallback_why, sizeof (*out)->fallback_why, "%s", pc.why);
			(*out)->ready_ns = now_mono_ns() - t0;
			return 0;
		}
		if (te.code == SILO_ERR_CONFLICT) {   /* the id or its run directory is taken: not the template's fault */
			*err = te;
			return -1;
		}
		log_warn("template %s did not restore (%s): removing it, booting cold", tid, te.message);
		tpl_discard(tid);
	}
	if (create_one(spec, opts, &pc, out, err) < 0)
		return -1;
	if (tp.use)
		tpl_save(*out, &tp);
	return 0;
}

void sandbox_verify_cleanup(sandbox *sb, cleanup_report *rep)
{
	memset(rep, 0, sizeof *rep);
	char **res = NULL;
	if (sb->ops && sb->ops->residue)
		sb->ops->residue(sb, &res);
	net_residue(sb->rundir, &res);
	/* The core owns the run directory. */
	if (sb->rundir[0] && path_exists(sb->rundir) && rm_rf(sb->rundir) < 0 && path_exists(sb->rundir))
		strv_append(&res, xasprintf("%s", sb->rundir));
	rep->terminated = !(sb->ops && sb->ops->alive && sb->ops->alive(sb));
	/* provider-independent: processes, mounts, sockets, cgroups, tap, temp files;
	 * no host process scan where the provider proves its processes gone */
	bool contained = rep->terminated && sb->pid > 0 && sb->ops && sb->ops->pidns_contained;
	cleanup_sweep_scoped(sb->id, sb->rundir, contained ? 0 : CLEANUP_SCAN_HOST, &res);
	if (!rep->terminated && sb->pid > 0)
		strv_append(&res, xasprintf("pid %d still running", (int)sb->pid));
	rep->host_clean = res == NULL;
	rep->residual_paths = res;
}

int sandbox_destroy(sandbox *sb, int grace_ms, cleanup_report *rep, silo_error *err)
{
	if (!sb)
		return 0;
	sandbox_set_state(sb, SB_STOPPING, "destroy requested");
	sandbox_net_stop(sb);
	silo_error te = {0};
	int trc = sb->ops->terminate(sb, grace_ms < 0 ? 0 : grace_ms, &te);
	sandbox_close_channel(sb, true);
	cleanup_report local = {0};
	cleanup_report *r = rep ? rep : &local;
	sandbox_verify_cleanup(sb, r);
	int rc = 0;
	if (trc < 0 || !r->host_clean) {
		char list[700] = "";
		size_t n = 0;
		for (char **p = r->residual_paths; p && *p && n + 2 < sizeof list; p++)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *p);
		if (trc < 0)
			silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, te.sys_errno, sb->id, "%s%s%s", te.message,
				     list[0] ? "; left behind: " : "", list);
		else
			silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, sb->id, "left behind: %s", list);
		r->host_clean = false;
		sandbox_set_state(sb, SB_ERROR, "CLEANUP_FAILED");
		rc = -1;
	} else {
		sandbox_set_state(sb, SB_TERMINATED, "destroyed");
	}
	owner_end(sb, r->host_clean);
	if (!rep)
		cleanup_report_free(&local);
	sb_free(sb);
	return rc;
}

void sandbox_terminate_orphan(const char *id, const char *provider)
{
	const provider_ops *ops = provider_find(provider);
	if (!ops || !id_is_safe(id))
		return;
	vm_spec none = {0};
	sandbox *sb = sb_alloc(id, &none, ops);
	silo_error err = {0};
	if (ops->terminate(sb, 0, &err) < 0)
		log_warn("%s: %s: terminate without state: %s", id, ops->name, err.message);
	sb_free(sb);
}

void sandbox_set_deadline(sandbox *sb, uint64_t ms)
{
	owner_set_deadline(sb, ms);
}

int sandbox_reattach(const char *id, const vm_spec *spec, const char *provider, pid_t pid,
		     sandbox **out, silo_error *err)
{
	*out = NULL;
	if (!id_is_safe(id))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "reattach: bad sandbox id");
	const provider_ops *ops = provider_find(provider);
	if (!ops)
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, id, "reattach: unknown provider \"%s\"",
				    provider ? provider : "");
	if (!ops->reattach)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, id,
				    "reattach: provider %s cannot reattach to a running sandbox", ops->name);
	sandbox *sb = sb_alloc(id, spec, ops);
	sb->pid = pid;
	if (!path_exists(sb->rundir)) {
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, ENOENT, id, "reattach: %s is gone", sb->rundir);
		sb_free(sb);
		return -1;
	}
	if (ops->reattach(sb, err) < 0) {
		/* Gone or unrecognisable: remove what it left (the provider only
		 * kills a process it can positively identify as this sandbox's). */
		silo_error_set_vm(err, id);
		silo_error e2 = {0};
		ops->terminate(sb, 0, &e2);
		rm_rf(sb->rundir);
		sb_free(sb);
		return -1;
	}
	if (wait_ready(sb, now_mono_ns() + 5000ull * 1000000ull, 1000, true, err) < 0 || sandbox_exec_defaults(sb, err) < 0) {
		/* Unreachable: do not leave it running unsupervised. */
		silo_error e2 = {0};
		ops->terminate(sb, 0, &e2);
		rm_rf(sb->rundir);
		silo_error_prefix(err, "reattach");
		sb_free(sb);
		return -1;
	}
	sb->state = SB_RUNNING;
	snprintf(sb->state_reason, sizeof sb->state_reason, "reattached");
	*out = sb;
	return 0;
}
