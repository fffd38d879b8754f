/* SPDX-License-Identifier: Apache-2.0
 * Streaming tar reader (tar.h). Byte format (POSIX.1-2001 ustar/pax, GNU tar):
 *   one 512-byte header block, then the data rounded up to 512 bytes; the archive
 *   ends with a zero block (a second one and any record padding may follow) or, as
 *   GNU tar accepts, with the end of input at a header boundary.
 *   header: name[100] mode[8] uid[8] gid[8] size[12] mtime[12] chksum[8] type[1]
 *           linkname[100] magic[6] version[2] uname[32] gname[32] devmajor[8]
 *           devminor[8] prefix[155] (ustar only; GNU keeps other fields there)
 *   numbers: octal digits between optional spaces/NULs, or GNU base-256 (first byte
 *            0x80, big-endian value in the rest; negative values are refused)
 *   checksum: sum of the header bytes with chksum taken as spaces (unsigned; the
 *             signed sum of old writers is accepted too)
 *   pax record: "<len> <key>=<value>\n", len counting the whole record
 * The reader holds no state across entries except the pending pax/GNU overrides
 * and the data still to skip; all memory it hands out lives until the next call.
 */
#include "oci/tar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define BLK 512

struct tar_reader {
	tar_read_fn fn;
	void *ud;
	uint64_t blocks;        /* header blocks consumed (for messages) */
	uint64_t left;          /* data bytes of the current entry not yet read */
	uint64_t pad;           /* padding after them */
	bool ended;
	tar_entry e;
	unsigned char *pax;     /* current pax header text */
};

const char *tar_quote(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	if (len < 8) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (o + 8 >= len || o >= 160) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			buf[o++] = (char)*p;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
	}
	buf[o] = '\0';
	return buf;
}

int tar_entry_fail(silo_error *err, silo_code code, int e, const char *prefix, const char *path, const char *fmt,
		   va_list ap)
{
	char msg[512], q[200];
	vsnprintf(msg, sizeof msg, fmt, ap);
	return silo_fail(err, code, e, "%s \"%s\": %s", prefix, tar_quote(path, q, sizeof q), msg);
}

tar_reader *tar_reader_new(tar_read_fn fn, void *ud)
{
	tar_reader *r = xcalloc(1, sizeof *r);
	r->fn = fn;
	r->ud = ud;
	return r;
}

/* Free what an entry or a pending header owns: path, link, the extended attributes. */
static void names_free(char *path, char *link, tar_xattr *x, size_t n)
{
	free(path);
	free(link);
	for (size_t i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
}

static void entry_clear(tar_entry *e)
{
	names_free(e->path, e->link, e->xattrs, e->n_xattrs);
	memset(e, 0, sizeof *e);
}

void tar_reader_free(tar_reader *r)
{
	if (!r)
		return;
	entry_clear(&r->e);
	free(r->pax);
	free(r);
}

/* Fill buf with exactly n bytes: 0, 1 when the input ended before any byte,
 * -1 on error (a short read after some bytes is a truncated archive). */
static int read_full(tar_reader *r, void *buf, size_t n, silo_error *err)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = r->fn(r->ud, (char *)buf + got, n - got, err);
		if (k < 0)
			return -1;
		if (k == 0) {
			if (got == 0)
				return 1;
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "tar: archive truncated after header block %" PRIu64, r->blocks);
		}
		got += (size_t)k;
	}
	return 0;
}

static int skip_bytes(tar_reader *r, uint64_t n, silo_error *err)
{
	unsigned char buf[8192];
	while (n > 0) {
		size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
		int rc = read_full(r, buf, k, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "tar: archive truncated inside the data of header block %" PRIu64, r->blocks);
		n -= k;
	}
	return 0;
}

/* Octal or base-256 number field. */
static int parse_num(const unsigned char *f, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -1;   /* negative, or more than the field can carry here */
		for (size_t i = 1; i < n; i++) {
			if (v >> 55)
				return -1;
			v = (v << 8) | f[i];
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < n && (f[i] == ' ' || f[i] == '\0'))
		i++;
	if (i == n) {
		*out = 0;   /* an empty field (devmajor of a file, for one) */
		return 0;
	}
	bool digits = false;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = (v << 3) | (uint64_t)(f[i] - '0');
		digits = true;
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	if (!digits)
		return -1;
	*out = v;
	return 0;
}

static int parse_dec(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* pax mtime: [-]digits[.digits] */
static int parse_pax_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec)
{
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0, dot = n;
	for (size_t j = i; j < n; j++)
		if (s[j] == '.') {
			dot = j;
			break;
		}
	uint64_t v;
	if (parse_dec(s + i, dot - i, (uint64_t)INT64_MAX, &v) < 0)
		return -1;
	uint32_t ns = 0;
	if (dot < n) {
		size_t k = 0;
		for (size_t j = dot + 1; j < n; j++, k++) {
			if (s[j] < '0' || s[j] > '9')
				return -1;
			if (k < 9)
				ns = ns * 10 + (uint32_t)(s[j] - '0');
		}
		if (k == 0)
			return -1;
		for (; k < 9; k++)
			ns *= 10;
	}
	*sec = neg ? -(int64_t)v : (int64_t)v;
	*nsec = ns;
	return 0;
}

typedef struct pending {
	char *path, *link;     /* pax or GNU overrides */
	bool has_size, has_uid, has_gid, has_mtime;
	uint64_t size, uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	tar_xattr xattrs[TAR_XATTR_MAX];
	size_t n_xattrs;
} pending;

static void pending_clear(pending *p)
{
	names_free(p->path, p->link, p->xattrs, p->n_xattrs);
	memset(p, 0, sizeof *p);
}

static int bad(tar_reader *r, silo_error *err, const char *what)
{
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "tar: header block %" PRIu64 ": %s", r->blocks, what);
}

static int pax_set_string(char **dst, const char *v, size_t n)
{
	if (n > TAR_NAME_MAX || memchr(v, '\0', n))
		return -1;
	free(*dst);
	*dst = n ? xstrndup(v, n) : NULL;   /* an empty value removes the override */
	return 0;
}

/* Parse one pax header (global: syntax only). */
static int parse_pax(tar_reader *r, const char *t, size_t len, bool global, pending *p, silo_error *err)
{
	size_t off = 0;
	while (off < len) {
		size_t i = off, dl = 0;
		uint64_t rl = 0;
		while (i < len && t[i] >= '0' && t[i] <= '9' && dl < 8) {
			rl = rl * 10 + (uint64_t)(t[i] - '0');
			i++, dl++;
		}
		if (dl == 0 || i >= len || t[i] != ' ' || rl < dl + 4 || rl > len - off)
			return bad(r, err, "pax header: malformed record length");
		const char *rec = t + off, *kv = t + i + 1, *end = rec + rl - 1;
		if (*end != '\n')
			return bad(r, err, "pax header: record does not end with a newline");
		const char *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq || eq == kv)
			return bad(r, err, "pax header: record without key=value");
		size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
		const char *v = eq + 1;
		off += (size_t)rl;
		if (memchr(kv, '\0', kl))
			return bad(r, err, "pax header: NUL in a key");
		if (global)
			continue;
#define KEY(s) (kl == sizeof(s) - 1 && !memcmp(kv, s, kl))
		if (KEY("path")) {
			if (pax_set_string(&p->path, v, vl) < 0)
				return bad(r, err, "pax path: longer than 4096 bytes or contains NUL");
		} else if (KEY("linkpath")) {
			if (pax_set_string(&p->link, v, vl) < 0)
				return bad(r, err, "pax linkpath: longer than 4096 bytes or contains NUL");
		} else if (KEY("size")) {
			if (parse_dec(v, vl, (uint64_t)INT64_MAX, &p->size) < 0)
				return bad(r, err, "pax size: expected a decimal number");
			p->has_size = true;
		} else if (KEY("uid") || KEY("gid")) {
			uint64_t id;
			if (parse_dec(v, vl, 0xfffffffeu, &id) < 0)
				return bad(r, err, "pax uid/gid: expected a decimal number below 4294967295");
			if (kv[0] == 'u')
				p->uid = id, p->has_uid = true;
			else
				p->gid = id, p->has_gid = true;
		} else if (KEY("mtime")) {
			if (parse_pax_time(v, vl, &p->mtime, &p->mtime_nsec) < 0)
				return bad(r, err, "pax mtime: expected [-]seconds[.fraction]");
			p->has_mtime = true;
		} else if (kl > 13 && !memcmp(kv, "SCHILY.xattr.", 13)) {
			size_t nl = kl - 13;
			if (nl == 0 || nl > 255)
				return bad(r, err, "pax xattr: name empty or longer than 255 bytes");
			if (vl > TAR_XATTR_VALUE_MAX)
				return bad(r, err, "pax xattr: value longer than 65536 bytes");
			if (p->n_xattrs >= TAR_XATTR_MAX)
				return bad(r, err, "pax xattr: more than 64 extended attributes");
			tar_xattr *x = &p->xattrs[p->n_xattrs++];
			x->name = xstrndup(kv + 13, nl);
			x->value = xmalloc(vl ? vl : 1);
			memcpy(x->value, v, vl);
			x->len = vl;
		} else if (kl >= 11 && !memcmp(kv, "GNU.sparse.", 11)) {
			return bad(r, err, "sparse files are not supported");
		}
#undef KEY
		/* other keys (atime, ctime, uname, gname, comment, charset, ...) carry
		 * nothing an image needs */
	}
	return 0;
}

/* Read the data of a meta header (pax or GNU long name) into a fresh buffer. */
static int read_meta(tar_reader *r, uint64_t size, uint64_t max, const char *what, char **out, silo_error *err)
{
	if (size > max) {
		char m[96];
		snprintf(m, sizeof m, "%s of %" PRIu64 " bytes (limit %" PRIu64 ")", what, size, max);
		return bad(r, err, m);
	}
	char *buf = xmalloc((size_t)size + 1);
	int rc = read_full(r, buf, (size_t)size, err);
	if (rc == 0)
		rc = skip_bytes(r, (BLK - size % BLK) % BLK, err);
	else if (rc > 0)
		rc = bad(r, err, "archive truncated inside a pax/GNU header");
	if (rc < 0) {
		free(buf);
		return -1;
	}
	buf[size] = '\0';
	*out = buf;
	return 0;
}

static uint32_t checksum_unsigned(const unsigned char *h)
{
	uint32_t s = 0;
	for (int i = 0; i < BLK; i++)
		s += (i >= 148 && i < 156) ? ' ' : h[i];
	return s;
}

static int32_t checksum_signed(const unsigned char *h)
{
	int32_t s = 0;
	for (int i = 0; i < BLK; i++)
		s += (i >= 148 && i < 156) ? ' ' : (signed char)h[i];
	return s;
}

static char *field_string(const unsigned char *f, size_t n)
{
	return xstrndup((const char *)f, strnlen((const char *)f, n));
}

int tar_next(tar_reader *r, const tar_entry **out, silo_error *err)
{
	*out = NULL;
	entry_clear(&r->e);
	if (r->ended)
		return 0;
	if (skip_bytes(r, r->left + r->pad, err) < 0)
		return -1;
	r->left = r->pad = 0;
	pending p = {0};
	unsigned metas = 0;
	for (;;) {
		unsigned char h[BLK];
		int rc = read_full(r, h, BLK, err);
		if (rc < 0)
			goto fail;
		if (rc > 0) {
			if (metas) {
				bad(r, err, "archive ends after a pax/GNU header without its entry");
				goto fail;
			}
			r->ended = true;
			return 0;
		}
		r->blocks++;
		bool zero = true;
		for (int i = 0; i < BLK && zero; i++)
			zero = h[i] == 0;
		if (zero) {
			if (metas) {
				bad(r, err, "end of archive after a pax/GNU header without its entry");
				goto fail;
			}
			r->ended = true;
			return 0;
		}
		uint64_t ck;
		if (parse_num(h + 148, 8, &ck) < 0 ||
		    (ck != checksum_unsigned(h) && (int64_t)ck != (int64_t)checksum_signed(h))) {
			bad(r, err, "bad header checksum (not a tar archive, or corrupted)");
			goto fail;
		}
		bool posix = !memcmp(h + 257, "ustar\0", 6);
		bool gnu = !memcmp(h + 257, "ustar  \0", 8);
		if (!posix && !gnu) {
			bad(r, err, "no ustar magic (pre-POSIX v7 archives are not supported)");
			goto fail;
		}
		uint64_t size;
		if (parse_num(h + 124, 12, &size) < 0 || size > (uint64_t)INT64_MAX) {
			bad(r, err, "size: not a valid number");
			goto fail;
		}
		char type = (char)h[156];
		if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
			if (++metas > TAR_META_RUN_MAX) {
				bad(r, err, "more than 16 pax/GNU headers before one entry");
				goto fail;
			}
			char *buf = NULL;
			bool pax = type == 'x' || type == 'g';
			if (read_meta(r, size, pax ? TAR_PAX_MAX : TAR_NAME_MAX + 1, pax ? "pax header" : "GNU long name",
				      &buf, err) < 0)
				goto fail;
			if (pax) {
				rc = parse_pax(r, buf, (size_t)size, type == 'g', &p, err);
			} else {
				size_t n = strnlen(buf, (size_t)size);
				for (size_t i = n; i < size; i++)
					if (buf[i] != '\0')
						n = SIZE_MAX;   /* NUL inside the name */
				rc = n == SIZE_MAX || n == 0 ? bad(r, err, "GNU long name: empty or contains NUL") : 0;
				if (rc == 0)
					pax_set_string(type == 'L' ? &p.path : &p.link, buf, n);
			}
			free(buf);
			if (rc < 0)
				goto fail;
			continue;
		}
		tar_entry *e = &r->e;
		e->index = r->blocks;
		switch (type) {
		case '0': case '\0': case '7': e->type = TAR_REG; break;
		case '1': e->type = TAR_HARDLINK; break;
		case '2': e->type = TAR_SYMLINK; break;
		case '3': e->type = TAR_CHR; break;
		case '4': e->type = TAR_BLK; break;
		case '5': e->type = TAR_DIR; break;
		case '6': e->type = TAR_FIFO; break;
		default: {
			char m[64];
			snprintf(m, sizeof m, "unsupported entry type '%c' (0x%02x)", type >= 0x20 && type < 0x7f ? type : '?',
				 (unsigned char)type);
			bad(r, err, m);
			goto fail;
		}
		}
		if (p.path) {
			e->path = p.path, p.path = NULL;
		} else if (posix && h[345]) {
			char *pre = field_string(h + 345, 155), *nm = field_string(h, 100);
			e->path = xasprintf("%s/%s", pre, nm);
			free(pre);
			free(nm);
		} else {
			e->path = field_string(h, 100);
		}
		if (p.link)
			e->link = p.link, p.link = NULL;
		else if (e->type == TAR_HARDLINK || e->type == TAR_SYMLINK)
			e->link = field_string(h + 157, 100);
		if (!e->path[0]) {
			bad(r, err, "empty entry name");
			goto fail;
		}
		if ((e->type == TAR_HARDLINK || e->type == TAR_SYMLINK) && (!e->link || !e->link[0])) {
			bad(r, err, "link entry without a target");
			goto fail;
		}
		if (e->type != TAR_HARDLINK && e->type != TAR_SYMLINK) {
			free(e->link);
			e->link = NULL;
		}
		uint64_t v;
		if (parse_num(h + 100, 8, &v) < 0) {
			bad(r, err, "mode: not a valid number");
			goto fail;
		}
		e->mode = (uint32_t)(v & 07777);
		uint64_t uid, gid;
		if (parse_num(h + 108, 8, &uid) < 0 || parse_num(h + 116, 8, &gid) < 0 || uid > 0xfffffffeu ||
		    gid > 0xfffffffeu) {
			bad(r, err, "uid/gid: not a valid number below 4294967295");
			goto fail;
		}
		e->uid = (uint32_t)(p.has_uid ? p.uid : uid);
		e->gid = (uint32_t)(p.has_gid ? p.gid : gid);
		if (p.has_mtime) {
			e->mtime = p.mtime;
			e->mtime_nsec = p.mtime_nsec;
		} else if (parse_num(h + 136, 12, &v) < 0 || v > (uint64_t)INT64_MAX) {
			bad(r, err, "mtime: not a valid number");
			goto fail;
		} else {
			e->mtime = (int64_t)v;
		}
		if (e->type == TAR_CHR || e->type == TAR_BLK) {
			uint64_t ma, mi;
			if (parse_num(h + 329, 8, &ma) < 0 || parse_num(h + 337, 8, &mi) < 0 || ma > 0xfff ||
			    mi > 0xfffff) {
				bad(r, err, "device numbers out of range");
				goto fail;
			}
			e->devmajor = (uint32_t)ma;
			e->devminor = (uint32_t)mi;
		}
		if (p.has_size)
			size = p.size;
		memcpy(e->xattrs, p.xattrs, sizeof p.xattrs);
		e->n_xattrs = p.n_xattrs;
		p.n_xattrs = 0;
		pending_clear(&p);
		/* only files carry data an extractor reads; the rest (GNU tar sometimes
		 * records a size for hard links or directories) is skipped */
		e->size = e->type == TAR_REG ? size : 0;
		r->left = e->type == TAR_REG ? size : 0;
		r->pad = (BLK - size % BLK) % BLK + (e->type == TAR_REG ? 0 : size);
		*out = e;
		return 1;
	}
fail:
	pending_clear(&p);
	entry_clear(&r->e);
	return -1;
}

ssize_t tar_read(tar_reader *r, void *buf, size_t n, silo_error *err)
{
	if (r->left == 0)
		return 0;
	if (n > r->left)
		n = (size_t)r->left;
	ssize_t k = r->fn(r->ud, buf, n, err);
	if (k < 0)
		return -1;
	if (k == 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "tar: archive truncated inside the data of header block %" PRIu64, r->blocks);
	r->left -= (uint64_t)k;
	return k;
}

int tar_finish(tar_reader *r, silo_error *err)
{
	char buf[8192];
	for (;;) {
		ssize_t k = r->fn(r->ud, buf, sizeof buf, err);
		if (k < 0)
			return -1;
		if (k == 0)
			return 0;
	}
}
