/* SPDX-License-Identifier: Apache-2.0
 * Deployments, private: the types and the functions the deploy_*.c files share.
 * The rules (d->lock, durability across kill -9, bundles) are stated once, at the
 * top of deploy.c; every file here follows them. Functions named *_locked expect
 * d->lock held.
 */
#ifndef SILO_CORE_DEPLOY_INT_H
#define SILO_CORE_DEPLOY_INT_H

#include "core/deploy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "registry/deploy_store.h"
#include "spec/toml.h"
#include "trust/trust.h"

#define META_DEPLOYMENT "silo.deployment"
#define META_TEAM "silo.team"
#define MAX_TEAMS 256
#define MAX_OVERRIDES 64

typedef struct team {
	char name[DSTORE_NAME_MAX + 1];
	uint32_t max_sandboxes, max_vcpus;   /* 0 = unlimited */
	uint64_t max_memory_mb;
	double budget;                       /* 0 = unlimited */
} team;

typedef struct teams_cfg {
	team *v;
	size_t n;
	double vcpu_second, gib_second;      /* prices */
	bool defined;                        /* a teams file was given: teams must be listed */
} teams_cfg;

typedef struct dep {
	struct dep *next;
	dstore_row row;
	bool busy;
	uint32_t failures;                   /* consecutive */
	uint64_t next_attempt_ms;            /* backoff: monotonic ms */
	uint64_t running_since_ms;
	uint64_t accounted_ms;               /* monotonic ms usage was counted up to */
	uint64_t disconnected_since_ms;
	bool warned_channel, warned_memory;
} dep;

struct deployer {
	manager *m;
	dstore *st;
	deploy_config cfg;
	char *agents_dir;
	char *teams_file;
	char *bundles_dir;                   /* <state dir>/bundles */
	teams_cfg teams;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	dep *deps;
	pthread_t thread;
	bool thread_running, stopping, wake;
	int sub;
	deploy_normalize_fn normalize;
	void *normalize_ud;
	/* usage not yet written to the store */
	dstore_usage *pending;
	size_t npending;
	/* deploys queued for host capacity (fair admission), oldest first */
	struct waiter *waiters;
	uint64_t wseq;
};

/* A deploy waiting for host capacity. When capacity frees, the waiter whose team has the
 * fewest deployments placed goes first (ties: the oldest), so a team that already holds the
 * host cannot starve the others however many requests it queues. */
typedef struct waiter {
	char team[DSTORE_NAME_MAX + 1];
	uint64_t seq;
	struct waiter *next;
} waiter;

/* A stored bundle, verified again against the keyring: a sealed memfd, mapped. */
typedef struct bundle_map {
	int fd;
	void *data;
	size_t len;
	trust_result res;
} bundle_map;

static inline uint64_t mono_ms(void)
{
	return now_mono_ns() / 1000000;
}

static inline bool valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > DSTORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

static inline bool valid_policy(const char *p)
{
	return p && (!strcmp(p, "never") || !strcmp(p, "on-failure") || !strcmp(p, "always"));
}

/* deployments: create, remove, list, spawning, open and close (deploy.c) */
dep *deploy_find_dep(deployer *d, const char *name);
/* The number of deployments in d->deps (d->lock held). */
size_t deploy_count_locked(const deployer *d);
void deploy_copy_row(dstore_row *dst, const dstore_row *src);
void deploy_persist(deployer *d, dep *p);
void deploy_wait_idle(deployer *d, dep **pp, const char *name);
int deploy_spawn(deployer *d, const dstore_row *r, const char *actor, bool note, char id[SILO_ID_MAX],
	silo_error *err);
uint64_t deploy_backoff_ms(deployer *d, uint32_t failures);
bool deploy_sandbox_gone(deployer *d, dep *p, bool failed, const char *why);
int deploy_remove_locked(deployer *d, dep *p, int grace_ms, const char *actor, const char *why, dstore_row *final,
	silo_error *err);

/* the teams file: quotas, budgets, prices (deploy_teams.c) */
int deploy_parse_teams(const char *path, teams_cfg *out, silo_error *err);
const team *deploy_find_team(const deployer *d, const char *name);

/* --set overrides of a deployment spec (deploy_override.c) */
void deploy_set_kv(spec_kv *kv, size_t *n, const char *k, const char *v);

/* supply chain: signed specs and bundles (deploy_bundle.c) */
void deploy_refuse_unverified(deployer *d, const char *name, const char *tm, const char *sid, const char *what,
	const char *sha, const char *actor, const silo_error *err);
void deploy_bundle_path(deployer *d, const char *sha, const char *suffix, char *out, size_t len);
int deploy_load_spec(deployer *d, const deploy_req *r, const char *tm, const char *actor, vm_spec *spec,
	silo_error *err);
void deploy_bundle_unmap(bundle_map *b);
int deploy_bundle_open(deployer *d, const char *sha, bundle_map *b, silo_error *err);
int deploy_unpack_bundle(deployer *d, const dstore_row *r, const char *sid, const char *actor, silo_error *err);
void deploy_bundles_gc_locked(deployer *d);

/* admission: quotas, budgets and fair waiting for host capacity (deploy_admit.c) */
int deploy_admit_locked(deployer *d, const char *tname, uint32_t vcpus, uint64_t mb, silo_error *err);
int deploy_spawn_fair(deployer *d, dep *p, const dstore_row *snap, const char *actor, int wait_ms,
	char id[SILO_ID_MAX], silo_error *err);

/* usage, pricing and budgets (deploy_usage.c) */
double deploy_team_cost_locked(deployer *d, const char *team_name, silo_error *err, int *ok);
void deploy_add_pending(deployer *d, const char *tm, const char *agent, uint64_t vcpu_ms, uint64_t mib_ms);
void deploy_flush_usage_locked(deployer *d);
void deploy_check_budgets_locked(deployer *d);

/* the watch thread: health, restarts, budgets (deploy_watch.c) */
void *deploy_thread_main(void *arg);
void deploy_on_event(void *ud, const mgr_event *ev);

/* reconcile at open (deploy_reconcile.c) */
void deploy_reconcile(deployer *d);

#endif
