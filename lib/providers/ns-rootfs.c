/* SPDX-License-Identifier: Apache-2.0
 * The read-only base layer of a namespace sandbox: busybox-static with its
 * applet links plus silo-agent, cached under $SILO_CACHE_DIR/ns-rootfs/<key>
 * where key covers both binaries (size, mtime, inode). Built in a temporary
 * directory and renamed into place, so concurrent builders never see a
 * half-made layer. The layer is an overlayfs lowerdir: never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "providers/ns.h"

static const char *busybox_path(void)
{
	static const char *const cand[] = {"/bin/busybox", "/usr/bin/busybox"};
	for (size_t i = 0; i < ARRAY_SIZE(cand); i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static int copy_file(const char *src, const char *dst, mode_t mode, silo_error *err)
{
	cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", src);
	cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", dst);
	char buf[65536];
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read %s", src);
		if (r == 0)
			break;
		if (write_all(out, buf, (size_t)r) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write %s", dst);
	}
	if (fchmod(out, mode) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "chmod %s", dst);
	return 0;
}

static int build(const char *dir, const char *bb, const char *agent, silo_error *err)
{
	static const char *const dirs[] = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
					   "tmp", "run", "root", "etc", "mnt", "home", "var", "var/tmp", ".oldroot"};
	char p[PATH_MAX], q[PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(p, sizeof p, "%s/%s", dir, dirs[i]);
		if (mkdir(p, 0755) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", p);
	}
	snprintf(p, sizeof p, "%s/tmp", dir);
	chmod(p, 01777);
	snprintf(p, sizeof p, "%s/var/tmp", dir);
	chmod(p, 01777);
	snprintf(p, sizeof p, "%s/root", dir);
	chmod(p, 0700);
	snprintf(p, sizeof p, "%s/bin/busybox", dir);
	if (copy_file(bb, p, 0755, err) < 0)
		return -1;
	snprintf(p, sizeof p, "%s/sbin/silo-agent", dir);
	if (copy_file(agent, p, 0755, err) < 0)
		return -1;
	/* applet links: `busybox --list-full` prints paths such as usr/bin/env */
	char *cmd = xasprintf("'%s' --list-full", bb);
	FILE *f = popen(cmd, "re");
	free(cmd);
	if (!f)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "run %s --list-full", bb);
	char line[256];
	int links = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || !strcmp(line, "bin/busybox") || !path_is_safe_relative(line))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, line);
		snprintf(q, sizeof q, "%s", p);
		char *slash = strrchr(q, '/');
		*slash = '\0';
		mkdir_p(q, 0755);
		if (symlink("/bin/busybox", p) == 0)
			links++;
	}
	int st = pclose(f);
	if (st != 0 || links < 50)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s --list-full failed (status %d, %d applets)", bb, st,
				 links);
	static const struct {
		const char *name, *text;
	} files[] = {
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"},
		{"etc/os-release", "NAME=\"silo namespace base\"\nID=silo-base\n"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
		if (write_file_atomic(p, files[i].text, strlen(files[i].text), 0644, err) < 0)
			return -1;
	}
	return 0;
}

int ns_rootfs_base(const char *agent_path, char *out, size_t len, silo_error *err)
{
	const char *bb = busybox_path();
	if (!bb)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT,
				 "namespace: busybox not found (apt-get install busybox-static)");
	struct stat sa, sbb;
	if (stat(agent_path, &sa) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "namespace: %s", agent_path);
	if (stat(bb, &sbb) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "namespace: %s", bb);
	uint64_t h = 1469598103934665603ull;
	const struct stat *ss[] = {&sa, &sbb};
	for (int i = 0; i < 2; i++) {
		uint64_t v[] = {(uint64_t)ss[i]->st_size, (uint64_t)ss[i]->st_mtim.tv_sec,
				(uint64_t)ss[i]->st_mtim.tv_nsec, (uint64_t)ss[i]->st_ino, (uint64_t)ss[i]->st_dev};
		h = fnv(h, v, sizeof v);
	}
	h = fnv(h, agent_path, strlen(agent_path));
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s/ns-rootfs", silo_cache_dir());
	snprintf(out, len, "%s/%016llx", base, (unsigned long long)h);
	char stamp[PATH_MAX];
	snprintf(stamp, sizeof stamp, "%s/.silo-complete", out);
	if (path_exists(stamp))
		return 0;
	if (mkdir_p(base, 0755) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mkdir %s", base);
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", base);
	if (!mkdtemp(tmp))
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mkdtemp in %s", base);
	chmod(tmp, 0755);
	if (build(tmp, bb, agent_path, err) < 0) {
		silo_error_prefix(err, "namespace: building the base rootfs");
		rm_rf(tmp);
		return -1;
	}
	char tstamp[PATH_MAX];
	snprintf(tstamp, sizeof tstamp, "%s/.silo-complete", tmp);
	if (write_file_atomic(tstamp, "1\n", 2, 0644, err) < 0) {
		rm_rf(tmp);
		return -1;
	}
	if (rename(tmp, out) < 0) {
		int e = errno;
		rm_rf(tmp);
		if ((e == ENOTEMPTY || e == EEXIST) && path_exists(stamp))
			return 0;   /* another process built it first */
		if (path_exists(out) && !path_exists(stamp)) {
			/* a stale incomplete layer: replace it */
			rm_rf(out);
		}
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: install %s", out);
	}
	return 0;
}
