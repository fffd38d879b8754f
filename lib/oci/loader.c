/* SPDX-License-Identifier: Apache-2.0
 * The loader initramfs that boots an ext4 root disk in a VM (images/build-initramfs.sh
 * --mode overlay, the loader of the python image), built once per agent build and
 * cached under $CACHE/oci/loader/<key>/ (key: the agent and both scripts). Used by
 * `silo image import` and by silo-oci for a bundle's root disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "image/image.h"
#include "oci/oci.h"
#include "silo-config.h"

/* Directory with build-kernel.sh / build-image.sh. */
int oci_images_dir(char *out, size_t len, silo_error *err)
{
	const char *cands[] = {getenv("SILO_IMAGES_DIR"), SILO_SOURCE_ROOT "/images",
			       SILO_PREFIX "/share/silo/images"};
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
		if (!cands[i] || !*cands[i])
			continue;
		snprintf(out, len, "%s/build-image.sh", cands[i]);
		if (access(out, X_OK) == 0) {
			snprintf(out, len, "%s", cands[i]);
			return 0;
		}
	}
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT,
			 "image build scripts not found (set SILO_IMAGES_DIR to the images/ directory)");
}

/* Run a build script; quiet drops its stdout (it prints the path it built). */
int oci_run_script(char *const argv[], bool quiet, silo_error *err)
{
	pid_t pid = fork();
	if (pid < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fork");
	if (pid == 0) {
		int nul = quiet ? open("/dev/null", O_WRONLY) : -1;
		if (nul >= 0)
			dup2(nul, 1);
		execv(argv[0], argv);
		fprintf(stderr, "silo: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s failed (%s %d)", argv[0],
				 WIFEXITED(st) ? "exit status" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* The loader initramfs of imported ext4 images (images/build-initramfs.sh --mode
 * overlay, the same loader the python image boots with), cached under
 * $CACHE/oci/loader/<key>/ where key covers the agent and both scripts. */
int oci_loader(char *out, size_t len, silo_error *err)
{
	char dir[PATH_MAX], agent[PATH_MAX];
	if (oci_images_dir(dir, sizeof dir, err) < 0 || find_helper_binary("silo-agent", agent, sizeof agent, err) < 0)
		return -1;
	char script[PATH_MAX + 32], init[PATH_MAX + 32];
	snprintf(script, sizeof script, "%s/build-initramfs.sh", dir);
	snprintf(init, sizeof init, "%s/initramfs/init-overlay.sh", dir);
	const char *inputs[] = {agent, script, init};
	char all[3 * 65] = "", hex[65];
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		if (image_sha256_file(inputs[i], hex, NULL, err) < 0)
			return -1;
		strcat(all, hex);
	}
	unsigned char d[32];
	crypto_hash_sha256(d, (const unsigned char *)all, strlen(all));
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	char ldir[PATH_MAX];
	snprintf(ldir, sizeof ldir, "%s/oci/loader/%.16s", silo_cache_dir(), hex);
	snprintf(out, len, "%s/loader.cpio.gz", ldir);
	if (access(out, R_OK) == 0)
		return 0;
	if (mkdir_p(ldir, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", ldir);
	char tmp[PATH_MAX + 32];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
	char *argv[] = {script, "--agent", agent, "--out", tmp, "--mode", "overlay", NULL};
	if (oci_run_script(argv, true, err) < 0) {
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, out) < 0) {
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "rename %s", out);
	}
	return 0;
}
