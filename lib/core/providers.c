/* SPDX-License-Identifier: Apache-2.0
 * The provider table (STYLE: one static const ops struct per provider, listed
 * here) and provider selection with fallback.
 */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/provider.h"

extern const provider_ops qemu_provider;
extern const provider_ops namespace_provider;
extern const provider_ops kvm_provider;

/* Default fallback order: strongest isolation first. */
static const provider_ops *const providers[] = {
	&kvm_provider,
	&qemu_provider,
	&namespace_provider,
	NULL,
};

const provider_ops *const *provider_all(void)
{
	return providers;
}

const provider_ops *provider_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; providers[i]; i++)
		if (!strcmp(providers[i]->name, name))
			return providers[i];
	return NULL;
}

const char *provider_isolation(const provider_ops *p)
{
	return p && p->vm ? "vm" : "namespace";
}

static void why_append(char *why, size_t why_len, const char *name, const char *reason)
{
	if (!why || !why_len)
		return;
	size_t n = strlen(why);
	if (n >= why_len - 1)
		return;
	snprintf(why + n, why_len - n, "%s%s: %s", n ? "; " : "", name, reason[0] ? reason : "unavailable");
}

static int need_vm_fail(silo_error *err, const char *need_vm_by, const char *what, const char *why)
{
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "isolation \"vm\" is required (%s) and %s%s%s",
			 need_vm_by, what, why && why[0] ? ": " : "", why ? why : "");
}

int provider_choose(const char *requested, const char *fallback, const char *need_vm_by, provider_choice *out,
		    silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (requested && *requested && strcmp(requested, "auto") != 0) {
		const provider_ops *p = provider_find(requested);
		if (!p)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "provider: unknown provider \"%s\" (known: kvm, qemu, namespace)", requested);
		if (need_vm_by && !p->vm) {
			char what[96];
			snprintf(what, sizeof what, "provider \"%s\" shares the host kernel", p->name);
			return need_vm_fail(err, need_vm_by, what, NULL);
		}
		provider_info info = {.name = p->name};
		p->probe(&info);
		if (!info.available) {
			why_append(out->why, sizeof out->why, p->name, info.reason);
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "provider %s is not available: %s", p->name,
					 info.reason[0] ? info.reason : "probe failed");
		}
		out->ops = p;
		return 0;
	}
	const char *order = fallback && *fallback ? fallback : "kvm,qemu,namespace";
	char buf[256];
	snprintf(buf, sizeof buf, "%s", order);
	char *save = NULL;
	bool vm_skipped = false, vm_listed = false;
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		const provider_ops *p = provider_find(tok);
		if (!p) {
			why_append(out->why, sizeof out->why, tok, "not built into this silo");
			continue;
		}
		vm_listed |= p->vm;
		if (need_vm_by && !p->vm)
			continue;   /* not a candidate; the message names the vm providers' reasons */
		provider_info info = {.name = p->name};
		p->probe(&info);
		if (info.available) {
			out->ops = p;
			out->fell_back = vm_skipped && !p->vm;
			return 0;
		}
		vm_skipped |= p->vm;
		why_append(out->why, sizeof out->why, p->name, info.reason);
	}
	if (need_vm_by) {
		char what[320];
		snprintf(what, sizeof what, vm_listed ? "no vm provider in the order (%s) is available"
						      : "the provider order (%s) has no vm provider", order);
		return need_vm_fail(err, need_vm_by, what, out->why);
	}
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "no provider available (tried %s): %s", order,
			 out->why[0] ? out->why : "none usable");
}

const provider_ops *provider_select(const char *requested, const char *fallback, char *why, size_t why_len,
				    silo_error *err)
{
	provider_choice c;
	int rc = provider_choose(requested, fallback, NULL, &c, err);
	if (why && why_len)
		snprintf(why, why_len, "%s", c.why);
	return rc < 0 ? NULL : c.ops;
}
