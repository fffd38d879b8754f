/* SPDX-License-Identifier: Apache-2.0
 * Deployments (see deploy.h, docs/deployments.md).
 *
 * Locking: d->lock guards the list of deployments and their in-memory fields;
 * it is never held across a manager call or a store write that can be slow,
 * except the short row writes that keep the store equal to the list. A
 * deployment being started, restarted or stopped is marked busy; others wait
 * on d->cond until it is not.
 *
 * Durability: the row is written before the sandbox is created (state
 * starting) and marked stopping before the sandbox is deleted, so a silod
 * killed at any point reconciles to a consistent set on the next start:
 * stopping rows are finished, sandboxes created for a row whose id was not yet
 * recorded are adopted (their metadata names the deployment), sandboxes that
 * name a deployment without a row are deleted, and rows without a live
 * sandbox are respawned per their restart policy (never: dropped).
 *
 * Bundles: <state dir>/bundles/<sha256>.tar and .tar.minisig, written (each
 * atomically) by deploy_bundle_put before any row names them; a row names its
 * bundle by sha256, and every (re)start verifies the stored copy against the
 * keyring again before unpacking it. Files no row names are removed once older
 * than DEPLOY_BUNDLE_KEEP_S (after an undeploy and at open), so an upload that
 * was never deployed does not stay, and one about to be deployed is not lost.
 */
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

static uint64_t mono_ms(void)
{
	return now_mono_ns() / 1000000;
}

static bool valid_name(const char *s)
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

static bool valid_policy(const char *p)
{
	return p && (!strcmp(p, "never") || !strcmp(p, "on-failure") || !strcmp(p, "always"));
}

/* ---- teams file ---- */

static int num_value(const toml_value *v, const char *path, double max, double *out, silo_error *err)
{
	double x;
	if (v->type == TOML_INTEGER)
		x = (double)v->u.i;
	else if (v->type == TOML_FLOAT)
		x = v->u.f;
	else
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a number, got %s", v->line,
				 v->col, path, toml_type_name(v->type));
	if (!(x >= 0) || x > max || isinf(x))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a number 0..%g", v->line, v->col,
				 path, max);
	*out = x;
	return 0;
}

static int int_value(const toml_value *v, const char *path, int64_t max, uint64_t *out, silo_error *err)
{
	if (v->type != TOML_INTEGER || v->u.i < 0 || v->u.i > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected an integer 0..%" PRId64, v->line,
				 v->col, path, max);
	*out = (uint64_t)v->u.i;
	return 0;
}

static int parse_teams(const char *path, teams_cfg *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	char *text = NULL;
	size_t len;
	if (read_file(path, TOML_MAX_INPUT, &text, &len, err) < 0)
		return -1;
	char msg[512];
	toml_value *root = toml_parse(text, len, msg, sizeof msg);
	free(text);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s", path, msg);
	int rc = -1;
	out->defined = true;
	out->v = xcalloc(MAX_TEAMS, sizeof *out->v);
	for (size_t i = 0; i < root->u.tab.n; i++) {
		const char *k = root->u.tab.keys[i];
		toml_value *v = root->u.tab.vals[i];
		if (!strcmp(k, "rates") && v->type == TOML_TABLE) {
			for (size_t j = 0; j < v->u.tab.n; j++) {
				const char *rk = v->u.tab.keys[j];
				char f[300];
				snprintf(f, sizeof f, "rates.%s", rk);
				double *dst = !strcmp(rk, "vcpu_second") ? &out->vcpu_second
					      : !strcmp(rk, "gib_second") ? &out->gib_second
									   : NULL;
				if (!dst) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						  "%d:%d: %s: unknown key (expected vcpu_second, gib_second)",
						  v->u.tab.vals[j]->kline, v->u.tab.vals[j]->kcol, f);
					goto out;
				}
				if (num_value(v->u.tab.vals[j], f, 1e9, dst, err) < 0)
					goto out;
			}
		} else if (!strcmp(k, "teams") && v->type == TOML_TABLE) {
			for (size_t j = 0; j < v->u.tab.n; j++) {
				const char *tn = v->u.tab.keys[j];
				toml_value *tv = v->u.tab.vals[j];
				if (!valid_name(tn) || tv->type != TOML_TABLE) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						  "%d:%d: teams.%.80s: expected a table named 1-64 of [A-Za-z0-9_-]",
						  tv->line, tv->col, tn);
					goto out;
				}
				if (out->n >= MAX_TEAMS) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "teams: at most %d teams", MAX_TEAMS);
					goto out;
				}
				team *t = &out->v[out->n++];
				snprintf(t->name, sizeof t->name, "%s", tn);
				for (size_t q = 0; q < tv->u.tab.n; q++) {
					const char *qk = tv->u.tab.keys[q];
					toml_value *qv = tv->u.tab.vals[q];
					char f[300];
					snprintf(f, sizeof f, "teams.%s.%s", tn, qk);
					uint64_t x;
					if (!strcmp(qk, "max_sandboxes")) {
						if (int_value(qv, f, 100000, &x, err) < 0)
							goto out;
						t->max_sandboxes = (uint32_t)x;
					} else if (!strcmp(qk, "max_vcpus")) {
						if (int_value(qv, f, 1 << 20, &x, err) < 0)
							goto out;
						t->max_vcpus = (uint32_t)x;
					} else if (!strcmp(qk, "max_memory_mb")) {
						if (int_value(qv, f, (int64_t)1 << 40, &x, err) < 0)
							goto out;
						t->max_memory_mb = x;
					} else if (!strcmp(qk, "budget")) {
						if (num_value(qv, f, 1e15, &t->budget, err) < 0)
							goto out;
					} else {
						silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
							  "%d:%d: %s: unknown key (expected max_sandboxes, max_vcpus, "
							  "max_memory_mb, budget)",
							  qv->kline, qv->kcol, f);
						goto out;
					}
				}
			}
		} else if (!strcmp(k, "rates") || !strcmp(k, "teams")) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a table, got %s", v->line, v->col, k,
				  toml_type_name(v->type));
			goto out;
		} else {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "%d:%d: %s: unknown key (expected a [rates] table and [teams.NAME] tables)", v->kline,
				  v->kcol, k);
			goto out;
		}
	}
	rc = 0;
out:
	toml_free(root);
	if (rc < 0) {
		silo_error_prefix(err, "%s", path);
		free(out->v);
		memset(out, 0, sizeof *out);
	}
	return rc;
}

int deploy_check_teams(const char *path, silo_error *err)
{
	teams_cfg t;
	if (parse_teams(path, &t, err) < 0)
		return -1;
	free(t.v);
	return 0;
}

static const team *find_team(const deployer *d, const char *name)
{
	for (size_t i = 0; i < d->teams.n; i++)
		if (!strcmp(d->teams.v[i].name, name))
			return &d->teams.v[i];
	return NULL;
}

/* ---- overrides ---- */

static int set_u32(const char *key, const char *v, uint32_t max, uint32_t *out, silo_error *err)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (!*v || *end || errno || x > max || v[0] == '-')
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: expected an integer 0..%u, got '%.64s'", key,
				 max, v);
	*out = (uint32_t)x;
	return 0;
}

static void set_kv(spec_kv *kv, size_t *n, const char *k, const char *v)
{
	for (size_t i = 0; i < *n; i++) {
		if (!strcmp(kv[i].key, k)) {
			free(kv[i].value);
			kv[i].value = xstrdup(v);
			return;
		}
	}
	if (*n < SPEC_MAX_KV) {
		kv[*n].key = xstrdup(k);
		kv[*n].value = xstrdup(v);
		(*n)++;
	}
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = *v ? xstrdup(v) : NULL;
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF): the
 * spec is stored as TOML, which must be UTF-8. Returns the offset of the first
 * bad byte, or -1 if s is valid. */
static long utf8_bad_at(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (s[i]) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return (long)i;
		}
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (long)i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return (long)i;
		i += n + 1;
	}
	return -1;
}

int deploy_apply_override(vm_spec *s, const char *kv, silo_error *err)
{
	long bad_at = utf8_bad_at(kv);
	if (bad_at >= 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set: byte %ld of '%.40s...' is not valid UTF-8",
				 bad_at, kv);
	for (const unsigned char *c = (const unsigned char *)kv; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "--set: byte %ld is the control character 0x%02x (not allowed in overrides)",
					 (long)(c - (const unsigned char *)kv), *c);
	const char *eq = strchr(kv, '=');
	char key[300];
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set: expected KEY=VALUE, got '%.64s'", kv);
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	const char *v = eq + 1;
	if (strlen(v) > 4096)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: value longer than 4096 bytes", key);
	if (!strcmp(key, "resources.vcpus") || !strcmp(key, "vcpus"))
		return set_u32(key, v, 64, &s->vcpus, err);
	if (!strcmp(key, "resources.memory_mb") || !strcmp(key, "memory_mb"))
		return set_u32(key, v, 65536, &s->memory_mb, err);
	if (!strcmp(key, "sandbox.timeout_s"))
		return set_u32(key, v, UINT32_MAX, &s->timeout_s, err);
	if (!strcmp(key, "sandbox.pids_max"))
		return set_u32(key, v, UINT32_MAX, &s->pids_max, err);
	if (!strcmp(key, "boot.boot_timeout_ms"))
		return set_u32(key, v, 600000, &s->boot_timeout_ms, err);
	/* String fields: the same bounds as the hac.toml parser, so the stored spec parses back. */
	static const struct {
		const char *key, *alias;
		size_t off, max;
	} strs[] = {
		{"vm.provider", "provider", offsetof(vm_spec, provider), 64},
		{"vm.description", NULL, offsetof(vm_spec, description), 1024},
		{"boot.image", NULL, offsetof(vm_spec, image), 128},
		{"sandbox.workdir", NULL, offsetof(vm_spec, workdir), 4096},
	};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		if (strcmp(key, strs[i].key) != 0 && !(strs[i].alias && !strcmp(key, strs[i].alias)))
			continue;
		if (strlen(v) > strs[i].max)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: at most %zu bytes", key, strs[i].max);
		set_str((char **)((char *)s + strs[i].off), v);
		return 0;
	}
	if (!strcmp(key, "network.enabled")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: expected true or false", key);
		s->network = !strcmp(v, "true");
		return 0;
	}
	if (!strncmp(key, "sandbox.env.", 12) && key[12]) {
		spec_set_env(s, key + 12, v);
		return 0;
	}
	if (!strncmp(key, "metadata.", 9) && key[9] && strlen(key + 9) <= 256) {
		if (!strncmp(key + 9, "silo.", 5))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: metadata keys silo.* are reserved", key);
		set_kv(s->metadata, &s->n_metadata, key + 9, v);
		return 0;
	}
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			 "--set %.100s: unknown key (expected resources.vcpus, resources.memory_mb, vm.provider, "
			 "vm.description, boot.image, boot.boot_timeout_ms, network.enabled, sandbox.workdir, "
			 "sandbox.timeout_s, sandbox.pids_max, sandbox.env.NAME or metadata.KEY)",
			 key);
}

/* ---- JSON views ---- */

static json_t *dep_json(deployer *d, const dstore_row *r)
{
	char created[40], updated[40];
	format_time_ms(r->created_ms, created, sizeof created);
	format_time_ms(r->updated_ms, updated, sizeof updated);
	json_t *ov = json_loads(r->overrides_json ? r->overrides_json : "[]", 0, NULL);
	if (!json_is_array(ov)) {
		json_decref(ov);
		ov = json_array();
	}
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:i,s:s,s:s,s:o}", "name", r->name, "team", r->team,
			      "restart", r->restart, "state", r->state, "sandbox_id", r->sandbox_id, "vcpus",
			      (int)r->vcpus, "memory_mb", (json_int_t)r->memory_mb, "restarts", (int)r->restarts,
			      "created", created, "updated", updated, "overrides", ov);
	if (r->last_error[0])
		json_object_set_new(o, "last_error", json_string(r->last_error));
	if (r->bundle[0])
		json_object_set_new(o, "bundle", json_pack("{s:s,s:s,s:s}", "sha256", r->bundle, "key_id", r->bundle_key,
							   "dir", DEPLOY_BUNDLE_DIR));
	if (r->sandbox_id[0]) {
		json_t *sb;
		silo_error err;
		if (manager_get_json(d->m, r->sandbox_id, &sb, &err) == 0) {
			json_t *sub = json_object();
			const char *keys[] = {"state", "pid", "usage", "connected", "provider"};
			for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
				json_t *x = json_object_get(sb, keys[i]);
				if (x)
					json_object_set(sub, keys[i], x);
			}
			json_object_set_new(o, "sandbox", sub);
			json_decref(sb);
		}
	}
	return o;
}

/* ---- list helpers (d->lock held) ---- */

static dep *find_dep(deployer *d, const char *name)
{
	for (dep *p = d->deps; p; p = p->next)
		if (!strcmp(p->row.name, name))
			return p;
	return NULL;
}

static void unlink_dep(deployer *d, dep *x)
{
	for (dep **pp = &d->deps; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	dstore_row_clear(&x->row);
	free(x);
}

static void copy_row(dstore_row *dst, const dstore_row *src)
{
	*dst = *src;
	dst->spec_toml = src->spec_toml ? xstrdup(src->spec_toml) : NULL;
	dst->overrides_json = src->overrides_json ? xstrdup(src->overrides_json) : NULL;
}

/* Write p's row (d->lock held). */
static void persist(deployer *d, dep *p)
{
	silo_error err;
	p->row.updated_ms = now_realtime_ms();
	if (dstore_put(d->st, &p->row, &err) < 0)
		log_error("deploy %s: %s", p->row.name, err.message);
}

static void wait_idle(deployer *d, dep **pp, const char *name)
{
	while (*pp && (*pp)->busy) {
		pthread_cond_wait(&d->cond, &d->lock);
		*pp = find_dep(d, name);
	}
}

/* ---- supply chain: signed specs and bundles ---- */

/* A PLUGIN_UNVERIFIED refusal: audited and raised as a security-violation event.
 * The caller counts it (silo_plugin_verification_failures_total) through
 * manager_note_error: the API's error path, or spawn() for restarts. */
static void refuse_unverified(deployer *d, const char *name, const char *tm, const char *sid, const char *what,
			      const char *sha, const char *actor, const silo_error *err)
{
	json_t *det = json_pack("{s:s,s:s,s:s,s:s}", "deployment", name ? name : "", "team", tm ? tm : "", "what", what,
				"message", err->message);
	if (sha && *sha)
		json_object_set_new(det, "sha256", json_string(sha));
	manager_audit(d->m, actor ? actor : "silod", sid && *sid ? sid : NULL, "plugin-unverified", 0, det);
	json_decref(det);
	manager_emit(d->m, MGR_EV_SECURITY_VIOLATION, sid, name, tm, NULL, "PLUGIN_UNVERIFIED", "%s", err->message);
}

static bool sha_hex_valid(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	return strspn(s, "0123456789abcdef") == 64;
}

static void sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, buf ? buf : (const void *)"", len);
	sodium_bin2hex(out, 65, h, sizeof h);
}

static void bundle_path(deployer *d, const char *sha, const char *suffix, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.tar%s", d->bundles_dir, sha, suffix);
}

/* With a keyring, a spec must carry a good signature by a trusted key. */
static int verify_spec(deployer *d, const deploy_req *r, const char *tm, const char *what, const char *text,
		       size_t len, const char *sig, const char *sig_missing, const char *actor, silo_error *err)
{
	char dir[PATH_MAX];
	cleanup_free trust_pubkey *keys = NULL;
	size_t nkeys = 0;
	if (trust_keyring_load_default(dir, sizeof dir, &keys, &nkeys, err) < 0)
		return -1;
	if (!nkeys)
		return 0;
	int rc;
	if (!sig)
		rc = silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
			       "%s is not signed (%s): with a keyring configured (%s), agent specs must be signed by a "
			       "trusted key (silo trust sign FILE, or minisign -S -m FILE)",
			       what, sig_missing, dir);
	else if ((rc = trust_verify_buf(keys, nkeys, text, len, sig, strlen(sig), NULL, err)) < 0) {
		err->code = SILO_ERR_PLUGIN_UNVERIFIED;
		silo_error_prefix(err, "%s", what);
	}
	if (rc < 0)
		refuse_unverified(d, r->name, tm, NULL, "spec", NULL, actor, err);
	return rc;
}

static int load_spec(deployer *d, const deploy_req *r, const char *tm, const char *actor, vm_spec *spec,
		     silo_error *err)
{
	cleanup_free char *ftext = NULL, *fsig = NULL;
	const char *text = r->spec_toml, *sig = r->spec_signature, *what = "spec";
	size_t len = text ? strlen(text) : 0;
	char path[PATH_MAX], sigpath[PATH_MAX + 16], missing[SILO_ERROR_MSG_MAX] = "no spec_signature in the request";
	if (!text) {
		if (!d->agents_dir)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "spec: silod has no --agents-dir; send the agent's hac.toml in the request (spec)");
		snprintf(path, sizeof path, "%s/%s.toml", d->agents_dir, r->name);
		if (!path_exists(path))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
					 "spec: no agent named '%s' (%s does not exist)", r->name, path);
		if (read_file(path, TOML_MAX_INPUT, &ftext, &len, err) < 0) {
			if (err->sys_errno == EFBIG)
				err->code = SILO_ERR_INVALID_CONFIG;
			return silo_error_prefix(err, "spec"), -1;
		}
		snprintf(sigpath, sizeof sigpath, "%s.minisig", path);
		silo_error se = {0};
		if (read_file(sigpath, TRUST_SIG_FILE_MAX, &fsig, NULL, &se) < 0)
			snprintf(missing, sizeof missing, "%s", se.message);
		text = ftext;
		sig = fsig;
		what = path;
	}
	/* the bytes verified are the bytes parsed */
	if (verify_spec(d, r, tm, what, text, len, sig, missing, actor, err) < 0)
		return -1;
	if (spec_parse(text, len, spec, err) < 0)
		return silo_error_prefix(err, "%s", what), -1;
	return 0;
}

/* A stored bundle, verified again against the keyring: a sealed memfd, mapped. */
typedef struct bundle_map {
	int fd;
	void *data;
	size_t len;
	trust_result res;
} bundle_map;

static void bundle_unmap(bundle_map *b)
{
	if (b->data)
		munmap(b->data, b->len);
	if (b->fd >= 0)
		close(b->fd);
	memset(b, 0, sizeof *b);
	b->fd = -1;
}

static int bundle_open(deployer *d, const char *sha, bundle_map *b, silo_error *err)
{
	memset(b, 0, sizeof *b);
	b->fd = -1;
	if (!sha_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "bundle: expected a sha256 (64 lowercase hex digits)");
	char tar[PATH_MAX], sig[PATH_MAX];
	bundle_path(d, sha, "", tar, sizeof tar);
	bundle_path(d, sha, ".minisig", sig, sizeof sig);
	if (!path_exists(tar) || !path_exists(sig))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
				 "bundle %s was not uploaded (PUT /v1/bundles/%s, or silo deploy --bundle FILE)", sha, sha);
	if (trust_verify_bundle(tar, sig, &b->fd, &b->res, err) < 0)
		return -1;
	struct stat st;
	if (fstat(b->fd, &st) < 0) {
		bundle_unmap(b);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle %s", sha);
	}
	b->len = (size_t)st.st_size;
	if (b->len) {
		b->data = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, b->fd, 0);
		if (b->data == MAP_FAILED) {
			b->data = NULL;
			bundle_unmap(b);
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle %s: mmap", sha);
		}
	}
	char have[65];
	sha256_hex(b->data, b->len, have);
	if (strcmp(have, sha) != 0) {
		bundle_unmap(b);
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "bundle %s: the stored copy has sha256 %s (replaced by another signed bundle?)", sha, have);
	}
	return 0;
}

int deploy_bundle_put(deployer *d, const char *sha, int fd, const char *sig, size_t siglen, const char *actor,
		      json_t **out, silo_error *err)
{
	*out = NULL;
	if (!sha_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "bundle: the path must end in the bundle's sha256 (64 lowercase hex digits)");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle upload");
	if ((uint64_t)st.st_size > TRUST_BUNDLE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, EFBIG, "bundle: %lld bytes (limit %llu)", (long long)st.st_size,
				 (unsigned long long)TRUST_BUNDLE_MAX);
	size_t len = (size_t)st.st_size;
	void *map = NULL;
	if (len && (map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle upload: mmap");
	int rc = -1;
	char have[65];
	sha256_hex(map, len, have);
	trust_result res;
	if (strcmp(have, sha) != 0) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "bundle: the body has sha256 %s, the path says %s", have, sha);
		goto out;
	}
	if (trust_verify_bundle_buf(sha, map, len, sig, siglen, &res, err) < 0) {
		refuse_unverified(d, NULL, NULL, NULL, "bundle", sha, actor, err);
		goto out;
	}
	if (trust_bundle_walk(map, len, NULL, NULL, err) < 0)
		goto out;
	char tar[PATH_MAX], sp[PATH_MAX];
	bundle_path(d, sha, "", tar, sizeof tar);
	bundle_path(d, sha, ".minisig", sp, sizeof sp);
	if (mkdir_p(d->bundles_dir, 0700) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d->bundles_dir);
		goto out;
	}
	/* content-addressed: an existing copy is the same bytes (bundle_open checks) */
	if ((!path_exists(tar) && write_file_atomic(tar, map ? map : "", len, 0600, err) < 0) ||
	    write_file_atomic(sp, sig, siglen, 0600, err) < 0)
		goto out;
	utimensat(AT_FDCWD, tar, NULL, 0); /* a fresh upload: kept DEPLOY_BUNDLE_KEEP_S for its deploy */
	*out = json_pack("{s:s,s:I,s:s,s:s}", "sha256", sha, "size", (json_int_t)len, "key_id", res.keyid_hex,
			 "trusted_comment", res.trusted_comment);
	json_t *det = json_pack("{s:s,s:I,s:s}", "sha256", sha, "size", (json_int_t)len, "key_id", res.keyid_hex);
	manager_audit(d->m, actor, NULL, "bundle-stored", 0, det);
	json_decref(det);
	rc = 0;
out:
	if (map)
		munmap(map, len);
	return rc;
}

/* Unpack a verified bundle into DEPLOY_BUNDLE_DIR of a live sandbox. */
typedef struct unpack_ctx {
	chan *ch;
	uint64_t files, bytes;
	char last_dir[PATH_MAX];
} unpack_ctx;

static int unpack_entry(void *ud, const trust_bundle_entry *e, silo_error *err)
{
	unpack_ctx *u = ud;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", DEPLOY_BUNDLE_DIR, e->path);
	if (e->dir)
		return chan_mkdir(u->ch, path, e->mode | 0700, true, err);
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", path);
	*strrchr(parent, '/') = '\0';
	if (strcmp(parent, u->last_dir) != 0) {
		if (chan_mkdir(u->ch, parent, 0755, true, err) < 0)
			return -1;
		snprintf(u->last_dir, sizeof u->last_dir, "%s", parent);
	}
	u->files++;
	u->bytes += e->size;
	return chan_file_write(u->ch, path, e->data, (size_t)e->size, e->mode, err);
}

typedef struct unpack_job {
	const bundle_map *b;
	unpack_ctx u;
} unpack_job;

static int do_unpack(sandbox *sb, void *ud, silo_error *err)
{
	unpack_job *j = ud;
	j->u.ch = sb->ch;
	if (chan_mkdir(sb->ch, DEPLOY_BUNDLE_DIR, 0755, true, err) < 0)
		return -1;
	snprintf(j->u.last_dir, sizeof j->u.last_dir, "%s", DEPLOY_BUNDLE_DIR);
	return trust_bundle_walk(j->b->data, j->b->len, unpack_entry, &j->u, err);
}

static int unpack_bundle(deployer *d, const dstore_row *r, const char *sid, const char *actor, silo_error *err)
{
	bundle_map b;
	if (bundle_open(d, r->bundle, &b, err) < 0) {
		if (err->code == SILO_ERR_PLUGIN_UNVERIFIED)
			refuse_unverified(d, r->name, r->team, sid, "bundle", r->bundle, actor, err);
		return silo_error_prefix(err, "deployment %s", r->name), -1;
	}
	uint64_t t0 = now_mono_ns();
	unpack_job j = {.b = &b};
	int rc = manager_with_sandbox(d->m, sid, false, do_unpack, &j, err);
	if (rc < 0) {
		silo_error_prefix(err, "deployment %s: unpacking bundle %.12s into %s", r->name, r->bundle, DEPLOY_BUNDLE_DIR);
	} else {
		json_t *det = json_pack("{s:s,s:s,s:s,s:I,s:I}", "deployment", r->name, "sha256", r->bundle, "key_id",
					b.res.keyid_hex, "files", (json_int_t)j.u.files, "bytes", (json_int_t)j.u.bytes);
		json_object_set_new(det, "dir", json_string(DEPLOY_BUNDLE_DIR));
		manager_audit(d->m, actor, sid, "bundle-unpacked", (now_mono_ns() - t0) / 1000000, det);
		json_decref(det);
	}
	bundle_unmap(&b);
	return rc;
}

/* Stored bundles no deployment names, older than DEPLOY_BUNDLE_KEEP_S, are removed (d->lock held). */
static void bundles_gc_locked(deployer *d)
{
	DIR *dir = opendir(d->bundles_dir);
	if (!dir)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(dir))) {
		char sha[65];
		size_t l = strlen(de->d_name);
		bool tar = l == 68 && !strcmp(de->d_name + 64, ".tar");
		bool sig = l == 76 && !strcmp(de->d_name + 64, ".tar.minisig");
		if (!tar && !sig)
			continue;
		snprintf(sha, sizeof sha, "%.64s", de->d_name);
		if (!sha_hex_valid(sha))
			continue;
		bool used = false;
		for (dep *p = d->deps; p && !used; p = p->next)
			used = !strcmp(p->row.bundle, sha);
		char path[PATH_MAX], tpath[PATH_MAX];
		bundle_path(d, sha, sig ? ".minisig" : "", path, sizeof path);
		bundle_path(d, sha, "", tpath, sizeof tpath);
		struct stat st;
		/* a signature goes with its tar (by the tar's age), or alone when the tar is gone */
		bool old = stat(tpath, &st) < 0 || now - st.st_mtime > DEPLOY_BUNDLE_KEEP_S;
		if (!used && old)
			unlink(path);
	}
	closedir(dir);
}

/* ---- spawning ---- */

/* Create the sandbox for a row and unpack its bundle (no lock held). note: count a
 * failure here (restarts); a deploy's failure is counted by the API that reports it. */
static int spawn(deployer *d, const dstore_row *r, const char *actor, bool note, char id[SILO_ID_MAX],
		 silo_error *err)
{
	vm_spec spec = {0};
	if (spec_parse(r->spec_toml, strlen(r->spec_toml), &spec, err) < 0)
		return silo_error_prefix(err, "deployment %s: recorded spec", r->name), -1;
	mgr_create_opts o = {.actor = actor};
	int rc = manager_create(d->m, &spec, &o, id, err);
	spec_free(&spec);
	if (rc == 0 && r->bundle[0] && unpack_bundle(d, r, id, actor, err) < 0) {
		silo_error e2;
		if (manager_delete(d->m, id, "silod", 0, &e2) < 0)
			log_warn("deploy %s: delete %s after a failed unpack: %s", r->name, id, e2.message);
		rc = -1;
	}
	if (rc < 0 && note)
		manager_note_error(d->m, err);
	return rc;
}

static uint64_t backoff_ms(deployer *d, uint32_t failures)
{
	uint64_t ms = (uint64_t)d->cfg.backoff_ms;
	for (uint32_t i = 1; i < failures && ms < (uint64_t)d->cfg.backoff_max_ms; i++)
		ms *= 2;
	return MIN(ms, (uint64_t)d->cfg.backoff_max_ms);
}

/* The sandbox of p is gone (failed: error/lost; else terminated). Apply the
 * restart policy (d->lock held). Returns true if p was removed. */
static bool sandbox_gone(deployer *d, dep *p, bool failed, const char *why)
{
	bool restart = !strcmp(p->row.restart, "always") || (failed && !strcmp(p->row.restart, "on-failure"));
	char name[DSTORE_NAME_MAX + 1], tm[DSTORE_NAME_MAX + 1], sid[SILO_ID_MAX], policy[16];
	snprintf(name, sizeof name, "%s", p->row.name);
	snprintf(tm, sizeof tm, "%s", p->row.team);
	snprintf(sid, sizeof sid, "%s", p->row.sandbox_id);
	snprintf(policy, sizeof policy, "%s", p->row.restart);
	if (!restart) {
		silo_error err;
		if (dstore_delete(d->st, name, &err) < 0)
			log_error("deploy %s: %s", name, err.message);
		unlink_dep(d, p);
		pthread_cond_broadcast(&d->cond);
		manager_emit(d->m, MGR_EV_DEPLOYMENT, sid, name, tm, "removed", NULL,
			     "sandbox %s %s; restart policy %s: the deployment is removed", sid, why, policy);
		return true;
	}
	p->failures++;
	uint64_t delay = backoff_ms(d, p->failures);
	p->next_attempt_ms = mono_ms() + delay;
	snprintf(p->row.state, sizeof p->row.state, "backoff");
	snprintf(p->row.last_error, sizeof p->row.last_error, "sandbox %s %s", sid, why);
	p->row.sandbox_id[0] = '\0';
	persist(d, p);
	manager_emit(d->m, MGR_EV_HEALTH_WARNING, sid, name, tm, "backoff", failed ? "VSOCK_DISCONNECTED" : NULL,
		     "deployment %s: sandbox %s %s; restarting in %" PRIu64 " ms (restart policy %s, failure %u)", name,
		     sid, why, delay, p->row.restart, p->failures);
	return false;
}

/* ---- create / remove ---- */

/* Quota and budget checks for adding (vcpus, mb) to team t (d->lock held). */
static double team_cost_locked(deployer *d, const char *team_name, silo_error *err, int *ok);

static int admit_locked(deployer *d, const char *tname, uint32_t vcpus, uint64_t mb, silo_error *err)
{
	const team *t = find_team(d, tname);
	if (d->teams.defined && !t)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "team: '%s' is not defined in %s", tname,
				 d->teams_file);
	if (!t)
		return 0;
	uint64_t n = 0, v = 0, m = 0;
	for (dep *p = d->deps; p; p = p->next) {
		if (strcmp(p->row.team, tname) != 0)
			continue;
		n++;
		v += p->row.vcpus;
		m += p->row.memory_mb;
	}
	if (t->max_sandboxes && n + 1 > t->max_sandboxes)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_sandboxes: %" PRIu64 " deployed, limit %u", tname, n, t->max_sandboxes);
	if (t->max_vcpus && v + vcpus > t->max_vcpus)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_vcpus: %" PRIu64 " in use + %u asked > limit %u", tname, v, vcpus,
				 t->max_vcpus);
	if (t->max_memory_mb && m + mb > t->max_memory_mb)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_memory_mb: %" PRIu64 " in use + %" PRIu64 " asked > limit %" PRIu64,
				 tname, m, mb, t->max_memory_mb);
	if (t->budget > 0) {
		int ok;
		double c = team_cost_locked(d, tname, err, &ok);
		if (!ok)
			return -1;
		if (c >= t->budget)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
					 "team %s budget: %.6g spent of %.6g; the budget is exhausted", tname, c, t->budget);
	}
	return 0;
}

/* Deployments of team tname that hold (or are getting) a sandbox: queued ones do not count. */
static size_t team_placed_locked(deployer *d, const char *tname)
{
	size_t n = 0;
	for (dep *p = d->deps; p; p = p->next)
		n += !strcmp(p->row.team, tname) && strcmp(p->row.state, "queued") != 0;
	return n;
}

/* The waiter whose turn it is (d->lock held). */
static waiter *fair_first_locked(deployer *d)
{
	waiter *best = NULL;
	size_t best_n = 0;
	for (waiter *w = d->waiters; w; w = w->next) {
		size_t n = team_placed_locked(d, w->team);
		if (!best || n < best_n || (n == best_n && w->seq < best->seq)) {
			best = w;
			best_n = n;
		}
	}
	return best;
}

static bool capacity_error(const silo_error *err)
{
	return err->code == SILO_ERR_MAX_VMS_EXCEEDED || err->code == SILO_ERR_RESOURCE_EXCEEDED;
}

/* Spawn p's sandbox; when the host is full and the request may wait, queue it and retry on its
 * turn until the deadline. p is busy (the reconciler leaves it alone) and stays in d->deps. */
static int spawn_fair(deployer *d, dep *p, const dstore_row *snap, const char *actor, int wait_ms,
		      char id[SILO_ID_MAX], silo_error *err)
{
	int rc = spawn(d, snap, actor, false, id, err);
	if (rc == 0 || wait_ms <= 0 || !capacity_error(err))
		return rc;
	uint64_t t0 = mono_ms(), deadline = t0 + (uint64_t)wait_ms;
	waiter w = {0};
	snprintf(w.team, sizeof w.team, "%s", snap->team);
	pthread_mutex_lock(&d->lock);
	w.seq = ++d->wseq;
	waiter **tail = &d->waiters;
	while (*tail)
		tail = &(*tail)->next;
	*tail = &w;
	snprintf(p->row.state, sizeof p->row.state, "queued");
	snprintf(p->row.last_error, sizeof p->row.last_error, "waiting for host capacity: %.200s", err->message);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, NULL, snap->name, snap->team, "queued", silo_code_name(err->code),
		     "deployment %s queued for host capacity (up to %d ms): %s", snap->name, wait_ms, err->message);
	for (;;) {
		pthread_mutex_lock(&d->lock);
		/* Wait for our turn; a removal broadcasts, and capacity can also free up outside the
		 * deployer (a plain sandbox deleted), so look again every 250 ms. */
		bool expired = false;
		while (!d->stopping) {
			if (mono_ms() >= deadline) {
				expired = true;
				break;
			}
			if (fair_first_locked(d) == &w)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 250 * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
		}
		bool stop = d->stopping;
		if (!expired && !stop)
			snprintf(p->row.state, sizeof p->row.state, "starting");
		pthread_mutex_unlock(&d->lock);
		if (expired || stop) {
			rc = silo_fail(err, stop ? SILO_ERR_CONFLICT : err->code, 0,
				       "%s after waiting %" PRIu64 " ms for host capacity (%.300s)",
				       stop ? "silod is stopping" : "no room", mono_ms() - t0, err->message);
			break;
		}
		silo_error e2 = {0};
		rc = spawn(d, snap, actor, false, id, &e2);
		if (rc == 0)
			break;
		*err = e2;
		if (!capacity_error(err))
			break;
		pthread_mutex_lock(&d->lock);
		snprintf(p->row.state, sizeof p->row.state, "queued");
		pthread_mutex_unlock(&d->lock);
		/* Still full: let the next look come from the wait above, not a busy loop. */
		struct timespec pause = {0, 100 * 1000000L};
		nanosleep(&pause, NULL);
	}
	pthread_mutex_lock(&d->lock);
	for (waiter **q = &d->waiters; *q; q = &(*q)->next)
		if (*q == &w) {
			*q = w.next;
			break;
		}
	pthread_cond_broadcast(&d->cond); /* the next waiter's turn */
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int deploy_create(deployer *d, const deploy_req *r, const char *actor, json_t **out, silo_error *err)
{
	const char *tname = r->team ? r->team : "default";
	const char *policy = r->restart ? r->restart : "on-failure";
	if (!valid_name(r->name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "name: expected 1-64 of [A-Za-z0-9_-], got '%.80s'",
				 r->name ? r->name : "");
	if (!valid_name(tname))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "team: expected 1-64 of [A-Za-z0-9_-], got '%.80s'",
				 tname);
	if (!valid_policy(policy))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "restart: expected never, on-failure or always, got '%.40s'", policy);
	vm_spec spec = {0};
	if (load_spec(d, r, tname, actor, &spec, err) < 0)
		return -1;
	/* the bundle, verified before anything starts (and again before every start) */
	char bundle_key[17] = "";
	if (r->bundle) {
		bundle_map b;
		if (bundle_open(d, r->bundle, &b, err) < 0) {
			if (err->code == SILO_ERR_PLUGIN_UNVERIFIED)
				refuse_unverified(d, r->name, tname, NULL, "bundle", r->bundle, actor, err);
			spec_free(&spec);
			return silo_error_prefix(err, "deploy %s", r->name), -1;
		}
		int vrc = trust_bundle_walk(b.data, b.len, NULL, NULL, err);
		snprintf(bundle_key, sizeof bundle_key, "%s", b.res.keyid_hex);
		bundle_unmap(&b);
		if (vrc < 0) {
			spec_free(&spec);
			return silo_error_prefix(err, "deploy %s", r->name), -1;
		}
		char tar[PATH_MAX];
		bundle_path(d, r->bundle, "", tar, sizeof tar);
		utimensat(AT_FDCWD, tar, NULL, 0); /* in use from now on: not collected meanwhile */
	}
	json_t *ov = json_array();
	size_t nset = 0;
	for (const char *const *s = r->set; s && *s; s++, nset++) {
		if (nset >= MAX_OVERRIDES) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "set: at most %d overrides", MAX_OVERRIDES);
			goto fail_spec;
		}
		if (deploy_apply_override(&spec, *s, err) < 0)
			goto fail_spec;
		json_array_append_new(ov, json_string(*s));
	}
	for (size_t i = 0; i < spec.n_secrets; i++)
		if (spec.secrets[i].src == SPEC_SECRET_VALUE) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "sandbox.secrets.%s: a deployment restarts from its stored spec, which never holds a "
				  "secret's value: give it as {file = \"/host/path\"} or {env = \"NAME\"}",
				  spec.secrets[i].key);
			goto fail_spec;
		}
	snprintf(spec.name, sizeof spec.name, "%s", r->name);
	set_kv(spec.metadata, &spec.n_metadata, META_DEPLOYMENT, r->name);
	set_kv(spec.metadata, &spec.n_metadata, META_TEAM, tname);
	pthread_mutex_lock(&d->lock);
	deploy_normalize_fn norm = d->normalize;
	void *norm_ud = d->normalize_ud;
	pthread_mutex_unlock(&d->lock);
	if (norm && norm(norm_ud, &spec, err) < 0) {
		silo_error_prefix(err, "deploy %s", r->name);
		goto fail_spec;
	}
	if (spec_validate(&spec, err) < 0) {
		silo_error_prefix(err, "spec of %s", r->name);
		goto fail_spec;
	}
	/* Restarts re-create the sandbox from the stored text: it must parse back to this spec. */
	{
		char *text = spec_format(&spec);
		vm_spec back = {0};
		silo_error e2;
		bool same = text && spec_parse(text, strlen(text), &back, &e2) == 0 && spec_equal(&spec, &back);
		spec_free(&back);
		free(text);
		if (!same) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "spec of %s: its canonical form does not parse back to the same spec", r->name);
			goto fail_spec;
		}
	}

	dep *p = xcalloc(1, sizeof *p);
	snprintf(p->row.name, sizeof p->row.name, "%s", r->name);
	snprintf(p->row.team, sizeof p->row.team, "%s", tname);
	snprintf(p->row.restart, sizeof p->row.restart, "%s", policy);
	snprintf(p->row.state, sizeof p->row.state, "starting");
	p->row.spec_toml = spec_format(&spec);
	p->row.overrides_json = json_dumps(ov, JSON_COMPACT);
	p->row.vcpus = spec.vcpus;
	p->row.memory_mb = spec.memory_mb;
	p->row.created_ms = p->row.updated_ms = now_realtime_ms();
	if (r->bundle) {
		snprintf(p->row.bundle, sizeof p->row.bundle, "%s", r->bundle);
		snprintf(p->row.bundle_key, sizeof p->row.bundle_key, "%s", bundle_key);
	}
	p->busy = true;
	json_decref(ov);
	ov = NULL;
	spec_free(&spec);

	pthread_mutex_lock(&d->lock);
	if (find_dep(d, r->name)) {
		pthread_mutex_unlock(&d->lock);
		silo_fail(err, SILO_ERR_CONFLICT, 0, "deployment '%s' already exists", r->name);
		goto fail_dep;
	}
	if (admit_locked(d, tname, p->row.vcpus, p->row.memory_mb, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		goto fail_dep;
	}
	if (dstore_insert(d->st, &p->row, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		goto fail_dep;
	}
	p->next = d->deps;
	d->deps = p;
	pthread_mutex_unlock(&d->lock);

	char id[SILO_ID_MAX];
	dstore_row snap;
	copy_row(&snap, &p->row);   /* p stays ours while busy */
	int rc = spawn_fair(d, p, &snap, actor, r->wait_ms, id, err);
	dstore_row_clear(&snap);
	pthread_mutex_lock(&d->lock);
	if (rc < 0) {
		silo_error e2;
		if (dstore_delete(d->st, r->name, &e2) < 0)
			log_error("deploy %s: %s", r->name, e2.message);
		unlink_dep(d, p);
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return silo_error_prefix(err, "deploy %s", r->name), -1;
	}
	snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s", id);
	snprintf(p->row.state, sizeof p->row.state, "running");
	p->running_since_ms = p->accounted_ms = mono_ms();
	p->busy = false;
	persist(d, p);
	dstore_row view;
	copy_row(&view, &p->row);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, id, view.name, view.team, "running", NULL,
		     "deployed by %s (restart policy %s, %u vCPU, %" PRIu64 " MB)", actor ? actor : "silod", view.restart,
		     view.vcpus, view.memory_mb);
	*out = dep_json(d, &view);
	dstore_row_clear(&view);
	return 0;
fail_dep:
	dstore_row_clear(&p->row);
	free(p);
	return -1;
fail_spec:
	json_decref(ov);
	spec_free(&spec);
	return -1;
}

static void add_pending(deployer *d, const char *tm, const char *agent, uint64_t vcpu_ms, uint64_t mib_ms);

/* Undeploy p (d->lock held on entry and exit; p must not be busy). */
static int remove_locked(deployer *d, dep *p, int grace_ms, const char *actor, const char *why, dstore_row *final,
			 silo_error *err)
{
	p->busy = true;
	uint64_t now = mono_ms();
	if (!strcmp(p->row.state, "running") && p->accounted_ms && now > p->accounted_ms)
		add_pending(d, p->row.team, p->row.name, (now - p->accounted_ms) * p->row.vcpus,
			    (now - p->accounted_ms) * p->row.memory_mb);
	p->accounted_ms = now;
	snprintf(p->row.state, sizeof p->row.state, "stopping");
	persist(d, p);
	char sid[SILO_ID_MAX], name[DSTORE_NAME_MAX + 1];
	snprintf(sid, sizeof sid, "%s", p->row.sandbox_id);
	snprintf(name, sizeof name, "%s", p->row.name);
	pthread_mutex_unlock(&d->lock);
	int rc = 0;
	if (sid[0] && manager_delete(d->m, sid, actor, grace_ms, err) < 0) {
		if (err->code == SILO_ERR_VM_NOT_FOUND) {
			rc = 0;   /* already gone */
		} else if (err->code == SILO_ERR_CLEANUP_FAILED) {
			log_warn("undeploy %s: %s", name, err->message);
			rc = 0;   /* terminated; residue is reported by the manager's audit */
		} else {
			rc = -1;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (rc < 0) {
		/* Still running (e.g. CONFLICT while the manager deletes it): keep it. */
		snprintf(p->row.state, sizeof p->row.state, "running");
		p->busy = false;
		persist(d, p);
		pthread_cond_broadcast(&d->cond);
		return -1;
	}
	silo_error e2;
	if (dstore_delete(d->st, name, &e2) < 0) {
		log_error("undeploy %s: %s", name, e2.message);
	}
	if (final) {
		copy_row(final, &p->row);
		snprintf(final->state, sizeof final->state, "undeployed");
	}
	char tm[DSTORE_NAME_MAX + 1];
	snprintf(tm, sizeof tm, "%s", p->row.team);
	unlink_dep(d, p);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, sid, name, tm, "undeployed", NULL, "%s", why);
	pthread_mutex_lock(&d->lock);
	return 0;
}

int deploy_remove(deployer *d, const char *name, int grace_ms, const char *actor, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	dep *p = find_dep(d, name);
	wait_idle(d, &p, name);
	if (!p) {
		pthread_mutex_unlock(&d->lock);
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no deployment named '%.80s'", name);
	}
	char why[128];
	snprintf(why, sizeof why, "undeployed by %s", actor ? actor : "silod");
	dstore_row final;
	int rc = remove_locked(d, p, grace_ms, actor, why, &final, err);
	if (rc == 0)
		bundles_gc_locked(d);
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		return silo_error_prefix(err, "undeploy %s", name), -1;
	json_t *o = dep_json(d, &final);
	json_object_del(o, "sandbox");
	dstore_row_clear(&final);
	*out = o;
	return 0;
}

int deploy_get_json(deployer *d, const char *name, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	dep *p = find_dep(d, name);
	if (!p) {
		pthread_mutex_unlock(&d->lock);
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no deployment named '%.80s'", name);
	}
	dstore_row r;
	copy_row(&r, &p->row);
	pthread_mutex_unlock(&d->lock);
	*out = dep_json(d, &r);
	json_object_set_new(*out, "spec", json_string(r.spec_toml ? r.spec_toml : ""));
	dstore_row_clear(&r);
	return 0;
}

int deploy_list_json(deployer *d, json_t **out, silo_error *err)
{
	(void)err;
	pthread_mutex_lock(&d->lock);
	size_t n = 0;
	for (dep *p = d->deps; p; p = p->next)
		n++;
	dstore_row *rows = xcalloc(n ? n : 1, sizeof *rows);
	size_t k = 0;
	for (dep *p = d->deps; p; p = p->next)
		copy_row(&rows[k++], &p->row);
	pthread_mutex_unlock(&d->lock);
	/* Sorted by name, like the store. */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(rows[j - 1].name, rows[j].name) > 0; j--) {
			dstore_row t = rows[j];
			rows[j] = rows[j - 1];
			rows[j - 1] = t;
		}
	json_t *a = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(a, dep_json(d, &rows[i]));
	dstore_rows_free(rows, k);
	*out = a;
	return 0;
}

/* ---- usage ---- */

static double price(const deployer *d, uint64_t vcpu_ms, uint64_t mib_ms)
{
	return (double)vcpu_ms / 1000.0 * d->teams.vcpu_second + (double)mib_ms / 1024.0 / 1000.0 * d->teams.gib_second;
}

/* Cost of a team so far: stored usage + not yet flushed (d->lock held). */
static double team_cost_locked(deployer *d, const char *team_name, silo_error *err, int *ok)
{
	dstore_usage *u;
	size_t n;
	*ok = 0;
	if (dstore_usage_list(d->st, &u, &n, err) < 0)
		return 0;
	uint64_t v = 0, m = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(u[i].team, team_name)) {
			v += u[i].vcpu_ms;
			m += u[i].mib_ms;
		}
	free(u);
	for (size_t i = 0; i < d->npending; i++)
		if (!strcmp(d->pending[i].team, team_name)) {
			v += d->pending[i].vcpu_ms;
			m += d->pending[i].mib_ms;
		}
	*ok = 1;
	return price(d, v, m);
}

static void add_pending(deployer *d, const char *tm, const char *agent, uint64_t vcpu_ms, uint64_t mib_ms)
{
	for (size_t i = 0; i < d->npending; i++) {
		if (!strcmp(d->pending[i].team, tm) && !strcmp(d->pending[i].agent, agent)) {
			d->pending[i].vcpu_ms += vcpu_ms;
			d->pending[i].mib_ms += mib_ms;
			return;
		}
	}
	d->pending = xrealloc(d->pending, (d->npending + 1) * sizeof *d->pending);
	dstore_usage *u = &d->pending[d->npending++];
	memset(u, 0, sizeof *u);
	snprintf(u->team, sizeof u->team, "%s", tm);
	snprintf(u->agent, sizeof u->agent, "%s", agent);
	u->vcpu_ms = vcpu_ms;
	u->mib_ms = mib_ms;
}

static void flush_usage_locked(deployer *d)
{
	silo_error err;
	if (!d->npending)
		return;
	if (dstore_usage_add(d->st, d->pending, d->npending, &err) < 0) {
		log_error("usage: %s", err.message);
		return;
	}
	free(d->pending);
	d->pending = NULL;
	d->npending = 0;
}

int deploy_usage_json(deployer *d, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	flush_usage_locked(d);
	dstore_usage *u;
	size_t n;
	if (dstore_usage_list(d->st, &u, &n, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		return -1;
	}
	json_t *teams = json_object();
	/* Every configured team appears, also without usage. */
	for (size_t i = 0; i < d->teams.n; i++)
		json_object_set_new(teams, d->teams.v[i].name,
				    json_pack("{s:I,s:I,s:f,s:f,s:f,s:o}", "vcpu_ms", (json_int_t)0, "mib_ms",
					      (json_int_t)0, "vcpu_seconds", 0.0, "gib_seconds", 0.0, "cost", 0.0,
					      "agents", json_array()));
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_object_get(teams, u[i].team);
		if (!t) {
			t = json_pack("{s:I,s:I,s:f,s:f,s:f,s:o}", "vcpu_ms", (json_int_t)0, "mib_ms", (json_int_t)0,
				      "vcpu_seconds", 0.0, "gib_seconds", 0.0, "cost", 0.0, "agents", json_array());
			json_object_set_new(teams, u[i].team, t);
		}
		json_t *a = json_pack("{s:s,s:I,s:I,s:f,s:f,s:f}", "agent", u[i].agent, "vcpu_ms",
				      (json_int_t)u[i].vcpu_ms, "mib_ms", (json_int_t)u[i].mib_ms, "vcpu_seconds",
				      (double)u[i].vcpu_ms / 1000.0, "gib_seconds", (double)u[i].mib_ms / 1024000.0,
				      "cost", price(d, u[i].vcpu_ms, u[i].mib_ms));
		json_array_append_new(json_object_get(t, "agents"), a);
		json_int_t v = json_integer_value(json_object_get(t, "vcpu_ms")) + (json_int_t)u[i].vcpu_ms;
		json_int_t m = json_integer_value(json_object_get(t, "mib_ms")) + (json_int_t)u[i].mib_ms;
		json_object_set_new(t, "vcpu_ms", json_integer(v));
		json_object_set_new(t, "mib_ms", json_integer(m));
		json_object_set_new(t, "vcpu_seconds", json_real((double)v / 1000.0));
		json_object_set_new(t, "gib_seconds", json_real((double)m / 1024000.0));
		json_object_set_new(t, "cost", json_real(price(d, (uint64_t)v, (uint64_t)m)));
	}
	free(u);
	const char *k;
	json_t *t;
	json_object_foreach(teams, k, t) {
		const team *tc = find_team(d, k);
		uint64_t cnt = 0, v = 0, m = 0;
		for (dep *p = d->deps; p; p = p->next)
			if (!strcmp(p->row.team, k)) {
				cnt++;
				v += p->row.vcpus;
				m += p->row.memory_mb;
			}
		json_object_set_new(t, "deployments", json_integer((json_int_t)cnt));
		json_object_set_new(t, "allocated", json_pack("{s:I,s:I}", "vcpus", (json_int_t)v, "memory_mb",
							     (json_int_t)m));
		if (tc) {
			json_object_set_new(t, "quota", json_pack("{s:I,s:I,s:I}", "max_sandboxes",
								 (json_int_t)tc->max_sandboxes, "max_vcpus",
								 (json_int_t)tc->max_vcpus, "max_memory_mb",
								 (json_int_t)tc->max_memory_mb));
			if (tc->budget > 0) {
				double c = json_real_value(json_object_get(t, "cost"));
				json_object_set_new(t, "budget", json_real(tc->budget));
				json_object_set_new(t, "budget_used_pct", json_real(100.0 * c / tc->budget));
				json_object_set_new(t, "budget_exhausted", json_boolean(c >= tc->budget));
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
	*out = json_pack("{s:{s:f,s:f},s:o}", "rates", "vcpu_second", d->teams.vcpu_second, "gib_second",
			 d->teams.gib_second, "teams", teams);
	return 0;
}

/* ---- the watch thread ---- */

typedef struct snap {
	char name[DSTORE_NAME_MAX + 1];
	char sid[SILO_ID_MAX];
	bool due;                 /* backoff over: respawn */
} snap;

/* Look at one running deployment's sandbox (no lock held), then act under the lock. */
static void watch_one(deployer *d, const snap *s)
{
	json_t *o = NULL;
	silo_error err;
	bool gone = false, failed = false, connected = true;
	char why[256] = "";
	uint64_t mem = 0;
	if (manager_get_json(d->m, s->sid, &o, &err) < 0) {
		gone = true;
		failed = true;
		snprintf(why, sizeof why, "is not known to the manager");
	} else {
		const char *st = json_string_value(json_object_get(o, "state"));
		st = st ? st : "";
		if (!strcmp(st, "error") || !strcmp(st, "terminated")) {
			gone = true;
			failed = !strcmp(st, "error");
			const char *rs = json_string_value(json_object_get(o, "reason"));
			snprintf(why, sizeof why, "is %s (%.200s)", st, rs ? rs : "");
		} else {
			json_t *c = json_object_get(o, "connected");
			connected = !c || json_is_true(c);
			mem = (uint64_t)json_integer_value(json_object_get(json_object_get(o, "usage"), "memory_bytes"));
		}
	}
	json_decref(o);

	uint64_t now = mono_ms();
	pthread_mutex_lock(&d->lock);
	dep *p = find_dep(d, s->name);
	if (!p || p->busy || strcmp(p->row.sandbox_id, s->sid) != 0 || strcmp(p->row.state, "running") != 0) {
		pthread_mutex_unlock(&d->lock);
		return;   /* changed meanwhile */
	}
	/* Usage: allocation x time while running. */
	if (p->accounted_ms && now > p->accounted_ms) {
		uint64_t dt = now - p->accounted_ms;
		add_pending(d, p->row.team, p->row.name, dt * p->row.vcpus, dt * p->row.memory_mb);
	}
	p->accounted_ms = now;
	if (gone) {
		sandbox_gone(d, p, failed, why);
		pthread_mutex_unlock(&d->lock);
		return;
	}
	if (now - p->running_since_ms > (uint64_t)d->cfg.backoff_max_ms)
		p->failures = 0;   /* stable again: the next failure starts the backoff anew */
	char name[DSTORE_NAME_MAX + 1], tm[DSTORE_NAME_MAX + 1];
	snprintf(name, sizeof name, "%s", p->row.name);
	snprintf(tm, sizeof tm, "%s", p->row.team);
	uint64_t limit = p->row.memory_mb << 20;
	bool warn_mem = false, warn_chan = false, kill_it = false;
	if (mem > limit / 10 * 9) {
		warn_mem = !p->warned_memory;
		p->warned_memory = true;
	} else {
		p->warned_memory = false;
	}
	if (!connected) {
		if (!p->disconnected_since_ms)
			p->disconnected_since_ms = now;
		warn_chan = !p->warned_channel;
		p->warned_channel = true;
		kill_it = now - p->disconnected_since_ms >= (uint64_t)d->cfg.unhealthy_ms &&
			  strcmp(p->row.restart, "never") != 0;
	} else {
		p->disconnected_since_ms = 0;
		p->warned_channel = false;
	}
	if (kill_it)
		p->busy = true;
	uint64_t mem_mb = mem >> 20, lim_mb = p->row.memory_mb;
	pthread_mutex_unlock(&d->lock);

	if (warn_mem)
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, s->sid, name, tm, "running", "RESOURCE_EXCEEDED",
			     "deployment %s uses %" PRIu64 " MB of its %" PRIu64 " MB", name, mem_mb, lim_mb);
	if (warn_chan)
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, s->sid, name, tm, "running", "VSOCK_DISCONNECTED",
			     "deployment %s: the agent missed its heartbeats", name);
	if (kill_it) {
		if (manager_delete(d->m, s->sid, "silod", 0, &err) < 0 && err.code != SILO_ERR_VM_NOT_FOUND)
			log_warn("deploy %s: delete unhealthy %s: %s", name, s->sid, err.message);
		pthread_mutex_lock(&d->lock);
		p = find_dep(d, name);
		if (p) {
			p->busy = false;
			sandbox_gone(d, p, true, "stopped answering heartbeats");
		}
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}

static void respawn_one(deployer *d, const snap *s)
{
	pthread_mutex_lock(&d->lock);
	dep *p = find_dep(d, s->name);
	if (!p || p->busy || strcmp(p->row.state, "backoff") != 0) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	p->busy = true;
	dstore_row r;
	copy_row(&r, &p->row);
	pthread_mutex_unlock(&d->lock);
	char id[SILO_ID_MAX];
	silo_error err;
	int rc = spawn(d, &r, "silod", true, id, &err);
	pthread_mutex_lock(&d->lock);
	p = find_dep(d, s->name);
	if (rc == 0) {
		snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s", id);
		snprintf(p->row.state, sizeof p->row.state, "running");
		p->row.restarts++;
		p->running_since_ms = p->accounted_ms = mono_ms();
		p->disconnected_since_ms = 0;
		p->warned_channel = p->warned_memory = false;
	} else {
		p->failures++;
		p->next_attempt_ms = mono_ms() + backoff_ms(d, p->failures);
		snprintf(p->row.last_error, sizeof p->row.last_error, "restart: %s: %.400s", silo_code_name(err.code),
			 err.message);
	}
	p->busy = false;
	persist(d, p);
	uint32_t restarts = p->row.restarts;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (rc == 0)
		manager_emit(d->m, MGR_EV_DEPLOYMENT, id, r.name, r.team, "running", NULL,
			     "restarted (restart %u, policy %s)", restarts, r.restart);
	else
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, NULL, r.name, r.team, "backoff", silo_code_name(err.code),
			     "deployment %s: restart failed: %s", r.name, err.message);
	dstore_row_clear(&r);
}

/* Budgets: alert at 80%, stop the team's deployments at 100% (d->lock held). */
static void check_budgets_locked(deployer *d)
{
	for (size_t i = 0; i < d->teams.n; i++) {
		const team *t = &d->teams.v[i];
		if (!(t->budget > 0))
			continue;
		silo_error err;
		int ok;
		double c = team_cost_locked(d, t->name, &err, &ok);
		if (!ok)
			continue;
		bool first = false;
		if (c >= 0.8 * t->budget && dstore_alert_once(d->st, t->name, 80, t->budget, &first, &err) == 0 && first) {
			pthread_mutex_unlock(&d->lock);
			manager_emit(d->m, MGR_EV_BUDGET_WARNING, NULL, NULL, t->name, NULL, NULL,
				     "team %s spent %.6g of its budget %.6g (%.0f%%)", t->name, c, t->budget,
				     100.0 * c / t->budget);
			pthread_mutex_lock(&d->lock);
		}
		if (c < t->budget)
			continue;
		if (dstore_alert_once(d->st, t->name, 100, t->budget, &first, &err) == 0 && first) {
			pthread_mutex_unlock(&d->lock);
			manager_emit(d->m, MGR_EV_BUDGET_EXCEEDED, NULL, NULL, t->name, NULL, "RESOURCE_EXCEEDED",
				     "team %s spent %.6g, its budget is %.6g: its deployments are stopped", t->name, c,
				     t->budget);
			pthread_mutex_lock(&d->lock);
		}
		/* Hard stop: undeploy every deployment of the team. */
		for (;;) {
			dep *p = d->deps;
			while (p && (strcmp(p->row.team, t->name) != 0))
				p = p->next;
			if (!p)
				break;
			char name[DSTORE_NAME_MAX + 1];
			snprintf(name, sizeof name, "%s", p->row.name);
			wait_idle(d, &p, name);
			if (!p)
				continue;
			char why[256];
			snprintf(why, sizeof why, "team %s budget %.6g exhausted (spent %.6g)", t->name, t->budget, c);
			if (remove_locked(d, p, 0, "silod", why, NULL, &err) < 0) {
				log_error("budget stop %s: %s", name, err.message);
				break;
			}
		}
	}
}

static void tick(deployer *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = 0;
	for (dep *p = d->deps; p; p = p->next)
		n++;
	snap *v = xcalloc(n ? n : 1, sizeof *v);
	size_t k = 0;
	uint64_t now = mono_ms();
	for (dep *p = d->deps; p; p = p->next) {
		if (p->busy)
			continue;
		if (!strcmp(p->row.state, "running") && p->row.sandbox_id[0]) {
			snprintf(v[k].name, sizeof v[k].name, "%s", p->row.name);
			snprintf(v[k].sid, sizeof v[k].sid, "%s", p->row.sandbox_id);
			k++;
		} else if (!strcmp(p->row.state, "backoff") && now >= p->next_attempt_ms) {
			snprintf(v[k].name, sizeof v[k].name, "%s", p->row.name);
			v[k].due = true;
			k++;
		}
	}
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < k && !__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE); i++) {
		if (v[i].due)
			respawn_one(d, &v[i]);
		else
			watch_one(d, &v[i]);
	}
	free(v);
	pthread_mutex_lock(&d->lock);
	flush_usage_locked(d);
	if (!d->stopping)   /* d->lock held */
		check_budgets_locked(d);
	pthread_mutex_unlock(&d->lock);
}

static void *thread_main(void *arg)
{
	deployer *d = arg;
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		if (!d->wake) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)d->cfg.interval_ms * 1000000ull;
			ts.tv_sec += (time_t)(ns / 1000000000ull);
			ts.tv_nsec = (long)(ns % 1000000000ull);
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
		}
		d->wake = false;
		if (d->stopping)
			break;
		pthread_mutex_unlock(&d->lock);
		tick(d);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* A sandbox stopped: look now rather than at the next period. Called under
 * the manager's event lock, sometimes from this module while d->lock is held
 * (sandbox_gone emits): so only try the lock; a missed wake-up costs one period. */
static void on_event(void *ud, const mgr_event *ev)
{
	deployer *d = ud;
	if (ev->type != MGR_EV_ERROR && ev->type != MGR_EV_TERMINATED)
		return;
	if (pthread_mutex_trylock(&d->lock) == 0) {
		d->wake = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}

/* ---- open / reconcile / close ---- */

static void reconcile(deployer *d)
{
	dstore_row *rows;
	size_t n;
	silo_error err;
	if (dstore_list(d->st, &rows, &n, &err) < 0) {
		log_error("deploy: reconcile: %s", err.message);
		return;
	}
	/* Live sandboxes that name a deployment (metadata silo.deployment). */
	json_t *live = NULL;
	if (manager_list_json(d->m, NULL, &live, &err) < 0)
		live = json_array();
	uint64_t now = mono_ms();
	for (size_t i = 0; i < n; i++) {
		dstore_row *r = &rows[i];
		json_t *mine = NULL, *s;
		size_t j;
		json_array_foreach(live, j, s) {
			const char *dn = json_string_value(json_object_get(json_object_get(s, "metadata"), META_DEPLOYMENT));
			const char *id = json_string_value(json_object_get(s, "id"));
			if (dn && !strcmp(dn, r->name) && id && (!r->sandbox_id[0] || !strcmp(id, r->sandbox_id)))
				mine = s;
		}
		if (!strcmp(r->state, "stopping")) {
			if (mine)
				manager_delete(d->m, json_string_value(json_object_get(mine, "id")), "silod", 0, &err);
			dstore_delete(d->st, r->name, &err);
			manager_emit(d->m, MGR_EV_DEPLOYMENT, r->sandbox_id, r->name, r->team, "undeployed", NULL,
				     "undeploy finished after a silod restart");
			continue;
		}
		dep *p = xcalloc(1, sizeof *p);
		p->row = *r;
		r->spec_toml = r->overrides_json = NULL;
		if (mine) {
			snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s",
				 json_string_value(json_object_get(mine, "id")));
			snprintf(p->row.state, sizeof p->row.state, "running");
			p->running_since_ms = p->accounted_ms = now;
			log_info("deploy %s: sandbox %s reattached", p->row.name, p->row.sandbox_id);
		} else if (!strcmp(p->row.restart, "never")) {
			dstore_delete(d->st, p->row.name, &err);
			manager_emit(d->m, MGR_EV_DEPLOYMENT, p->row.sandbox_id, p->row.name, p->row.team, "removed", NULL,
				     "sandbox lost across the silod restart; restart policy never: the deployment is removed");
			dstore_row_clear(&p->row);
			free(p);
			continue;
		} else {
			snprintf(p->row.last_error, sizeof p->row.last_error, "sandbox %s lost across the silod restart",
				 p->row.sandbox_id[0] ? p->row.sandbox_id : "(none yet)");
			p->row.sandbox_id[0] = '\0';
			snprintf(p->row.state, sizeof p->row.state, "backoff");
			p->next_attempt_ms = now;   /* respawn at once */
		}
		p->next = d->deps;
		d->deps = p;
		persist(d, p);
	}
	/* Sandboxes that name a deployment that no longer exists: delete them. */
	json_t *s;
	size_t j;
	json_array_foreach(live, j, s) {
		const char *dn = json_string_value(json_object_get(json_object_get(s, "metadata"), META_DEPLOYMENT));
		const char *id = json_string_value(json_object_get(s, "id"));
		if (!dn || !id)
			continue;
		dep *p = find_dep(d, dn);
		if (p && !strcmp(p->row.sandbox_id, id))
			continue;
		log_warn("deploy: deleting sandbox %s of deployment %s, which is not (or no longer) deployed", id, dn);
		if (manager_delete(d->m, id, "silod", 0, &err) < 0)
			log_warn("deploy: delete %s: %s", id, err.message);
	}
	json_decref(live);
	dstore_rows_free(rows, n);
	bundles_gc_locked(d);
}

void deploy_set_normalize(deployer *d, deploy_normalize_fn fn, void *ud)
{
	pthread_mutex_lock(&d->lock);
	d->normalize = fn;
	d->normalize_ud = ud;
	pthread_mutex_unlock(&d->lock);
}

int deploy_open(manager *m, const deploy_config *cfg, deployer **out, silo_error *err)
{
	deployer *d = xcalloc(1, sizeof *d);
	d->m = m;
	d->cfg = *cfg;
	if (!d->cfg.interval_ms)
		d->cfg.interval_ms = 500;
	if (!d->cfg.backoff_ms)
		d->cfg.backoff_ms = 1000;
	if (!d->cfg.backoff_max_ms)
		d->cfg.backoff_max_ms = 60000;
	if (d->cfg.backoff_max_ms < d->cfg.backoff_ms)
		d->cfg.backoff_max_ms = d->cfg.backoff_ms;
	if (!d->cfg.unhealthy_ms)
		d->cfg.unhealthy_ms = 5000;
	d->agents_dir = cfg->agents_dir ? xstrdup(cfg->agents_dir) : NULL;
	d->teams_file = cfg->teams_file ? xstrdup(cfg->teams_file) : NULL;
	d->bundles_dir = xasprintf("%s/bundles", cfg->state_dir ? cfg->state_dir : silo_state_dir());
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->sub = -1;
	if (d->teams_file && parse_teams(d->teams_file, &d->teams, err) < 0)
		goto fail;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/registry.db", cfg->state_dir ? cfg->state_dir : silo_state_dir());
	if (dstore_open(path, &d->st, err) < 0)
		goto fail;
	reconcile(d);
	d->sub = manager_subscribe(m, on_event, d);
	if (pthread_create(&d->thread, NULL, thread_main, d) != 0) {
		silo_fail(err, SILO_ERR_INTERNAL, errno, "cannot start the deployment thread");
		goto fail;
	}
	d->thread_running = true;
	*out = d;
	return 0;
fail:
	deploy_close(d);
	return -1;
}

void deploy_close(deployer *d)
{
	if (!d)
		return;
	if (d->sub >= 0)
		manager_unsubscribe(d->m, d->sub);
	if (d->thread_running) {
		pthread_mutex_lock(&d->lock);
		__atomic_store_n(&d->stopping, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->thread, NULL);
	}
	pthread_mutex_lock(&d->lock);
	flush_usage_locked(d);
	pthread_mutex_unlock(&d->lock);
	while (d->deps) {
		dep *p = d->deps;
		d->deps = p->next;
		dstore_row_clear(&p->row);
		free(p);
	}
	free(d->pending);
	dstore_close(d->st);
	free(d->teams.v);
	free(d->agents_dir);
	free(d->teams_file);
	free(d->bundles_dir);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
}
