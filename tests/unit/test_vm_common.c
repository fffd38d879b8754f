/* SPDX-License-Identifier: Apache-2.0
 * What the VM providers share (lib/providers/vm-common.c): the boot parameters a
 * user may not set (with and without a keyring), the disk budget with writable
 * drives, the scratch disk and its snapshot form (round trip, sparse, and every
 * kind of malformed file refused), and the uid lease.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "providers/vm.h"
#include "trust/trust.h"

static int hooked;
static void hook(void *ud, const silo_error *e)
{
	(void)ud, (void)e;
	hooked++;
}

TEST(reserved_parameters)
{
	static const char *const yes[] = {"root=/dev/vdb", "rootfstype=ext4", "rootwait", "init=/bin/sh",
					  "rdinit=/bin/sh", "silo.root=/dev/vdb", "silo.scratch=/dev/vda",
					  "silo.channel=/dev/hvc0", "silo.anything", "silo-root=/dev/vdb",
					  "silo_root=/dev/vdb", "retain-initrd", "retain_initrd", "resume=/dev/vdb",
					  "resume-offset=1", "noinitrd", "initrd=/x", "nfsroot=1.2.3.4:/x", "--"};
	static const char *const no[] = {"loglevel=3", "console=ttyS0", "quiet", "rootfoo=1", "initcall_debug",
					 "silo", "panic=0", "rd_init=/x", "systemd.unit=x", "mitigations=off"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!vm_cmdline_reserved(yes[i]))
			printf("# not reserved: %s\n", yes[i]);
		CHECK(vm_cmdline_reserved(yes[i]));
	}
	for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
		if (vm_cmdline_reserved(no[i]))
			printf("# reserved: %s\n", no[i]);
		CHECK(!vm_cmdline_reserved(no[i]));
	}
}

TEST(compose_drops_or_refuses)
{
	const char *silo = "console=ttyS0 silo.scratch=/dev/vda";
	char *out = NULL;
	silo_error err = {0};
	/* none: Silo's only */
	REQUIRE(vm_cmdline_compose(NULL, silo, true, &out, &err) == 0);
	CHECK_STR_EQ(out, silo);
	free(out);
	REQUIRE(vm_cmdline_compose("", silo, false, &out, &err) == 0);
	CHECK_STR_EQ(out, silo);
	free(out);
	/* without a keyring: reserved ones dropped, the rest first, Silo's last; after "--" everything */
	REQUIRE(vm_cmdline_compose("loglevel=3  init=/bin/sh quiet silo.root=/dev/vdb -- a=b c", silo, false, &out,
				   &err) == 0);
	CHECK_STR_EQ(out, "loglevel=3 quiet console=ttyS0 silo.scratch=/dev/vda");
	free(out);
	/* with a keyring: refused, CHECKSUM_MISMATCH in the supply-chain form, reported to the hook */
	trust_set_violation_hook(hook, NULL);
	hooked = 0;
	CHECK_INT_EQ(vm_cmdline_compose("loglevel=3 rdinit=/bin/sh", silo, true, &out, &err), -1);
	CHECK(out == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(err.message, "supply chain: boot.cmdline: \"rdinit=/bin/sh\"");
	CHECK_INT_EQ(hooked, 1);
	/* harmless parameters pass with a keyring too */
	REQUIRE(vm_cmdline_compose("loglevel=3", silo, true, &out, &err) == 0);
	CHECK_STR_EQ(out, "loglevel=3 console=ttyS0 silo.scratch=/dev/vda");
	free(out);
	CHECK_INT_EQ(hooked, 1);
	trust_set_violation_hook(NULL, NULL);
	/* bytes that could hide a parameter: refused whatever the keyring */
	static const char *const bad[] = {"a=\"b silo.root=/dev/vdb\"", "a\tb", "a\nroot=/dev/vdb", "caf\xc3\xa9"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		silo_error e = {0};
		CHECK_INT_EQ(vm_cmdline_compose(bad[i], silo, false, &out, &e), -1);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(e.message, "boot.cmdline");
	}
	char big[VM_CMDLINE_USER_MAX + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	silo_error e = {0};
	CHECK_INT_EQ(vm_cmdline_compose(big, silo, false, &out, &e), -1);
	CHECK_CONTAINS(e.message, "boot.cmdline");
}

static char tmpdir[] = "/tmp/silo-vm-common-XXXXXX";

static void in_tmp(void)
{
	REQUIRE(mkdtemp(tmpdir));
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/cache", tmpdir);
	setenv("SILO_CACHE_DIR", p, 1);
}

static void rm_tmp(void)
{
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	CHECK(system(cmd) == 0);
	free(cmd);
}

static void make_file(const char *path, off_t size, off_t alloc)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, size) == 0);
	if (alloc)
		REQUIRE(posix_fallocate(fd, 0, alloc) == 0);
	close(fd);
}

TEST(disk_budget_counts_what_writable_drives_can_grow)
{
	in_tmp();
	char sparse[PATH_MAX], full[PATH_MAX];
	snprintf(sparse, sizeof sparse, "%s/sparse.img", tmpdir);
	snprintf(full, sizeof full, "%s/full.img", tmpdir);
	make_file(sparse, 30 << 20, 0);
	make_file(full, 100 << 20, 100 << 20);
	vm_spec s;
	memset(&s, 0, sizeof s);
	uint64_t mb = 0, largest = 0;
	silo_error err = {0};
	REQUIRE(vm_disk_budget(&s, &mb, &largest, &err) == 0);   /* default budget */
	CHECK_INT_EQ(mb, SPEC_DISK_DEFAULT_MB);
	CHECK_INT_EQ(largest, (uint64_t)SPEC_DISK_DEFAULT_MB << 20);
	s.disk_mb = 64;
	s.n_drives = 2;
	s.drives[0].path = sparse;   /* can grow by 30 MiB */
	s.drives[1].path = full;     /* preallocated: cannot grow */
	REQUIRE(vm_disk_budget(&s, &mb, &largest, &err) == 0);
	CHECK_INT_EQ(mb, 34);
	CHECK_INT_EQ(largest, 100 << 20);   /* RLIMIT_FSIZE must let QEMU write the largest file */
	s.drives[0].read_only = true;      /* read-only drives never count */
	REQUIRE(vm_disk_budget(&s, &mb, &largest, &err) == 0);
	CHECK_INT_EQ(mb, 64);
	s.drives[0].read_only = false;
	s.disk_mb = 40;   /* 30 MiB of growth leaves less than 16 */
	CHECK_INT_EQ(vm_disk_budget(&s, &mb, &largest, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "disk_mb = 40");
	s.drives[0].path = "/nonexistent/drive.img";
	silo_error e2 = {0};
	CHECK_INT_EQ(vm_disk_budget(&s, &mb, &largest, &e2), -1);
	CHECK_CONTAINS(e2.message, "drives[0].path");
	rm_tmp();
}

TEST(scratch_disk_round_trip_is_sparse)
{
	in_tmp();
	silo_error err = {0};
	char run1[PATH_MAX], run2[PATH_MAX], disk1[PATH_MAX + 16], disk2[PATH_MAX + 16], snap[PATH_MAX + 16];
	snprintf(run1, sizeof run1, "%s/run1", tmpdir);
	snprintf(run2, sizeof run2, "%s/run2", tmpdir);
	REQUIRE(mkdir(run1, 0700) == 0 && mkdir(run2, 0700) == 0);
	REQUIRE(vm_scratch_create(run1, 64, &err) == 0);
	snprintf(disk1, sizeof disk1, "%s/disk.img", run1);
	struct stat st;
	REQUIRE(stat(disk1, &st) == 0);
	CHECK_INT_EQ(st.st_size, 64 << 20);
	printf("# a fresh 64 MiB scratch disk allocates %lld bytes\n", (long long)st.st_blocks * 512);
	CHECK(st.st_blocks * 512 < (8 << 20));
	/* an empty ext4 (mkfs.ext4 label) */
	char *cmd = xasprintf("dumpe2fs -h %s 2>/dev/null | grep -q 'volume name:.*silo-scratch'", disk1);
	CHECK(system(cmd) == 0);
	free(cmd);
	/* the template is reused: a second disk the same */
	CHECK_INT_EQ(vm_scratch_create(run1, 64, &err), -1);   /* never overwrites */
	/* write a few blocks, save, load elsewhere: same bytes, still sparse */
	int fd = open(disk1, O_WRONLY);
	REQUIRE(fd >= 0);
	char blk[8192];
	memset(blk, 0x5a, sizeof blk);
	REQUIRE(pwrite(fd, blk, sizeof blk, 40 << 20) == (ssize_t)sizeof blk);
	REQUIRE(pwrite(fd, blk, 100, (63 << 20) + 4096) == 100);
	close(fd);
	snprintf(snap, sizeof snap, "%s/disk.sparse", tmpdir);
	uint64_t bytes = 0;
	REQUIRE(vm_scratch_save(disk1, snap, &bytes, &err) == 0);
	REQUIRE(stat(snap, &st) == 0);
	CHECK_INT_EQ((uint64_t)st.st_size, bytes);
	CHECK(bytes < (8 << 20));
	snprintf(disk2, sizeof disk2, "%s/disk.img", run2);
	REQUIRE(vm_scratch_load(snap, disk2, 64 << 20, &err) == 0);
	cmd = xasprintf("cmp -s %s %s", disk1, disk2);
	CHECK(system(cmd) == 0);
	free(cmd);
	REQUIRE(stat(disk2, &st) == 0);
	CHECK_INT_EQ(st.st_size, 64 << 20);
	CHECK(st.st_blocks * 512 < (8 << 20));
	/* the size must be what the caller expects; 0 accepts any budget */
	unlink(disk2);
	silo_error e2 = {0};
	CHECK_INT_EQ(vm_scratch_load(snap, disk2, 32 << 20, &e2), -1);
	CHECK_INT_EQ(e2.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK(!path_exists(disk2));
	CHECK_INT_EQ(vm_scratch_load(snap, disk2, 0, &err), 0);
	/* a truncated payload is refused */
	unlink(disk2);
	REQUIRE(truncate(snap, (off_t)bytes - 1) == 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(vm_scratch_load(snap, disk2, 64 << 20, &e3), -1);
	CHECK_INT_EQ(e3.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK(!path_exists(disk2));
	rm_tmp();
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

TEST(malformed_snapshot_forms_are_refused)
{
	uint8_t b[24 + 3 * 16];
	const uint64_t size = 64 << 20;
	struct {
		const char *what;
		uint64_t size, n, e[3][2];
		bool ok;
	} cases[] = {
		{"good", size, 2, {{0, 4096}, {8192, 4096}}, true},
		{"no extents", size, 0, {{0}}, true},
		{"unsorted", size, 2, {{8192, 4096}, {0, 4096}}, false},
		{"overlapping", size, 2, {{0, 8192}, {4096, 4096}}, false},
		{"misaligned", size, 1, {{100, 4096}}, false},
		{"past the end", size, 1, {{size - 4096, 8192}}, false},
		{"wraps", size, 1, {{4096, UINT64_MAX - 100}}, false},
		{"empty extent", size, 1, {{0, 0}}, false},
		{"other size", size * 2, 0, {{0}}, false},
		{"table longer than the file", size, 3, {{0, 4096}, {8192, 4096}, {16384, 4096}}, false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(b, 0, sizeof b);
		memcpy(b, "SILODSK1", 8);
		put64(b + 8, cases[i].size);
		put64(b + 16, cases[i].n);
		for (uint64_t k = 0; k < cases[i].n && k < 2; k++) {
			put64(b + 24 + 16 * k, cases[i].e[k][0]);
			put64(b + 24 + 16 * k + 8, cases[i].e[k][1]);
		}
		silo_error err = {0};
		size_t len = 24 + 2 * 16;
		int rc = vm_scratch_check(b, len, size, &err);
		if ((rc == 0) != cases[i].ok)
			printf("# %s: rc %d %s\n", cases[i].what, rc, err.message);
		CHECK((rc == 0) == cases[i].ok);
		if (rc < 0)
			CHECK_INT_EQ(err.code, SILO_ERR_CHECKSUM_MISMATCH);
	}
	silo_error err = {0};
	memcpy(b, "NOTADISK", 8);
	CHECK_INT_EQ(vm_scratch_check(b, sizeof b, size, &err), -1);
	CHECK_INT_EQ(vm_scratch_check(b, 10, size, &err), -1);
	/* without an expected size: only whole MiB inside the spec's disk_mb range */
	memcpy(b, "SILODSK1", 8);
	put64(b + 16, 0);
	put64(b + 8, (64 << 20) + 1);
	CHECK_INT_EQ(vm_scratch_check(b, 24, 0, &err), -1);
	put64(b + 8, 1 << 20);
	CHECK_INT_EQ(vm_scratch_check(b, 24, 0, &err), -1);
	put64(b + 8, 64 << 20);
	CHECK_INT_EQ(vm_scratch_check(b, 24, 0, &err), 0);
}

TEST(uid_leases_are_unique_and_released)
{
	uid_t a, b, c;
	int fa, fb, fc;
	silo_error err = {0};
	REQUIRE(vm_uid_lease("sb-lease-one", &a, &fa, &err) == 0);
	REQUIRE(vm_uid_lease("sb-lease-one", &b, &fb, &err) == 0);   /* same id while held: another uid */
	CHECK(a != b);
	CHECK(a >= VM_UID_BASE && a < VM_UID_BASE + VM_UID_COUNT);
	CHECK(b >= VM_UID_BASE && b < VM_UID_BASE + VM_UID_COUNT);
	close(fa);
	REQUIRE(vm_uid_lease("sb-lease-one", &c, &fc, &err) == 0);   /* released: the id's own uid again */
	CHECK_INT_EQ(c, a);
	close(fb);
	close(fc);
}

TEST_MAIN(reserved_parameters, compose_drops_or_refuses, disk_budget_counts_what_writable_drives_can_grow,
	  scratch_disk_round_trip_is_sparse, malformed_snapshot_forms_are_refused, uid_leases_are_unique_and_released)
