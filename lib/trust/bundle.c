/* SPDX-License-Identifier: Apache-2.0
 * Bundle contents: the tar reader behind trust_bundle_walk() (trust.h).
 *
 * A bundle's signature is checked first, but its bytes are still parsed as
 * hostile input (a trusted key can sign a mistake): every field is bounded and
 * every entry validated before the callback sees it; nothing is written here.
 * Format (POSIX.1-2001 pax / ustar, plus GNU long names), 512-byte blocks:
 *   header: name[100] mode[8] uid[8] gid[8] size[12] mtime[12] chksum[8]
 *           type[1] linkname[100] magic[6] version[2] uname[32] gname[32]
 *           devmajor[8] devminor[8] prefix[155] pad[12]
 *   data:   size bytes, padded to a block; the archive ends with a zero block.
 * Numbers are octal (base-256 sizes are refused: bundles are below 8 GiB).
 * Types: '0'/'\0'/'7' file, '5' directory, 'x' pax header (path, size), 'g'
 * global pax header (ignored), 'L' GNU long name, 'K' GNU long link name (its
 * link is refused anyway); '1' '2' '3' '4' '6' (links, devices, FIFOs) refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "trust/trust.h"

#define BLK 512
#define PAX_MAX (64u << 10)

static bool zero_block(const uint8_t *b)
{
	for (size_t i = 0; i < BLK; i++)
		if (b[i])
			return false;
	return true;
}

/* Octal field: optional leading spaces, digits, then NUL/space padding. */
static bool octal(const uint8_t *f, size_t n, uint64_t *out)
{
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v > (UINT64_MAX >> 3))
			return false;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	*out = v;
	return digits > 0;
}

static bool checksum_ok(const uint8_t *h)
{
	uint64_t want;
	if (!octal(h + 148, 8, &want))
		return false;
	uint64_t u = 0;
	int64_t sgn = 0;
	for (size_t i = 0; i < BLK; i++) {
		uint8_t c = i >= 148 && i < 156 ? ' ' : h[i];
		u += c;
		sgn += (int8_t)c;
	}
	return want == u || (int64_t)want == sgn;
}

static char *field(const uint8_t *f, size_t n)
{
	size_t l = 0;
	while (l < n && f[l])
		l++;
	return xstrndup((const char *)f, l);
}

/* Normalize into out (relative, no "." or empty components); NULL when it is
 * the archive root ("." or "./"), else an error message. */
static const char *normalize(const char *in, char *out, size_t cap, bool *root)
{
	*root = false;
	if (in[0] == '/')
		return "absolute path";
	size_t o = 0;
	const char *p = in;
	for (const unsigned char *c = (const unsigned char *)in; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return "control character in the name";
	while (*p) {
		size_t l = strcspn(p, "/");
		if (l == 2 && !strncmp(p, "..", 2))
			return "\"..\" in the path";
		if (l && !(l == 1 && p[0] == '.')) {
			if (o + l + 1 >= cap)
				return "path too long";
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, l);
			o += l;
		}
		p += l;
		p += strspn(p, "/");
	}
	out[o] = '\0';
	*root = o == 0;
	return NULL;
}

/* pax records "LEN key=value\n": keep path and size. */
static const char *parse_pax(const uint8_t *d, uint64_t n, char **path, uint64_t *size, bool *has_size)
{
	uint64_t off = 0;
	while (off < n) {
		uint64_t len = 0, i = off;
		while (i < n && d[i] >= '0' && d[i] <= '9' && len <= PAX_MAX)
			len = len * 10 + (uint64_t)(d[i++] - '0');
		if (i == off || i >= n || d[i] != ' ' || len < 5 || len > n - off || d[off + len - 1] != '\n')
			return "malformed pax record";
		const uint8_t *kv = d + i + 1, *end = d + off + len - 1;
		const uint8_t *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq)
			return "pax record without '='";
		size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
		if (kl == 4 && !memcmp(kv, "path", 4)) {
			if (memchr(eq + 1, '\0', vl) || vl > TRUST_BUNDLE_PATH_MAX)
				return "pax path too long or with a NUL";
			free(*path);
			*path = xstrndup((const char *)eq + 1, vl);
		} else if (kl == 4 && !memcmp(kv, "size", 4)) {
			uint64_t v = 0;
			if (!vl || vl > 19)
				return "malformed pax size";
			for (size_t k = 0; k < vl; k++) {
				if (eq[1 + k] < '0' || eq[1 + k] > '9')
					return "malformed pax size";
				v = v * 10 + (uint64_t)(eq[1 + k] - '0');
			}
			*size = v;
			*has_size = true;
		}
		off += len;
	}
	return NULL;
}

int trust_bundle_walk(const void *tar, size_t len, trust_bundle_fn fn, void *ud, silo_error *err)
{
	const uint8_t *b = tar;
	uint64_t off = 0;
	size_t entries = 0;
	char *pending = NULL;      /* path from a pax header or a GNU long name */
	uint64_t pax_size = 0;
	bool has_pax_size = false, ended = false;
	int rc = -1;
	char norm[TRUST_BUNDLE_PATH_MAX + 1];
#define BAD(...)                                                                                        \
	do {                                                                                           \
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, __VA_ARGS__);                              \
		goto out;                                                                              \
	} while (0)
	while (off + BLK <= len) {
		const uint8_t *h = b + off;
		if (zero_block(h)) {
			ended = true;
			break;
		}
		if (memcmp(h + 257, "ustar", 5) != 0)
			BAD("bundle: the header at offset %llu is not a POSIX tar (ustar) header", (unsigned long long)off);
		if (!checksum_ok(h))
			BAD("bundle: bad header checksum at offset %llu", (unsigned long long)off);
		uint64_t size;
		if (!octal(h + 124, 12, &size))
			BAD("bundle: entry at offset %llu: malformed size", (unsigned long long)off);
		char type = (char)h[156];
		if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
			if (size > PAX_MAX || size > len - off - BLK)
				BAD("bundle: extended header at offset %llu: %llu bytes (limit %u, or past the end)",
				    (unsigned long long)off, (unsigned long long)size, PAX_MAX);
			const uint8_t *d = h + BLK;
			const char *why = NULL;
			if (type == 'x') {
				why = parse_pax(d, size, &pending, &pax_size, &has_pax_size);
			} else if (type == 'L') {
				if (size > TRUST_BUNDLE_PATH_MAX + 1)
					why = "GNU long name too long";
				free(pending);
				pending = why ? NULL : field(d, (size_t)size);
			}
			if (why)
				BAD("bundle: extended header at offset %llu: %s", (unsigned long long)off, why);
			off += BLK + (size + BLK - 1) / BLK * BLK;
			continue;
		}
		if (has_pax_size)
			size = pax_size;
		cleanup_free char *name = NULL;
		if (pending) {
			name = pending;
			pending = NULL;
		} else {
			cleanup_free char *n = field(h, 100), *pre = field(h + 345, 155);
			name = *pre && !memcmp(h + 257, "ustar\0", 6) ? xasprintf("%s/%s", pre, n) : xstrdup(n);
		}
		bool root;
		const char *why = normalize(name, norm, sizeof norm, &root);
		if (why)
			BAD("bundle: entry \"%.200s\" (offset %llu): %s", name, (unsigned long long)off, why);
		bool file = type == '0' || type == '\0' || type == '7', dir = type == '5';
		if (!file && !dir) {
			const char *kind = type == '1' ? "a hard link" : type == '2' ? "a symlink"
					   : type == '3' || type == '4' ? "a device" : type == '6' ? "a FIFO" : NULL;
			if (kind)
				BAD("bundle: entry \"%.200s\" is %s: only regular files and directories are unpacked "
				    "(build the bundle with tar --dereference / -h)",
				    norm, kind);
			BAD("bundle: entry \"%.200s\" (offset %llu): unknown type '%c'", norm, (unsigned long long)off,
			    type >= 0x20 && type < 0x7f ? type : '?');
		}
		if (size > len - off - BLK)
			BAD("bundle: entry \"%.200s\": %llu bytes run past the end of the archive", norm,
			    (unsigned long long)size);
		uint64_t mode;
		if (!octal(h + 100, 8, &mode))
			BAD("bundle: entry \"%.200s\": malformed mode", norm);
		if (root && file)
			BAD("bundle: a file entry at offset %llu has no name", (unsigned long long)off);
		if (!root) {
			if (++entries > TRUST_BUNDLE_ENTRIES_MAX)
				BAD("bundle: more than %d entries", TRUST_BUNDLE_ENTRIES_MAX);
			trust_bundle_entry e = {
				.path = norm,
				.dir = dir,
				.mode = (uint32_t)(mode & 0777),
				.data = file ? h + BLK : NULL,
				.size = file ? size : 0,
			};
			if (fn && fn(ud, &e, err) < 0)
				goto out;
		}
		has_pax_size = false;
		off += BLK + (size + BLK - 1) / BLK * BLK;
	}
	if (pending || has_pax_size)
		BAD("bundle: an extended header is not followed by an entry");
	if (!ended)
		BAD("bundle: truncated (no end-of-archive block after offset %llu)", (unsigned long long)off);
	rc = 0;
out:
#undef BAD
	free(pending);
	return rc;
}
