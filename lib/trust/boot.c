/* SPDX-License-Identifier: Apache-2.0
 * Uses of the keyring: the signed image manifest checked before every boot,
 * and agent/plugin bundles checked before deployment (docs/security.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "image/image.h"
#include "trust/trust.h"

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static trust_violation_fn hook_fn;
static void *hook_ud;

void trust_set_violation_hook(trust_violation_fn fn, void *ud)
{
	pthread_mutex_lock(&hook_lock);
	hook_fn = fn;
	hook_ud = ud;
	pthread_mutex_unlock(&hook_lock);
}

static void report(const silo_error *err)
{
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
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno, "%s %s: cannot resolve: %s", what, path,
				 strerror(errno));
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
		if (image_file_verify(e->name, rec, err) < 0) {
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

static int check_boot(const char *kernel, const char *initrd, const char *rootdisk, bool *checked,
		      silo_error *err)
{
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	cleanup_free trust_pubkey *keys = NULL;
	size_t nkeys = 0;
	if (trust_keyring_load(dir, &keys, &nkeys, err) < 0)
		return -1;
	*checked = nkeys > 0;
	if (!nkeys)
		return 0;
	char mpath[PATH_MAX], spath[PATH_MAX + 16];
	image_manifest_path(mpath, sizeof mpath);
	snprintf(spath, sizeof spath, "%s.minisig", mpath);
	cleanup_free char *text = NULL, *sig = NULL;
	size_t len = 0, slen = 0;
	silo_error e2 = {0};
	if (read_file(mpath, IMAGE_MANIFEST_MAX, &text, &len, &e2) < 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, e2.sys_errno,
				 "a keyring is configured (%s) but the image manifest cannot be read: %s", dir,
				 e2.message);
	if (read_file(spath, TRUST_SIG_FILE_MAX, &sig, &slen, &e2) < 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, e2.sys_errno,
				 "image manifest %s is not signed (%s: %s); sign it: silo trust sign %s, or minisign "
				 "-S -s KEY -m %s",
				 mpath, spath, strerror(e2.sys_errno), mpath, mpath);
	/* the bytes that were verified are the bytes that are parsed */
	trust_result res;
	if (trust_verify_buf(keys, nkeys, text, len, sig, slen, &res, err) < 0) {
		if (err)
			err->code = SILO_ERR_CHECKSUM_MISMATCH;
		silo_error_prefix(err, "image manifest %s", mpath);
		return -1;
	}
	image_entry *v = NULL;
	size_t n = 0;
	if (image_manifest_parse(text, len, &v, &n, err) < 0) {
		silo_error_prefix(err, "signed image manifest");
		return -1;
	}
	int rc = 0;
	if (kernel && *kernel)
		rc = check_one("kernel", kernel, v, n, err);
	if (!rc && initrd && *initrd)
		rc = check_one("initrd", initrd, v, n, err);
	if (!rc && rootdisk && *rootdisk)
		rc = check_one("image", rootdisk, v, n, err);
	image_entries_free(v, n);
	return rc;
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

int trust_verify_bundle(const char *path, const char *sig_path, int *fd_out, trust_result *res, silo_error *err)
{
	if (fd_out)
		*fd_out = -1;
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	cleanup_free trust_pubkey *keys = NULL;
	size_t nkeys = 0;
	if (trust_keyring_load(dir, &keys, &nkeys, err) < 0)
		return unverified(err, path);
	if (!nkeys)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "bundle %s: no trusted keys in the keyring %s (silo trust add-key KEY.pub)", path, dir);
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
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, errno, "bundle %s: %s", path, strerror(errno));
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
	int rc = trust_verify_buf(keys, nkeys, map ? map : "", total, sig, slen, res, err);
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
