/* SPDX-License-Identifier: Apache-2.0
 * Uses of the keyring: the signed image manifest checked before every boot
 * (signature, then version and expiry: no rollback), the namespace base layer
 * checked against the tree digest it lists, and agent/plugin bundles checked
 * before deployment (docs/security.md).
 *
 * State (trust_state_dir(), beside the keys): "manifest-version" holds
 * "<highest version accepted> <sha256 of that manifest>\n", rewritten
 * atomically under "<state>/.lock" (flock) only when a higher version is
 * accepted; a crash leaves either the old or the new line.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"
#include "image/image.h"
#include "trust/tree.h"
#include "trust/trust.h"

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static trust_violation_fn hook_fn;
static void *hook_ud;
static __thread bool *refusal_flag;   /* trust_watch_refusals: this thread's caller */

void trust_watch_refusals(bool *flag)
{
	refusal_flag = flag;
}

void trust_set_violation_hook(trust_violation_fn fn, void *ud)
{
	pthread_mutex_lock(&hook_lock);
	hook_fn = fn;
	hook_ud = ud;
	pthread_mutex_unlock(&hook_lock);
}

static void report(const silo_error *err)
{
	if (refusal_flag)
		*refusal_flag = true;
	pthread_mutex_lock(&hook_lock);
	trust_violation_fn fn = hook_fn;
	void *ud = hook_ud;
	pthread_mutex_unlock(&hook_lock);
	if (fn && err)
		fn(ud, err);
}

void trust_report_violation(const silo_error *err)
{
	report(err);
}

/* ---- boot files: size and SHA-256 against the signed manifest ----
 * Hashing a kernel or an image on every boot costs tens of milliseconds, so a
 * file that hashed right is remembered by a stamp. The stamp must live where
 * the cache's writer cannot write (threat model: not trusted): beside the keys,
 * <state>/files/<sha256 of the resolved path>.verified, holding "silo-file-stamp
 * 1 <path hex> <sha256> <size> <dev> <ino> <mtime> <ctime>". A stamp in the
 * cache (FILE.verified, image_verify's corruption check) is never believed: it
 * records only stat fields and a sum, all of which its writer can forge.
 * ctime cannot be set from user space, so an in-place rewrite (even one that
 * restores the mtime) or a replacement (new inode) discards the stamp. The file
 * is hashed through one descriptor whose stat is taken before reading, so a
 * change during the hash shows at the next check. */
static void file_stamp_line(const char *resolved, const char *sha256, const struct stat *st, char *buf, size_t len)
{
	char hp[2 * PATH_MAX + 1];
	sodium_bin2hex(hp, sizeof hp, (const unsigned char *)resolved, MIN(strlen(resolved), (size_t)PATH_MAX - 1));
	snprintf(buf, len, "silo-file-stamp 1 %s %s %lld %llu %llu %lld.%09ld %lld.%09ld\n", hp, sha256,
		 (long long)st->st_size, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

static int verify_boot_file(const char *ename, const char *resolved, const image_file *rec, silo_error *err)
{
	cleanup_close int fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno, "image \"%s\": %s", ename, resolved);
	if (!S_ISREG(st.st_mode))
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "image \"%s\": %s is not a regular file", ename,
				 resolved);
	if ((uint64_t)st.st_size != rec->size)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image \"%s\": %s is %" PRIu64 " bytes, manifest says %" PRIu64, ename, resolved,
				 (uint64_t)st.st_size, rec->size);
	char spath[PATH_MAX + 128], expect[2 * PATH_MAX + 256];
	trust_state_entry("files", resolved, ".verified", spath, sizeof spath);
	file_stamp_line(resolved, rec->sha256, &st, expect, sizeof expect);
	cleanup_free char *have = NULL;
	size_t hlen = 0;
	if (read_file(spath, sizeof expect, &have, &hlen, NULL) == 0 && hlen == strlen(expect) &&
	    !memcmp(have, expect, hlen))
		return 0;
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	/* on the heap, not thread-local: TLS is zeroed at every thread's start, so 64 KiB
	 * there cost each thread of silod (two per live sandbox) 64 KiB of resident memory */
	enum { BUF = 1 << 16 };
	cleanup_free unsigned char *buf = xmalloc(BUF);
	for (;;) {
		ssize_t r = read(fd, buf, BUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno, "image \"%s\": read %s", ename, resolved);
		if (r == 0)
			break;
		crypto_hash_sha256_update(&hs, buf, (size_t)r);
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	char hex[65];
	crypto_hash_sha256_final(&hs, d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	if (strcmp(hex, rec->sha256) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "image \"%s\": %s has sha256 %s, manifest says %s",
				 ename, resolved, hex, rec->sha256);
	/* best effort: without a stamp the next check hashes again */
	char dir[PATH_MAX + 128];
	snprintf(dir, sizeof dir, "%s", spath);
	*strrchr(dir, '/') = '\0';
	if (mkdir_p(dir, 0700) == 0)
		(void)write_file_atomic(spath, expect, strlen(expect), 0600, NULL);
	return 0;
}

/* Does `path` (already resolved) name the file of record f? */
static bool same_file(const char *resolved, const char *rec_path)
{
	if (!rec_path)
		return false;
	char rp[PATH_MAX];
	if (!realpath(rec_path, rp))
		return false;
	return !strcmp(rp, resolved);
}

static int check_one(const char *what, const char *path, const image_entry *v, size_t n, silo_error *err)
{
	char rp[PATH_MAX];
	if (!realpath(path, rp))
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno, "%s %s: cannot resolve", what, path);
	bool kernel_without_sum = false;
	for (size_t i = 0; i < n; i++) {
		const image_entry *e = &v[i];
		const image_file *rec = NULL;
		image_file kf;
		if (same_file(rp, e->file.path)) {
			rec = &e->file;
		} else if (same_file(rp, e->initrd.path)) {
			rec = &e->initrd;
		} else if (same_file(rp, e->kernel_path)) {
			if (!e->kernel_sha256[0]) {
				kernel_without_sum = true;
				continue;
			}
			kf.path = e->kernel_path;
			memcpy(kf.sha256, e->kernel_sha256, sizeof kf.sha256);
			kf.size = e->kernel_size;
			rec = &kf;
		}
		if (!rec)
			continue;
		if (verify_boot_file(e->name, rp, rec, err) < 0) {
			if (err && err->code != SILO_ERR_CHECKSUM_MISMATCH)
				err->code = SILO_ERR_CHECKSUM_MISMATCH;
			silo_error_prefix(err, "%s %s vs. the signed manifest", what, path);
			return -1;
		}
		return 0;
	}
	return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s %s is not listed in the signed image manifest%s",
			 what, path,
			 kernel_without_sum ? " with a sha256 (rebuild the images with scripts/prepare-images.sh to "
					      "record it, then sign the manifest again)"
					    : "");
}

/* ---------------------------------------------------------------- versions */

int trust_comment_version(const char *comment, trust_version *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	const char *p = comment;
	while (*p) {
		size_t n = strcspn(p, "\t ");
		const char *val = NULL;
		const char *name = NULL;
		if (n >= 8 && !strncmp(p, "version:", 8)) {
			val = p + 8, name = "version";
		} else if (n >= 8 && !strncmp(p, "expires:", 8)) {
			val = p + 8, name = "expires";
		}
		if (name) {
			size_t vl = n - (size_t)(val - p);
			unsigned long long x = all_digits(val, vl, 19) ? strtoull(val, NULL, 10) : 0;
			if (!x || x > INT64_MAX)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "trusted comment: %s: expected an integer 1..2^63-1", name);
			bool ver = !strcmp(name, "version");
			if (ver ? out->version != 0 : out->expires != 0)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "trusted comment: %s given twice", name);
			if (ver)
				out->version = x;
			else
				out->expires = (int64_t)x;
		}
		p += n;
		p += strspn(p, "\t ");
	}
	return 0;
}

char *trust_versioned_comment(const char *file, uint64_t version, int64_t expires)
{
	const char *base = file ? strrchr(file, '/') : NULL;
	base = base ? base + 1 : file;
	return xasprintf("timestamp:%lld\tfile:%.200s\thashed\tversion:%" PRIu64 "\texpires:%lld", (long long)time(NULL),
			 base && *base ? base : "-", version, (long long)expires);
}

int trust_parse_expiry(const char *s, int64_t *out, silo_error *err)
{
	size_t n = s ? strlen(s) : 0;
	if (n && n < 20 && all_digits(s, n - 1, 19) && strchr("smhd", s[n - 1])) {
		unsigned long long x = strtoull(s, NULL, 10);
		unsigned long long mul = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 : 86400;
		if (x && x <= (100ull * 365 * 86400) / mul) {
			*out = (int64_t)time(NULL) + (int64_t)(x * mul);
			return 0;
		}
	} else if (n && all_digits(s, n, 19)) {
		unsigned long long x = strtoull(s, NULL, 10);
		if (x && x <= 100ull * 365 * 86400) {
			*out = (int64_t)time(NULL) + (int64_t)x;
			return 0;
		}
	} else if (n == 10 || n == 20) {
		struct tm tm = {0};
		const char *end = strptime(s, n == 10 ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (end && !*end) {
			time_t t = timegm(&tm);
			if (t > time(NULL)) {
				*out = (int64_t)t;
				return 0;
			}
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "expires: %s is not in the future", s);
		}
	}
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			 "expires: expected a duration (90d, 12h, 30m, 45s; at most 100 years) or a UTC date "
			 "(2027-01-31 or 2027-01-31T12:00:00Z), got \"%.64s\"",
			 s ? s : "");
}

void trust_state_dir(char *buf, size_t len)
{
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	snprintf(buf, len, "%s/state", dir);
}

/* The rollback record: "<version> <sha256 of the manifest bytes>\n" in <state>/manifest-version. */
static void seen_path(char *buf, size_t len)
{
	char st[PATH_MAX];
	trust_state_dir(st, sizeof st);
	snprintf(buf, len, "%s/manifest-version", st);
}

static int read_seen(uint64_t *version, char sha[65])
{
	char p[PATH_MAX + 32];
	seen_path(p, sizeof p);
	*version = 0;
	sha[0] = '\0';
	cleanup_free char *t = NULL;
	size_t n = 0;
	if (read_file(p, 256, &t, &n, NULL) < 0)
		return -1;
	unsigned long long v = 0;
	char h[65] = "";
	if (sscanf(t, "%llu %64s", &v, h) < 1)
		return -1;
	*version = v;
	snprintf(sha, 65, "%s", h);
	return 0;
}

uint64_t trust_next_version(const char *sig_path)
{
	uint64_t v = (uint64_t)time(NULL);
	cleanup_free char *t = NULL;
	size_t n = 0;
	trust_sig s;
	trust_version tv;
	if (sig_path && read_file(sig_path, TRUST_SIG_FILE_MAX, &t, &n, NULL) == 0 && trust_sig_parse(t, n, &s, NULL) == 0 &&
	    trust_comment_version(s.trusted_comment, &tv, NULL) == 0 && tv.version >= v)
		v = tv.version + 1;
	uint64_t seen;
	char h[65];
	if (read_seen(&seen, h) == 0 && seen >= v)
		v = seen + 1;
	return v;
}

static int lock_state(silo_error *err)
{
	char st[PATH_MAX];
	trust_state_dir(st, sizeof st);
	return lock_file_in(st, 0755, ".lock", 0644, err);
}

/* Refuse a version older than the highest seen (or the same version with other
 * content); record a higher one. Under the state lock: concurrent boots agree. */
static int check_rollback(const char *mpath, uint64_t version, const char sha[65], silo_error *err)
{
	uint64_t seen;
	char have[65];
	char p[PATH_MAX + 32];
	seen_path(p, sizeof p);
	if (read_seen(&seen, have) == 0 && version == seen && !strcmp(have, sha))
		return 0; /* the usual case: the manifest we accepted before, no lock needed */
	cleanup_close int lk = lock_state(err);
	if (lk < 0)
		return silo_error_prefix(err, "image manifest %s: cannot record its version", mpath), -1;
	if (read_seen(&seen, have) < 0)
		seen = 0;
	if (version < seen)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image manifest %s: version %" PRIu64 " is older than version %" PRIu64
				 " already accepted with this keyring (rollback refused; recorded in %s)",
				 mpath, version, seen, p);
	if (version == seen && strcmp(have, sha) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image manifest %s: version %" PRIu64 " was already accepted with other content "
				 "(sha256 %.16s..., now %.16s...): each signed manifest needs a new version",
				 mpath, version, have, sha);
	if (version == seen)
		return 0;
	char line[128];
	int n = snprintf(line, sizeof line, "%" PRIu64 " %s\n", version, sha);
	if (write_file_atomic(p, line, (size_t)n, 0644, err) < 0)
		return silo_error_prefix(err, "image manifest %s: cannot record version %" PRIu64, mpath, version), -1;
	return 0;
}

typedef struct signed_manifest {
	image_entry *v;
	size_t n;
	image_tree *t;
	size_t nt;
} signed_manifest;

static void signed_manifest_free(signed_manifest *sm)
{
	image_entries_free(sm->v, sm->n);
	image_trees_free(sm->t, sm->nt);
}

/* Read, verify and parse the signed image manifest (the bytes verified are the
 * bytes parsed), with the version and expiry checks. 1: loaded into sm; 0: no
 * keyring, nothing read; -1: refused. *checked: a keyring is configured. */
static int load_signed_manifest(signed_manifest *sm, bool *checked, silo_error *err)
{
	memset(sm, 0, sizeof *sm);
	cleanup_keyring trust_keyring kr;
	if (trust_keyring_open(&kr, err) < 0)
		return -1;
	*checked = kr.n > 0;
	if (!kr.n)
		return 0;
	char mpath[PATH_MAX], spath[PATH_MAX + 16];
	image_manifest_path(mpath, sizeof mpath);
	snprintf(spath, sizeof spath, "%s.minisig", mpath);
	cleanup_free char *text = NULL, *sig = NULL;
	size_t len = 0, slen = 0;
	silo_error e2 = {0};
	if (read_file(mpath, IMAGE_MANIFEST_MAX, &text, &len, &e2) < 0) {
		silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
			  "a keyring is configured (%s) but the image manifest cannot be read: %s", kr.dir, e2.message);
		if (err)
			err->sys_errno = e2.sys_errno;
		return -1;
	}
	if (read_file(spath, TRUST_SIG_FILE_MAX, &sig, &slen, &e2) < 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image manifest %s is not signed (%s); sign it: silo trust sign %s", mpath, e2.message,
				 mpath);
	trust_result res;
	if (trust_verify_buf(kr.keys, kr.n, text, len, sig, slen, &res, err) < 0) {
		if (err)
			err->code = SILO_ERR_CHECKSUM_MISMATCH;
		silo_error_prefix(err, "image manifest %s", mpath);
		return -1;
	}
	trust_version tv;
	if (trust_comment_version(res.trusted_comment, &tv, err) < 0) {
		if (err)
			err->code = SILO_ERR_CHECKSUM_MISMATCH;
		silo_error_prefix(err, "image manifest %s", mpath);
		return -1;
	}
	if (!tv.version || !tv.expires)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image manifest %s: its signature has no %s (trusted comment \"%.200s\"): without both "
				 "an older signed manifest could be put back; sign it with silo trust sign (or minisign "
				 "-t \"version:N expires:UNIX_TIME\")",
				 mpath, !tv.version ? "version" : "expiry", res.trusted_comment);
	time_t now = time(NULL);
	if ((int64_t)now >= tv.expires) {
		char when[40];
		format_time_ms((uint64_t)tv.expires * 1000, when, sizeof when);
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image manifest %s: the signature of version %" PRIu64
				 " expired at %s; sign it again (silo trust sign)",
				 mpath, tv.version, when);
	}
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[65];
	crypto_hash_sha256(h, (const unsigned char *)text, len);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	if (check_rollback(mpath, tv.version, hex, err) < 0)
		return -1;
	if (image_manifest_parse_all(text, len, &sm->v, &sm->n, &sm->t, &sm->nt, err) < 0) {
		silo_error_prefix(err, "signed image manifest");
		return -1;
	}
	return 1;
}

static int check_boot(const char *kernel, const char *initrd, const char *rootdisk, bool *checked,
		      silo_error *err)
{
	signed_manifest sm;
	int rc = load_signed_manifest(&sm, checked, err);
	if (rc <= 0)
		return rc;
	rc = 0;
	if (kernel && *kernel)
		rc = check_one("kernel", kernel, sm.v, sm.n, err);
	if (!rc && initrd && *initrd)
		rc = check_one("initrd", initrd, sm.v, sm.n, err);
	if (!rc && rootdisk && *rootdisk)
		rc = check_one("image", rootdisk, sm.v, sm.n, err);
	signed_manifest_free(&sm);
	return rc;
}

/* The record of the tree at rp (resolved) in the signed manifest: a tree of
 * "trees", or a layer of an image; what names it in messages. */
static const char *tree_record(const signed_manifest *sm, const char *rp, char *what, size_t wlen)
{
	for (size_t i = 0; i < sm->nt; i++)
		if (same_file(rp, sm->t[i].path)) {
			snprintf(what, wlen, "\"%s\"", sm->t[i].name);
			return sm->t[i].sha256;
		}
	for (size_t i = 0; i < sm->n; i++)
		for (size_t j = 0; j < sm->v[i].n_layers; j++) {
			const image_layer *L = &sm->v[i].layers[j];
			if (L->tree[0] && same_file(rp, L->path)) {
				snprintf(what, wlen, "image \"%s\" layer %.19s", sm->v[i].name, L->diff_id);
				return L->tree;
			}
		}
	return NULL;
}

static int check_trees(char *const *dirs, size_t n, bool *checked, silo_error *err)
{
	signed_manifest sm;
	int rc = load_signed_manifest(&sm, checked, err);
	if (rc <= 0)
		return rc;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char rp[PATH_MAX], what[160];
		if (!realpath(dirs[i], rp)) {
			rc = silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno, "tree %s: cannot resolve", dirs[i]);
			break;
		}
		const char *want = tree_record(&sm, rp, what, sizeof what);
		if (!want) {
			rc = silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				       "tree %s is not listed in the signed image manifest (record it: silo image build "
				       "namespace, silo image add-tree NAME DIR, or import the image again; then sign the "
				       "manifest again)",
				       rp);
			break;
		}
		trust_tree_info have;
		if (tree_verified_digest(rp, &have, err) < 0) {
			if (err)
				err->code = SILO_ERR_CHECKSUM_MISMATCH;
			silo_error_prefix(err, "tree %s", rp);
			rc = -1;
			break;
		}
		if (strcmp(have.sha256, want) != 0)
			rc = silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				       "tree %s (%s) has digest %s (%" PRIu64 " entries), the signed manifest says %s: a file "
				       "was changed, added or removed",
				       rp, what, have.sha256, have.entries, want);
	}
	signed_manifest_free(&sm);
	return rc;
}

int trust_check_trees(char *const *dirs, size_t n, bool *checked, silo_error *err)
{
	bool dummy;
	if (!checked)
		checked = &dummy;
	*checked = false;
	silo_error local = {0};
	silo_error *e = err ? err : &local;
	int rc = check_trees(dirs, n, checked, e);
	if (rc < 0) {
		silo_error_prefix(e, "supply chain");
		report(e);
	}
	return rc;
}

int trust_check_tree(const char *dir, bool *checked, silo_error *err)
{
	char *const dirs[] = {(char *)dir};
	return trust_check_trees(dirs, 1, checked, err);
}

int trust_check_boot(const char *kernel, const char *initrd, const char *rootdisk, bool *checked,
		     silo_error *err)
{
	bool dummy;
	if (!checked)
		checked = &dummy;
	*checked = false;
	silo_error local = {0};
	silo_error *e = err ? err : &local;
	int rc = check_boot(kernel, initrd, rootdisk, checked, e);
	if (rc < 0) {
		silo_error_prefix(e, "supply chain");
		report(e);
	}
	return rc;
}

/* ---------------------------------------------------------------- bundles */

static int unverified(silo_error *err, const char *path)
{
	if (err)
		err->code = SILO_ERR_PLUGIN_UNVERIFIED;
	silo_error_prefix(err, "bundle %s", path);
	return -1;
}

/* Copy a bundle into the memfd, refusing one that grows past the limit while being read. */
typedef struct bundle_copy {
	int fd;
	const char *path;
	uint64_t total;
} bundle_copy;

static int bundle_chunk(void *ud, const void *buf, size_t n, silo_error *err)
{
	bundle_copy *c = ud;
	c->total += n;
	if (c->total > TRUST_BUNDLE_MAX)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, EFBIG, "bundle %s: grew past %llu bytes", c->path,
				 (unsigned long long)TRUST_BUNDLE_MAX);
	if (write_all(c->fd, buf, n) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd write");
	return 0;
}

static int load_keys_for_bundles(const char *what, trust_keyring *kr, silo_error *err)
{
	if (trust_keyring_open(kr, err) < 0)
		return unverified(err, what);
	if (!kr->n)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "bundle %s: no trusted keys in the keyring %s (silo trust add-key KEY.pub)", what, kr->dir);
	return 0;
}

int trust_verify_bundle_buf(const char *what, const void *data, size_t len, const char *sig, size_t siglen,
			    trust_result *res, silo_error *err)
{
	cleanup_keyring trust_keyring kr;
	if (load_keys_for_bundles(what, &kr, err) < 0)
		return -1;
	if (!sig || !siglen)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "bundle %s: no signature (sign it: silo trust sign FILE, or minisign -S -m FILE)", what);
	if (trust_verify_buf(kr.keys, kr.n, data ? data : "", len, sig, siglen, res, err) < 0)
		return unverified(err, what);
	return 0;
}

int trust_verify_bundle(const char *path, const char *sig_path, int *fd_out, trust_result *res, silo_error *err)
{
	if (fd_out)
		*fd_out = -1;
	cleanup_keyring trust_keyring kr;
	if (load_keys_for_bundles(path, &kr, err) < 0)
		return -1;
	cleanup_free char *def = sig_path ? NULL : xasprintf("%s.minisig", path);
	const char *sp = sig_path ? sig_path : def;
	cleanup_free char *sig = NULL;
	size_t slen = 0;
	if (read_file(sp, TRUST_SIG_FILE_MAX, &sig, &slen, err) < 0) {
		silo_error_prefix(err, "signature %s", sp);
		return unverified(err, path);
	}
	cleanup_close int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, errno, "bundle %s", path);
	struct stat st;
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0, "bundle %s: not a regular file", path);
	if ((uint64_t)st.st_size > TRUST_BUNDLE_MAX)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, EFBIG, "bundle %s: %lld bytes (limit %llu)", path,
				 (long long)st.st_size, (unsigned long long)TRUST_BUNDLE_MAX);
	/* copy into a sealed memfd: what is verified is what gets deployed */
	cleanup_close int mfd = memfd_create("silo-bundle", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd_create");
	bundle_copy cp = {.fd = mfd, .path = path};
	if (read_chunks(in, path, 1 << 16, bundle_chunk, &cp, err) < 0)
		return -1;
	uint64_t total = cp.total;
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd seal");
	void *map = NULL;
	if (total) {
		map = mmap(NULL, total, PROT_READ, MAP_PRIVATE, mfd, 0);
		if (map == MAP_FAILED)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mmap bundle");
	}
	int rc = trust_verify_buf(kr.keys, kr.n, map ? map : "", total, sig, slen, res, err);
	if (map)
		munmap(map, total);
	if (rc < 0)
		return unverified(err, path);
	if (fd_out) {
		lseek(mfd, 0, SEEK_SET);
		*fd_out = steal_fd(&mfd);
	}
	return 0;
}
