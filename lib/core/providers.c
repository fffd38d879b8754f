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

static void why_append(char *why, size_t why_len, const char *name, const char *reason)
{
	if (!why || !why_len)
		return;
	size_t n = strlen(why);
	if (n >= why_len - 1)
		return;
	snprintf(why + n, why_len - n, "%s%s: %s", n ? "; " : "", name, reason[0] ? reason : "unavailable");
}

const provider_ops *provider_select(const char *requested, const char *fallback, char *why,
				    size_t why_len, silo_error *err)
{
	if (why && why_len)
		why[0] = '\0';
	if (requested && *requested && strcmp(requested, "auto") != 0) {
		const provider_ops *p = provider_find(requested);
		if (!p)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "provider: unknown provider \"%s\" (known: kvm, qemu, namespace)",
					 requested),
			       NULL;
		provider_info info = {.name = p->name};
		p->probe(&info);
		if (!info.available) {
			why_append(why, why_len, p->name, info.reason);
			silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "provider %s is not available: %s",
				  p->name, info.reason[0] ? info.reason : "probe failed");
			return NULL;
		}
		return p;
	}
	const char *order = fallback && *fallback ? fallback : "kvm,qemu,namespace";
	char buf[256];
	snprintf(buf, sizeof buf, "%s", order);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		const provider_ops *p = provider_find(tok);
		if (!p) {
			why_append(why, why_len, tok, "not built into this silo");
			continue;
		}
		provider_info info = {.name = p->name};
		p->probe(&info);
		if (info.available)
			return p;
		why_append(why, why_len, p->name, info.reason);
	}
	silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "no provider available (tried %s): %s", order,
		  why && why[0] ? why : "none usable");
	return NULL;
}
