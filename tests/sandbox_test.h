/* SPDX-License-Identifier: Apache-2.0
 * Shared by the C tests that drive real sandboxes through the C API
 * (test_namespace_lifecycle, test_snapshot_namespace, test_snapshot_qemu) and
 * by the snapshot store test: per-test directories in the environment, the
 * provider probe, exec with collected output, restore, destroy with the
 * cleanup check, the residue and pid checks, and the refusal of a tampered
 * snapshot by a verified open.
 */
#ifndef SILO_TESTS_SANDBOX_TEST_H
#define SILO_TESTS_SANDBOX_TEST_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "harness.h"
#include "image/image.h"
#include "snapshot/snapshot.h"

/* VAR=DIR/SUB in the environment (SILO_RUNTIME_DIR, SILO_STATE_DIR, ...). */
static inline void sbt_setenv_dir(const char *var, const char *dir, const char *sub)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, sub);
	setenv(var, p, 1);
}

/* SKIP unless the provider NAME probes as available on this host. */
static inline void sbt_need_provider(const char *name)
{
	provider_info info = {0};
	const provider_ops *ops = provider_find(name);
	REQUIRE(ops);
	ops->probe(&info);
	if (!info.available)
		SKIP("%s provider unavailable: %s", name, info.reason);
}

/* A one-vCPU spec named NAME for PROVIDER with MEMORY_MB; the rest zero. */
static inline void sbt_spec(vm_spec *s, const char *name, char *provider, int memory_mb)
{
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->provider = provider;
	s->vcpus = 1;
	s->memory_mb = memory_mb;
}

/* For the namespace provider tests: root, a fresh TMPDIR (a mkdtemp
 * template), SILO_RUNTIME_DIR and SILO_CACHE_DIR (and SILO_STATE_DIR when
 * STATE_DIR) in it, and the provider available; SKIPs otherwise. */
static inline void sbt_namespace_setup(char *tmpdir, bool state_dir)
{
	if (geteuid() != 0)
		SKIP("the namespace provider needs root");
	if (!mkdtemp(tmpdir))
		SKIP("mkdtemp failed");
	sbt_setenv_dir("SILO_RUNTIME_DIR", tmpdir, "run");
	sbt_setenv_dir("SILO_CACHE_DIR", tmpdir, "cache");
	if (state_dir)
		sbt_setenv_dir("SILO_STATE_DIR", tmpdir, "state");
	sbt_need_provider("namespace");
}

/* For the qemu tests with a real guest: QEMU available, the kernel and base
 * image prepared (scripts/prepare-images.sh), a fresh TMPDIR (a mkdtemp
 * template) with SILO_RUNTIME_DIR and SILO_STATE_DIR in it; SKIPs otherwise. */
static inline void sbt_qemu_setup(char *tmpdir)
{
	if (getenv("SILO_SKIP_VM_TESTS") && !strcmp(getenv("SILO_SKIP_VM_TESTS"), "1"))
		SKIP("SILO_SKIP_VM_TESTS=1");
	sbt_need_provider("qemu");
	image_entry e;
	silo_error err = {0};
	if (image_lookup("base", &e, &err) < 0) {
		printf("# %s: run scripts/prepare-images.sh BUILD_DIR\n", err.message);
		REQUIRE(!"base image present");
	}
	image_entry_free(&e);
	REQUIRE(mkdtemp(tmpdir));
	sbt_setenv_dir("SILO_RUNTIME_DIR", tmpdir, "run");
	sbt_setenv_dir("SILO_STATE_DIR", tmpdir, "state");
}

/* Entries left in DIR/run/sandboxes (0 when the directory is gone), or
 * FALLBACK when they cannot be counted. */
static inline size_t sbt_run_residue(const char *dir, size_t fallback)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/run/sandboxes", dir);
	size_t left = fallback;
	FILE *f = popen(xasprintf("ls -A '%s' 2>/dev/null | wc -l", p), "r");
	if (f) {
		if (fscanf(f, "%zu", &left) != 1)
			left = fallback;
		pclose(f);
	}
	return left;
}

/* XOR the byte at OFF of the file PATH with MASK, in place. */
static inline void sbt_flip_byte(const char *path, off_t off, int mask)
{
	int fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	char c;
	REQUIRE(pread(fd, &c, 1, off) == 1);
	c ^= (char)mask;
	REQUIRE(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

/* Opening snapshot ID with verification fails with CODE, the message containing NEEDLE. */
static inline void sbt_expect_reject(const char *id, silo_code code, const char *needle)
{
	snap_info s;
	silo_error err = {0};
	int rc = snap_open(id, true, &s, &err);
	CHECK(rc < 0);
	if (rc == 0) {
		snap_info_free(&s);
		return;
	}
	CHECK_STR_EQ(silo_code_name(err.code), silo_code_name(code));
	CHECK_CONTAINS(err.message, needle);
}

/* Flip a bit of byte OFF of the payload file REL of snapshot ID (INFO): the
 * verified open refuses the snapshot, naming the file. */
static inline void sbt_expect_tamper_caught(const char *id, const snap_info *info, const char *rel, off_t off)
{
	char p[PATH_MAX + 64], want[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", info->payload, rel);
	sbt_flip_byte(p, off, 0x40);
	snprintf(want, sizeof want, "payload/%s: SHA-256 mismatch", rel);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, want);
}

typedef struct outbuf {
	char data[4096];
	size_t len;
} outbuf;

/* chan_exec output callback: stdout and stderr into an outbuf, truncated,
 * always NUL-terminated. */
static inline void collect(void *ud, int stream, const void *buf, size_t len)
{
	(void)stream;
	outbuf *o = ud;
	size_t n = MIN(len, sizeof o->data - 1 - o->len);
	memcpy(o->data + o->len, buf, n);
	o->len += n;
	o->data[o->len] = '\0';
}

/* sh -c SCRIPT in SB (TIMEOUT_MS 0 = none) with its output in O; chan_exec's
 * result, a failure printed as a diagnostic to OUT. */
static inline int sbt_exec_sh(FILE *out, sandbox *sb, const char *script, uint32_t timeout_ms, outbuf *o,
			      exec_result *res)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	exec_req req = {.argv = argv, .uid = -1, .gid = -1, .timeout_ms = timeout_ms};
	silo_error err = {0};
	memset(o, 0, sizeof *o);
	int rc = chan_exec(sb->ch, &req, collect, o, res, &err);
	if (rc < 0)
		fprintf(out, "# exec: %s\n", err.message);
	return rc;
}

/* stdout+stderr of sh -c SCRIPT; "" on failure */
static inline const char *sbt_sh(sandbox *sb, const char *script, uint32_t timeout_ms, outbuf *o)
{
	exec_result res;
	sbt_exec_sh(stdout, sb, script, timeout_ms, o, &res);
	return o->data;
}

/* A new sandbox restored from the snapshot INFO; the restore time in *MS when
 * MS is not NULL. */
static inline sandbox *sbt_restore(const snap_info *info, int boot_timeout_ms, uint64_t *ms)
{
	sandbox_opts o = {.restore_dir = info->payload, .restore_id = info->id, .restore_provider = info->provider,
			  .boot_timeout_ms = boot_timeout_ms};
	sandbox *sb = NULL;
	silo_error err = {0};
	uint64_t t0 = now_mono_ns();
	if (sandbox_create(&info->spec, &o, &sb, &err) < 0)
		printf("# restore: %s\n", err.message);
	if (ms)
		*ms = (now_mono_ns() - t0) / 1000000;
	REQUIRE(sb);
	return sb;
}

/* Destroy SB and check that the host is clean. */
static inline void sbt_destroy(sandbox *sb, int grace_ms)
{
	cleanup_report rep = {0};
	silo_error err = {0};
	CHECK(sandbox_destroy(sb, grace_ms, &rep, &err) == 0);
	CHECK(rep.host_clean);
	cleanup_report_free(&rep);
}

/* Gone, or a zombie waiting for its reaper (a sandbox init is not our child:
 * it is re-parented to the host's init or a subreaper, which reaps it on its
 * own schedule). */
static inline bool pid_dead(pid_t pid)
{
	char p[64], *txt = NULL;
	size_t n;
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	if (read_file(p, 4096, &txt, &n, NULL) < 0)
		return true;
	char *r = strrchr(txt, ')');
	bool dead = r && (r[2] == 'Z' || r[2] == 'X');
	free(txt);
	return dead;
}

#endif
