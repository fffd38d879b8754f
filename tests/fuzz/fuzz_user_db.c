/* SPDX-License-Identifier: Apache-2.0
 * Fuzz user_resolve (lib/core/defaults.c): /etc/passwd and /etc/group come
 * from inside a sandbox and are hostile. The input is split at the first two
 * NUL bytes into a user string, a passwd text and a group text. Every result
 * is an id pair within 0..2^32-2, or INVALID_CONFIG; a name found must be on
 * a line of the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/defaults.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *z1 = memchr(p, '\0', size);
	if (!z1)
		return 0;
	const char *rest = z1 + 1;
	size_t rl = size - (size_t)(rest - p);
	const char *z2 = memchr(rest, '\0', rl);
	size_t plen = z2 ? (size_t)(z2 - rest) : rl;
	const char *group = z2 ? z2 + 1 : "";
	size_t glen = z2 ? rl - plen - 1 : 0;
	/* copies without a terminator: the parser must respect the lengths */
	char *pw = malloc(plen ? plen : 1), *gr = malloc(glen ? glen : 1);
	memcpy(pw, rest, plen);
	memcpy(gr, group, glen);
	int64_t uid, gid;
	silo_error e;
	int rc = user_resolve(p, pw, plen, gr, glen, &uid, &gid, &e);
	if (rc == 0 && (uid < 0 || gid < 0 || uid > 0xfffffffe || gid > 0xfffffffe))
		abort();
	if (rc != 0 && e.code != SILO_ERR_INVALID_CONFIG)
		abort();
	free(pw);
	free(gr);
	return 0;
}
