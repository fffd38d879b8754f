/* SPDX-License-Identifier: Apache-2.0
 * Helpers for the image-import tests: an in-memory tar writer that can write
 * what real tools write (ustar, pax records, GNU long names) and what attackers
 * write (traversal, devices, huge headers, bad checksums), an OCI image layout
 * writer, and gzip. Used by tests/unit/test_oci.c.
 */
#ifndef SILO_TESTS_OCI_TEST_H
#define SILO_TESTS_OCI_TEST_H

#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct tw {
	unsigned char *b;
	size_t n, cap;
} tw;

static inline void tw_put(tw *t, const void *p, size_t n)
{
	if (t->n + n > t->cap) {
		t->cap = (t->n + n) * 2 + 4096;
		t->b = realloc(t->b, t->cap);
	}
	memcpy(t->b + t->n, p, n);
	t->n += n;
}

static inline void tw_pad(tw *t)
{
	static const unsigned char z[512];
	if (t->n % 512)
		tw_put(t, z, 512 - t->n % 512);
}

/* One header block; name and link up to 100 bytes (longer: pax or GNU records). */
static inline void tw_hdr(tw *t, const char *name, char type, uint64_t size, unsigned mode, unsigned uid, unsigned gid,
			  const char *link, unsigned maj, unsigned min)
{
	unsigned char h[512] = {0};
	strncpy((char *)h, name, 100);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", uid);
	snprintf((char *)h + 116, 8, "%07o", gid);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 1700000000u);
	memset(h + 148, ' ', 8);
	h[156] = (unsigned char)type;
	if (link)
		strncpy((char *)h + 157, link, 100);
	memcpy(h + 257, "ustar\0" "00", 8);
	memcpy(h + 265, "root", 4);
	memcpy(h + 297, "root", 4);
	snprintf((char *)h + 329, 8, "%07o", maj);
	snprintf((char *)h + 337, 8, "%07o", min);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	tw_put(t, h, 512);
}

static inline void tw_file_mode(tw *t, const char *name, const void *data, size_t len, unsigned mode, unsigned uid,
				unsigned gid)
{
	tw_hdr(t, name, '0', len, mode, uid, gid, NULL, 0, 0);
	tw_put(t, data, len);
	tw_pad(t);
}

static inline void tw_file(tw *t, const char *name, const char *data)
{
	tw_file_mode(t, name, data, strlen(data), 0644, 0, 0);
}

static inline void tw_dir(tw *t, const char *name, unsigned mode)
{
	tw_hdr(t, name, '5', 0, mode, 0, 0, NULL, 0, 0);
}

static inline void tw_sym(tw *t, const char *name, const char *target)
{
	tw_hdr(t, name, '2', 0, 0777, 0, 0, target, 0, 0);
}

static inline void tw_link(tw *t, const char *name, const char *target)
{
	tw_hdr(t, name, '1', 0, 0644, 0, 0, target, 0, 0);
}

/* A pax 'x' header: key[i]=val[i] (vlen[i] bytes, may contain NUL). */
static inline void tw_pax_bin(tw *t, const char *const *key, const void *const *val, const size_t *vlen, size_t n)
{
	tw rec = {0};
	for (size_t i = 0; i < n; i++) {
		size_t base = strlen(key[i]) + vlen[i] + 3, d = 1;   /* "<len> " key "=" value "\n" */
		char num[24];
		while ((size_t)snprintf(num, sizeof num, "%zu", base + d) != d)
			d++;
		int w = snprintf(num, sizeof num, "%zu ", base + d);
		tw_put(&rec, num, (size_t)w);
		tw_put(&rec, key[i], strlen(key[i]));
		tw_put(&rec, "=", 1);
		tw_put(&rec, val[i], vlen[i]);
		tw_put(&rec, "\n", 1);
	}
	tw_hdr(t, "PaxHeader", 'x', rec.n, 0644, 0, 0, NULL, 0, 0);
	tw_put(t, rec.b, rec.n);
	tw_pad(t);
	free(rec.b);
}

/* The same from "key=value" strings. */
static inline void tw_pax(tw *t, const char *const *kv, size_t n)
{
	const char *keys[16];
	const void *vals[16];
	size_t lens[16];
	char buf[16][256];
	for (size_t i = 0; i < n && i < 16; i++) {
		const char *eq = strchr(kv[i], '=');
		snprintf(buf[i], sizeof buf[i], "%.*s", (int)(eq - kv[i]), kv[i]);
		keys[i] = buf[i];
		vals[i] = eq + 1;
		lens[i] = strlen(eq + 1);
	}
	tw_pax_bin(t, keys, vals, lens, n < 16 ? n : 16);
}

static inline void tw_end(tw *t)
{
	static const unsigned char z[1024];
	tw_put(t, z, sizeof z);
}

static inline int write_bytes(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, p, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

/* gzip of p (one member). */
static inline unsigned char *gzip_bytes(const void *p, size_t n, size_t *out_len)
{
	z_stream z = {0};
	deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
	size_t cap = deflateBound(&z, n) + 64;
	unsigned char *o = malloc(cap);
	z.next_in = (unsigned char *)p;
	z.avail_in = (uInt)n;
	z.next_out = o;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	return o;
}

static inline void sha256_of(const void *p, size_t n, char hex[65])
{
	unsigned char d[32];
	crypto_hash_sha256(d, p, n);
	sodium_bin2hex(hex, 65, d, sizeof d);
}

/* Store p as a blob of the OCI layout dir; digest gets "sha256:<hex>". */
static inline int oci_blob(const char *dir, const void *p, size_t n, char digest[72])
{
	char hex[65], path[4096];
	sha256_of(p, n, hex);
	snprintf(digest, 72, "sha256:%s", hex);
	snprintf(path, sizeof path, "%s/blobs", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/blobs/sha256", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/blobs/sha256/%s", dir, hex);
	return write_bytes(path, p, n);
}

/* An OCI image layout at dir with the given uncompressed layer tars (gzip'd when
 * gz) and config member JSON (the body of "config": {...}). ref tags the image. */
static inline int oci_layout(const char *dir, tw *const *layers, size_t n, bool gz, const char *config_body,
			     const char *ref)
{
	mkdir(dir, 0755);
	char path[4096];
	snprintf(path, sizeof path, "%s/oci-layout", dir);
	if (write_bytes(path, "{\"imageLayoutVersion\":\"1.0.0\"}", 30) < 0)
		return -1;
	size_t cap = 4096 + n * 256;
	char *diffs = calloc(1, cap), *descs = calloc(1, cap);
	for (size_t i = 0; i < n; i++) {
		char diff[65], dg[72];
		sha256_of(layers[i]->b, layers[i]->n, diff);
		size_t bl = layers[i]->n;
		unsigned char *blob = gz ? gzip_bytes(layers[i]->b, layers[i]->n, &bl) : layers[i]->b;
		oci_blob(dir, blob, bl, dg);
		snprintf(diffs + strlen(diffs), cap - strlen(diffs), "%s\"sha256:%s\"", i ? "," : "", diff);
		snprintf(descs + strlen(descs), cap - strlen(descs),
			 "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar%s\",\"digest\":\"%s\",\"size\":%zu}",
			 i ? "," : "", gz ? "+gzip" : "", dg, bl);
		if (gz)
			free(blob);
	}
	char *cfg = malloc(cap + 4096), cdg[72], mdg[72];
	snprintf(cfg, cap + 4096,
		 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{%s},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
		 config_body ? config_body : "", diffs);
	oci_blob(dir, cfg, strlen(cfg), cdg);
	char *man = malloc(cap + 4096);
	snprintf(man, cap + 4096,
		 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[%s]}",
		 cdg, strlen(cfg), descs);
	oci_blob(dir, man, strlen(man), mdg);
	char idx[1024];
	snprintf(idx, sizeof idx,
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
		 "\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}}]}",
		 mdg, strlen(man), ref ? ref : "latest");
	snprintf(path, sizeof path, "%s/index.json", dir);
	int rc = write_bytes(path, idx, strlen(idx));
	free(diffs);
	free(descs);
	free(cfg);
	free(man);
	return rc;
}

#endif
