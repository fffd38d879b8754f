/* SPDX-License-Identifier: Apache-2.0
 * Templates (sandbox.h, docs/snapshots.md "Templates"): the first start of an
 * image + machine shape boots cold and saves the ready sandbox as a snapshot of
 * kind "template" tagged TPL_TAG_PREFIX + key; later starts restore it.
 *
 * The key is SHA-256 over TPL_KEY_VERSION, the provider, the provider's boot
 * identity (provider_ops.template_identity: accelerator, VMM binary, kernel,
 * initramfs with the agent, root disk) and the spec as hac.toml with what only
 * execs see cleared (name, description, env, metadata, user, workdir, lifetimes; secrets show only
 * their names and sources there). A change
 * to any of those is a different key, so a stale template is never restored:
 * it is simply not found. A template also carries TPL_SHAPE_PREFIX + the hash
 * without the boot identity: saving a new template removes the ones of the same
 * shape under another key (stale: their boot files changed) and older ones
 * under the same key (concurrent first starts), unless in use.
 *
 * A template is an ordinary snapshot: opened with verification (every payload
 * entry against its manifest, cached by the store), held while it is restored,
 * referenced from the sandbox's run directory while it lives. Boot files are
 * checked against the keyring by template_identity, as for a cold boot.
 * Not templated (cold boot every time): specs with network (the guest's
 * addresses are per sandbox) or drives (files outside the snapshot).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "registry/registry.h"
#include "snapshot/snapshot.h"

#define TPL_KEY_VERSION "silo-template-1"
#define TPL_TAG_PREFIX "template-"
#define TPL_SHAPE_PREFIX "template-shape-"
#define TPL_TAG_HEX 40   /* of the key's 64 hex digits: tags are at most SNAP_TAG_MAX - 1 */

static void clear_kv(spec_kv *v, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	*n = 0;
}

int tpl_prepare(const provider_ops *ops, const vm_spec *spec, tpl_plan *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	const char *env = getenv("SILO_TEMPLATES");
	const char *why = env && !strcmp(env, "0")     ? "SILO_TEMPLATES=0"
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
	spec_copy(&n, spec);
	n.name[0] = '\0';
	free(n.description);
	free(n.workdir);
	n.description = n.workdir = NULL;
	clear_kv(n.env, &n.n_env);
	clear_kv(n.metadata, &n.n_metadata);
	free(n.user);
	n.user = NULL;
	n.timeout_s = 0;
	n.boot_timeout_ms = 0;
	char *toml = spec_format(&n);
	spec_free(&n);
	char *text = xasprintf(TPL_KEY_VERSION "\nprovider=%s\n%s\n%s", ops->name, ident, toml ? toml : "");
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

/* Templates of this shape under another key: their kernel, initramfs, image or
 * VMM changed since, so no start will find them again. And older ones under
 * this key (two first starts at once each saved one): keep only keep_id. */
static void prune_stale(const char *shape_t, const char *keep_id)
{
	json_t *l = NULL;
	silo_error e = {0};
	if (snap_list_json(&l, &e) < 0) {
		log_warn("templates: %s", e.message);
		return;
	}
	size_t i;
	json_t *s;
	json_array_foreach(l, i, s) {
		const char *id = json_string_value(json_object_get(s, "id"));
		if (id && strcmp(id, keep_id) != 0 && has_tag(s, shape_t) &&
		    !strcmp(json_string_value(json_object_get(s, "kind")) ?: "", "template")) {
			log_info("template %s is replaced by %s: removing it", id, keep_id);
			tpl_discard(id);   /* CONFLICT (kept) while a sandbox uses it or a restore holds it */
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
	snap_meta meta = {.provider = sb->ops->name, .source = sb->id, .spec = &sb->spec, .tags = tags};
	if (snap_commit(w, &meta, &info, &e) < 0)
		goto fail;
	snprintf(sb->template_id, sizeof sb->template_id, "%s", info.id);
	log_info("%s: saved template %s (%s, %llu bytes) in %llu ms", sb->id, info.id, tag,
		 (unsigned long long)info.bytes, (unsigned long long)((now_mono_ns() - t0) / 1000000));
	prune_stale(stag, info.id);
	snap_info_free(&info);
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
