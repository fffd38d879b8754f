/* SPDX-License-Identifier: Apache-2.0
 * Templates (sandbox.h, docs/snapshots.md "Templates"): the first start of an
 * image + machine shape boots cold and saves the ready sandbox as a snapshot of
 * kind "template" tagged TPL_TAG_PREFIX + key; later starts restore it.
 *
 * The key is SHA-256 over TPL_KEY_VERSION, the host (Silo and wire protocol
 * versions), the provider, the provider's boot identity
 * (provider_ops.template_identity: accelerator, VMM binary, kernel, initramfs
 * with the agent, root disk) and the spec in key_spec form: as hac.toml with
 * what only execs see cleared (name, description, env, metadata, user, workdir,
 * lifetimes, provider; secrets show only their names and sources there) and the
 * default image named. A change to any of those is a different key, so a stale
 * template is never restored: it is simply not found. A template also carries
 * TPL_SHAPE_PREFIX + the hash without the boot identity.
 *
 * Lifecycle: a save first looks for a template of its key (another first
 * start saved one meanwhile: no second save); after it, of its key only the
 * newest template is kept (newer(): every process picks the same one) and the
 * ones of its shape under another key go (stale); then tpl_gc bounds the store
 * (SILO_TEMPLATE_MAX_MB, least recently used first; "used" = the mtime of the
 * snapshot's directory, which each restore's hold moves). `snapshot gc` runs
 * tpl_gc with the stale check: every template's key computed again from the
 * key_spec it stores. Nothing is removed while in use or held (the store's
 * delete answers CONFLICT).
 *
 * A template is an ordinary snapshot: opened with verification (every payload
 * entry against its manifest, cached by the store), held while it is restored,
 * referenced from the sandbox's run directory while it lives. Boot files are
 * checked against the keyring by template_identity, as for a cold boot.
 * Not templated (cold boot every time): specs with network (the guest's
 * addresses are per sandbox) or drives (files outside the snapshot).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "registry/registry.h"
#include "snapshot/snapshot.h"
#include "wire.h"

#define TPL_KEY_VERSION "silo-template-1"
#define TPL_TAG_PREFIX "template-"
#define TPL_SHAPE_PREFIX "template-shape-"
#define TPL_TAG_HEX 40   /* of the key's 64 hex digits: tags are at most SNAP_TAG_MAX - 1 */
#define TPL_MAX_MB_DEFAULT 2048   /* SILO_TEMPLATE_MAX_MB: the template store's bound */
#define TPL_MAX_MB_LIMIT (1 << 20)

static void clear_kv(spec_kv *v, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	*n = 0;
}

/* The spec as the key sees it: what only execs see cleared, the provider left
 * to the key's own line, and the default image named (vm_plan_boot boots
 * "base" when nothing says what boots), so `image` unset and `image = "base"`
 * are one template. Templates store this form (no creator's name, env or
 * metadata in the store), and tpl_gc recomputes keys from it. */
static void key_spec(const vm_spec *in, vm_spec *n)
{
	spec_copy(n, in);
	n->name[0] = '\0';
	free(n->description);
	free(n->workdir);
	free(n->user);
	free(n->provider);
	n->description = n->workdir = n->user = n->provider = NULL;
	clear_kv(n->env, &n->n_env);
	clear_kv(n->metadata, &n->n_metadata);
	n->timeout_s = 0;
	n->boot_timeout_ms = 0;
	if (!n->image && !n->initrd && !n->kernel && !n->rootfs)
		n->image = xstrdup("base");
}

static bool templates_off(void)
{
	const char *env = getenv("SILO_TEMPLATES");
	return env && !strcmp(env, "0");
}

int tpl_prepare(const provider_ops *ops, const vm_spec *spec, tpl_plan *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	const char *why = templates_off()              ? "SILO_TEMPLATES=0"
			  : !ops->template_identity || !ops->snapshot || !ops->restore
				  ? "the provider has no templates"
			  : spec->network ? "network = true"
			  : spec->n_drives ? "the spec has drives"
					   : NULL;
	if (why) {
		snprintf(out->why, sizeof out->why, "%s", why);
		return 0;
	}
	char *ident = NULL;
	if (ops->template_identity(spec, &ident, err) < 0)
		return -1;
	vm_spec n;
	key_spec(spec, &n);
	char *toml = spec_format(&n);
	spec_free(&n);
	/* the host side too: another silo or wire protocol talks to the agent and
	 * builds the VMM's devices its own way; the agent itself is in the
	 * initramfs, whose identity is in ident */
	char *text = xasprintf(TPL_KEY_VERSION "\nhost=" SILO_VERSION " wire=%d\nprovider=%s\n%s\n%s", WIRE_VERSION,
			       ops->name, ident, toml ? toml : "");
	registry_sha256_hex(text, strlen(text), out->key);
	free(text);
	text = xasprintf(TPL_KEY_VERSION "\nprovider=%s\n%s", ops->name, toml ? toml : "");
	registry_sha256_hex(text, strlen(text), out->shape);
	free(text);
	free(toml);
	free(ident);
	out->use = true;
	return 0;
}

static void key_tag(const char *key, char *tag, size_t len)
{
	snprintf(tag, len, TPL_TAG_PREFIX "%.*s", TPL_TAG_HEX, key);
}

static void shape_tag(const char *shape, char *tag, size_t len)
{
	snprintf(tag, len, TPL_SHAPE_PREFIX "%.*s", TPL_TAG_HEX, shape);
}

static bool has_tag(json_t *snap, const char *tag)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(snap, "tags"), i, t)
		if (!strcmp(json_string_value(t) ?: "", tag))
			return true;
	return false;
}

static bool is_template(json_t *snap)
{
	return !strcmp(json_string_value(json_object_get(snap, "kind")) ?: "", "template");
}

static const char *snap_id(json_t *snap)
{
	return json_string_value(json_object_get(snap, "id")) ?: "";
}

/* Does a come after b: newer, or as new with the greater id. Every process
 * that lists the same templates picks the same newest. */
static bool newer(json_t *a, json_t *b)
{
	json_int_t ca = json_integer_value(json_object_get(a, "created_ms"));
	json_int_t cb = json_integer_value(json_object_get(b, "created_ms"));
	return ca != cb ? ca > cb : strcmp(snap_id(a), snap_id(b)) > 0;
}

/* Remove one template unless in use or being restored; note it in removed. */
static bool gc_remove(const char *id, const char *why, json_t *removed)
{
	silo_error e = {0};
	if (snap_delete(id, false, &e) < 0) {
		if (e.code != SILO_ERR_CONFLICT && e.code != SILO_ERR_VM_NOT_FOUND)
			log_warn("template %s: not removed: %s", id, e.message);
		return false;
	}
	log_info("template %s removed: %s", id, why);
	if (removed)
		json_array_append_new(removed, json_string(id));
	return true;
}

/* After a save: of the templates under key_t keep only the newest (first
 * starts at once each saved one; both of them prune, and both keep the same
 * one), and remove the ones of this shape under another key: their kernel,
 * initramfs, image or VMM changed since, so no start finds them again. */
static void prune_stale(const char *key_t, const char *shape_t)
{
	json_t *l = NULL;
	silo_error e = {0};
	if (snap_list_json(&l, &e) < 0) {
		log_warn("templates: %s", e.message);
		return;
	}
	size_t i;
	json_t *s, *keep = NULL;
	json_array_foreach(l, i, s)
		if (is_template(s) && has_tag(s, key_t) && (!keep || newer(s, keep)))
			keep = s;
	json_array_foreach(l, i, s) {
		if (s != keep && is_template(s) && has_tag(s, shape_t)) {
			/* kept while a sandbox uses it or a restore holds it */
			gc_remove(snap_id(s), keep && has_tag(s, key_t) ? "a newer one of its key exists" : "stale: replaced by a new boot identity", NULL);
		}
	}
	json_decref(l);
}

int tpl_find(const char *key, char id[SILO_ID_MAX], char payload[PATH_MAX + 16], char *hold, size_t hold_len)
{
	char tag[SNAP_TAG_MAX];
	key_tag(key, tag, sizeof tag);
	silo_error e = {0};
	if (snap_resolve(tag, id, &e) < 0)
		return 0;   /* none yet */
	snap_info s;
	if (snap_open(id, true, &s, &e) < 0) {
		log_warn("template %s (%s): %s: booting cold", id, tag, e.message);
		tpl_discard(id);
		return 0;
	}
	int found = strcmp(s.kind, "template") == 0;
	if (found && snap_hold(s.id, hold, hold_len, &e) < 0) {
		log_warn("template %s: %s: booting cold", s.id, e.message);
		found = 0;
	}
	if (found)
		snprintf(payload, PATH_MAX + 16, "%s", s.payload);
	snap_info_free(&s);
	return found;
}

void tpl_save(sandbox *sb, const tpl_plan *plan)
{
	uint64_t t0 = now_mono_ns();
	silo_error e = {0};
	snap_writer *w = NULL;
	char tag[SNAP_TAG_MAX], stag[SNAP_TAG_MAX];
	key_tag(plan->key, tag, sizeof tag);
	shape_tag(plan->shape, stag, sizeof stag);
	char *tags[] = {tag, stag, NULL};
	snap_info info;
	char have[SILO_ID_MAX];
	if (snap_resolve(tag, have, &e) == 0) {
		/* another start of this key saved one while this one booted */
		log_info("%s: template %s exists: not saving another", sb->id, have);
		return;
	}
	if (snap_begin("template", &w, &e) < 0)
		goto fail;
	/* the pause and resume of this save are not the sandbox's own state changes */
	sb_state_cb cb = sb->on_state;
	sb->on_state = NULL;
	int rc = sandbox_snapshot(sb, snap_writer_payload(w), false, &e);
	sb->on_state = cb;
	if (rc < 0) {
		snap_abort(w);
		goto fail;
	}
	vm_spec ks;
	key_spec(&sb->spec, &ks);
	snprintf(ks.name, sizeof ks.name, "template");   /* a stored spec has a name; the key ignores it */
	snap_meta meta = {.provider = sb->ops->name, .source = sb->id, .spec = &ks, .tags = tags};
	rc = snap_commit(w, &meta, &info, &e);
	spec_free(&ks);
	if (rc < 0)
		goto fail;
	snprintf(sb->template_id, sizeof sb->template_id, "%s", info.id);
	log_info("%s: saved template %s (%s, %llu bytes) in %llu ms", sb->id, info.id, tag,
		 (unsigned long long)info.bytes, (unsigned long long)((now_mono_ns() - t0) / 1000000));
	prune_stale(tag, stag);
	snap_info_free(&info);
	if (tpl_gc(false, NULL, &e) < 0)   /* the size bound */
		log_warn("templates: %s", e.message);
	return;
fail:
	log_warn("%s: template not saved (the next start boots cold again): %s", sb->id, e.message);
}

void tpl_discard(const char *id)
{
	silo_error e = {0};
	if (snap_delete(id, false, &e) < 0)
		log_warn("template %s: not removed: %s", id, e.message);
}

uint64_t tpl_max_bytes(void)
{
	const char *v = getenv("SILO_TEMPLATE_MAX_MB");
	uint64_t mb = TPL_MAX_MB_DEFAULT;
	if (v && *v) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(v, &end, 10);
		if (errno || *end || x < 1 || x > TPL_MAX_MB_LIMIT)
			log_warn("SILO_TEMPLATE_MAX_MB=%.32s: expected 1-%d (MiB): using %d", v, TPL_MAX_MB_LIMIT,
				 TPL_MAX_MB_DEFAULT);
		else
			mb = x;
	}
	return mb << 20;
}

/* Is template s still what a start of its spec would look up? Its key is
 * computed again from the spec it stores (key_spec form) and today's boot
 * files: a rebuilt image, kernel or agent, another QEMU, a removed image or a
 * boot file the keyring now refuses all make it stale. */
static bool is_current(json_t *s)
{
	snap_info info;
	silo_error e = {0};
	if (snap_open(snap_id(s), false, &info, &e) < 0)
		return e.code == SILO_ERR_VM_NOT_FOUND;   /* gone meanwhile: nothing to do */
	const provider_ops *ops = provider_find(info.provider);
	tpl_plan p = {0};
	bool ok = false;
	if (ops && info.have_spec && tpl_prepare(ops, &info.spec, &p, &e) == 0 && p.use) {
		char tag[SNAP_TAG_MAX];
		key_tag(p.key, tag, sizeof tag);
		ok = has_tag(s, tag);
	}
	snap_info_free(&info);
	return ok;
}

typedef struct lru_entry {
	json_t *snap;
	struct timespec used;   /* the directory's mtime: a restore's hold moves it */
} lru_entry;

static int by_use(const void *a, const void *b)
{
	const lru_entry *x = a, *y = b;
	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	return x->used.tv_nsec < y->used.tv_nsec ? -1 : x->used.tv_nsec > y->used.tv_nsec;
}

int tpl_gc(bool stale, json_t *removed, silo_error *err)
{
	json_t *l = NULL;
	if (snap_list_json(&l, err) < 0)
		return -1;
	stale = stale && !templates_off();   /* then no key can be computed: keep them all */
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	lru_entry *v = xcalloc(json_array_size(l) + 1, sizeof *v);
	size_t n = 0, i;
	uint64_t total = 0;
	json_t *s;
	json_array_foreach(l, i, s) {
		if (!is_template(s))
			continue;
		if (stale && !is_current(s) && gc_remove(snap_id(s), "stale (its image, kernel, agent or VMM changed)", removed))
			continue;
		char dir[PATH_MAX + SILO_ID_MAX + 2];
		snprintf(dir, sizeof dir, "%s/%s", root, snap_id(s));
		struct stat st;
		if (stat(dir, &st) < 0)
			continue;
		v[n++] = (lru_entry){.snap = s, .used = st.st_mtim};
		total += (uint64_t)json_integer_value(json_object_get(s, "bytes"));
	}
	/* least recently used first, until the store fits the bound */
	qsort(v, n, sizeof *v, by_use);
	uint64_t max = tpl_max_bytes();
	for (i = 0; i < n && total > max; i++) {
		uint64_t b = (uint64_t)json_integer_value(json_object_get(v[i].snap, "bytes"));
		if (gc_remove(snap_id(v[i].snap), "least recently used beyond SILO_TEMPLATE_MAX_MB", removed))
			total -= b;
	}
	free(v);
	json_decref(l);
	return 0;
}
