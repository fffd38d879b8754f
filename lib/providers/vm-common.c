/* SPDX-License-Identifier: Apache-2.0
 * Shared by the qemu and kvm providers (vm.h): what boots (kernel, loader, root
 * disk), the guest kernel command line, the disk budget and scratch disk, the
 * uid lease of a jailed VMM.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cgroup.h"
#include "common/util.h"
#include "image/image.h"
#include "providers/ns.h"
#include "providers/vm.h"
#include "trust/trust.h"

/* QEMU's jail uids must never be ids a namespace sandbox's root maps to. */
_Static_assert((uint64_t)NS_IDS_DEFAULT_BASE + (uint64_t)NS_IDS_DEFAULT_SLOTS * NS_IDS_SIZE <= VM_UID_BASE,
	       "VM jail uids overlap the namespace provider's default id ranges");

/* ---------------------------------------------------------------- what boots */

int vm_file_identity(const char *prov, const char *what, const char *path, char **out, silo_error *err)
{
	if (!path || !*path)
		return 0;
	struct stat st;
	if (stat(path, &st) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "%s: %s %s", prov, what, path);
	char *n = xasprintf("%s%s=%s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld ctime=%lld.%09ld\n", *out ? *out : "",
			    what, path, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			    (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			    (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	free(*out);
	*out = n;
	return 0;
}

int vm_plan_boot(const char *id, const char *prov, const vm_spec *spec, bool kernel_alone, bool *keyring,
		 vm_boot_plan *bp, silo_error *err)
{
	memset(bp, 0, sizeof *bp);
	if (spec->kernel) {
		if (access(spec->kernel, R_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, id, "boot.kernel: %s", spec->kernel);
		snprintf(bp->kernel, sizeof bp->kernel, "%s", spec->kernel);
	} else if (guest_kernel_path(bp->kernel, sizeof bp->kernel, err) < 0) {
		silo_error_set_vm(err, id);
		return -1;
	}
	const char *img = spec->image;
	if (!img && !spec->initrd && !(kernel_alone && spec->kernel))
		img = "base";
	if (img) {
		image_entry e;
		if (image_lookup(img, &e, err) < 0 || image_verify(&e, err) < 0) {
			image_entry_free(&e);
			silo_error_prefix(err, "boot.image");
			silo_error_set_vm(err, id);
			return -1;
		}
		if (e.kind == IMAGE_KIND_EXT4) {
			snprintf(bp->initrd, sizeof bp->initrd, "%s", e.initrd.path);
			snprintf(bp->rootdisk, sizeof bp->rootdisk, "%s", e.file.path);
		} else {
			snprintf(bp->initrd, sizeof bp->initrd, "%s", e.file.path);
		}
		image_entry_free(&e);
	}
	if (spec->initrd) {
		if (access(spec->initrd, R_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, id, "boot.initrd: %s", spec->initrd);
		snprintf(bp->initrd, sizeof bp->initrd, "%s", spec->initrd);
	}
	if (spec->rootfs) {
		struct stat st;
		if (stat(spec->rootfs, &st) < 0 || !S_ISREG(st.st_mode))
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno ? errno : EINVAL, id,
					    "boot.rootfs: %s: the %s provider needs a disk image file", spec->rootfs, prov);
		if (!spec->image && !spec->initrd)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, id,
					    "boot.rootfs needs a loader: set boot.initrd or an ext4 boot.image "
					    "(e.g. image = \"python\")");
		snprintf(bp->rootdisk, sizeof bp->rootdisk, "%s", spec->rootfs);
		bp->rootdisk_unsigned = spec->oci_bundle;
	}
	if (spec->hostname && *spec->hostname) {
		size_t n = strlen(spec->hostname);
		if (n > 63 || strspn(spec->hostname, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, id, "hostname: expected 1-63 of [A-Za-z0-9.-]");
		snprintf(bp->hostname_arg, sizeof bp->hostname_arg, " silo.hostname=%s", spec->hostname);
	}
	if (keyring) {
		*keyring = false;
		if (trust_check_boot(bp->kernel, bp->initrd, bp->rootdisk_unsigned ? NULL : bp->rootdisk, keyring,
				     err) < 0)
			return silo_error_set_vm(err, id), -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- command line */

/* Parameters that pick the root device, the initramfs or what runs as PID 1.
 * The kernel treats '-' and '_' alike in names, so names are compared after
 * mapping '-' to '_'. Everything after "--" goes to init, so "--" is reserved too,
 * and so is every silo.* parameter (read by the guest's init and agent). */
static const char *const reserved_names[] = {
	"root", "rootfstype", "rootflags", "rootwait", "rootdelay", "init", "rdinit", "nfsroot", "nfsaddrs",
	"nfsrootdebug", "noinitrd", "initrd", "initrdmem", "retain_initrd", "resume", "resume_offset",
	"resumewait", "resumedelay", "noresume", "hibernate", "ramdisk_start", "ramdisk_size", "load_ramdisk",
	"prompt_ramdisk",
};

bool vm_cmdline_reserved(const char *token)
{
	if (!strcmp(token, "--"))
		return true;
	char name[64];
	size_t n = strcspn(token, "=");
	if (n >= sizeof name)
		return false;   /* longer than any reserved name */
	for (size_t i = 0; i < n; i++)
		name[i] = token[i] == '-' ? '_' : token[i];
	name[n] = '\0';
	if (!strncmp(name, "silo.", 5) || !strncmp(name, "silo_", 5))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(reserved_names); i++)
		if (!strcmp(name, reserved_names[i]))
			return true;
	return false;
}

int vm_cmdline_compose(const char *user, const char *silo, bool keyring, char **out, silo_error *err)
{
	*out = NULL;
	if (!user || !*user) {
		*out = xstrdup(silo);
		return 0;
	}
	size_t len = strlen(user);
	if (len > VM_CMDLINE_USER_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "boot.cmdline: %zu bytes, at most %d", len,
				 VM_CMDLINE_USER_MAX);
	for (const char *p = user; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c >= 0x7f)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "boot.cmdline: byte 0x%02x at offset %zu: printable ASCII only", c,
					 (size_t)(p - user));
		if (c == '"')
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "boot.cmdline: double quotes are not supported (a quoted value can hide "
					 "parameters from the guest's init)");
	}
	cleanup_free char *dup = xstrdup(user);
	char *kept = xcalloc(1, len + strlen(silo) + 2);
	size_t k = 0;
	bool after_dashes = false;
	char *save = NULL;
	for (char *t = strtok_r(dup, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (after_dashes || vm_cmdline_reserved(t)) {
			after_dashes = after_dashes || !strcmp(t, "--");
			if (keyring) {
				free(kept);
				silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					  "supply chain: boot.cmdline: \"%.100s\" would choose the root device or what "
					  "runs as PID 1; with a keyring configured only Silo's own boot parameters "
					  "may (remove it from boot.cmdline)",
					  t);
				trust_report_violation(err);
				return -1;
			}
			log_warn("boot.cmdline: \"%.100s\" dropped: Silo's boot parameters choose the root device "
				 "and init",
				 t);
			continue;
		}
		k += (size_t)sprintf(kept + k, "%s ", t);
	}
	strcpy(kept + k, silo);   /* ours last: for parameters given twice the last one wins */
	*out = kept;
	return 0;
}

/* ---------------------------------------------------------------- disk budget */

#define MIB (1ull << 20)

int vm_disk_budget(const vm_spec *spec, uint64_t *scratch_mb, uint64_t *largest, silo_error *err)
{
	uint64_t budget = spec_disk_mb(spec), growth = 0, big = 0;
	for (size_t i = 0; i < spec->n_drives; i++) {
		const spec_drive *d = &spec->drives[i];
		if (d->read_only || !d->path)
			continue;
		struct stat st;
		if (stat(d->path, &st) < 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "drives[%zu].path: %s", i, d->path);
		if (!S_ISREG(st.st_mode))
			continue;   /* a block device cannot grow */
		uint64_t size = (uint64_t)st.st_size, alloc = (uint64_t)st.st_blocks * 512;
		growth += size > alloc ? size - alloc : 0;
		if (size > big)
			big = size;
	}
	uint64_t gmb = (growth + MIB - 1) / MIB;
	if (gmb + SPEC_DISK_MIN_MB > budget)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "drives: the writable drives are sparse and can still grow the host disk by %llu MiB; "
				 "[sandbox] disk_mb = %llu leaves less than %d MiB for the guest's writable root "
				 "(raise disk_mb, preallocate the drives, or make them read_only)",
				 (unsigned long long)gmb, (unsigned long long)budget, SPEC_DISK_MIN_MB);
	*scratch_mb = budget - gmb;
	if (*scratch_mb * MIB > big)
		big = *scratch_mb * MIB;
	*largest = big;
	return 0;
}

/* ---------------------------------------------------------------- sparse copies */

/* Call fn for each allocated extent of fd in [0, size). */
typedef int (*extent_fn)(void *ud, uint64_t off, uint64_t len, silo_error *err);

static int for_each_extent(int fd, uint64_t size, extent_fn fn, void *ud, silo_error *err)
{
	off_t pos = 0;
	while ((uint64_t)pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				return 0;   /* only a hole is left */
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "SEEK_DATA");
		}
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "SEEK_HOLE");
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		if (hole > data && fn(ud, (uint64_t)data, (uint64_t)(hole - data), err) < 0)
			return -1;
		pos = hole;
	}
	return 0;
}

/* Copy len bytes from in@ioff to out@ooff (in-kernel where the filesystem can). */
static int copy_range(int in, uint64_t ioff, int out, uint64_t ooff, uint64_t len, silo_error *err)
{
	while (len) {
		loff_t a = (loff_t)ioff, b = (loff_t)ooff;
		ssize_t n = copy_file_range(in, &a, out, &b, len > (1u << 30) ? (1u << 30) : len, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
			char buf[65536];
			size_t chunk = len < sizeof buf ? (size_t)len : sizeof buf;
			n = pread(in, buf, chunk, (off_t)ioff);
			if (n > 0 && pwrite(out, buf, (size_t)n, (off_t)ooff) != n)
				n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, n < 0 ? errno : EIO, "copying disk data");
		ioff += (uint64_t)n, ooff += (uint64_t)n, len -= (uint64_t)n;
	}
	return 0;
}

typedef struct same_off {
	int in, out;
} same_off;

static int copy_same_offset(void *ud, uint64_t off, uint64_t len, silo_error *err)
{
	same_off *c = ud;
	return copy_range(c->in, off, c->out, off, len, err);
}

/* ---------------------------------------------------------------- scratch disk */

static int find_mkfs(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof buf, "%s:/usr/sbin:/sbin", path && *path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/mkfs.ext4", d);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

int vm_scratch_probe(silo_error *err)
{
	char mkfs[PATH_MAX];
	if (find_mkfs(mkfs, sizeof mkfs) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT,
				 "mkfs.ext4 not found (apt-get install e2fsprogs): it formats the guest's scratch disk");
	return 0;
}

/* mkfs.ext4 an empty sparse file: no journal (a scratch disk never outlives its VM),
 * lazy inode tables (the guest mounts it with noinit_itable: the file stays sparse),
 * no reserved blocks (the whole budget is the user's). */
static int make_template(const char *path, uint64_t mb, silo_error *err)
{
	char mkfs[PATH_MAX];
	if (find_mkfs(mkfs, sizeof mkfs) < 0)
		return vm_scratch_probe(err);
	/* per thread: two first starts of one process (silod) make it at once */
	cleanup_free char *tmp = xasprintf("%s.tmp.%d.%d", path, (int)getpid(), (int)gettid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)(mb * MIB)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "scratch disk template %s", tmp);
	}
	close(fd);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return unlink(tmp), silo_fail(err, SILO_ERR_IO_ERROR, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]), close(p[1]), unlink(tmp);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "fork mkfs.ext4");
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		execl(mkfs, mkfs, "-q", "-F", "-O", "^has_journal", "-E",
		      "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", "-m", "0", "-L",
		      VM_SCRATCH_SERIAL, tmp, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char out[512];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(p[0], out + n, sizeof out - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof out - 1)
			n = 0;   /* keep reading; only a short message is reported */
	}
	out[n] = '\0';
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "mkfs.ext4 %s failed (status %d): %.300s", tmp,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "rename %s", path);
	}
	return 0;
}

/* The templates live in the state directory (<state>/disk-templates, 0700), not
 * in the image cache: whatever a template holds is in the upper layer of every
 * VM's root, above the signed image, and the cache's writer is not trusted
 * (docs/security.md, threat model; red-team pass 2: a file planted in
 * $SILO_CACHE_DIR/scratch/ext4-64.img showed up in a VM booted under a keyring). */
int vm_scratch_create(const char *dir, uint64_t mb, silo_error *err)
{
	char tdir[PATH_MAX], tpath[PATH_MAX + 64], disk[PATH_MAX + 32];
	snprintf(tdir, sizeof tdir, "%s/disk-templates", silo_state_dir());
	snprintf(tpath, sizeof tpath, "%s/ext4-%llu.img", tdir, (unsigned long long)mb);
	snprintf(disk, sizeof disk, "%s/" VM_SCRATCH_FILE, dir);
	if (!path_exists(tpath)) {
		if (mkdir_p(tdir, 0700) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", tdir);
		if (make_template(tpath, mb, err) < 0)
			return -1;
	}
	cleanup_close int in = open(tpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "scratch disk template %s", tpath);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != mb * MIB)
		return silo_fail(err, SILO_ERR_IO_ERROR, EINVAL,
				 "scratch disk template %s: not a %llu MiB file (remove it: it is rebuilt)", tpath,
				 (unsigned long long)mb);
	cleanup_close int out = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", disk);
	if (ftruncate(out, st.st_size) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "size %s", disk);
	same_off c = {.in = in, .out = out};
	if (for_each_extent(in, (uint64_t)st.st_size, copy_same_offset, &c, err) < 0) {
		unlink(disk);
		silo_error_prefix(err, "scratch disk %s", disk);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- snapshot form */

#define SNAP_MAGIC "SILODSK1"
#define SNAP_HDR 24
#define SNAP_MAX_EXTENTS (1u << 20)
#define SNAP_ALIGN 4096u

typedef struct extent_list {
	uint64_t (*v)[2];
	size_t n, cap;
	uint64_t bytes;
} extent_list;

static int collect(void *ud, uint64_t off, uint64_t len, silo_error *err)
{
	extent_list *l = ud;
	if (l->n == SNAP_MAX_EXTENTS)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "more than %u extents", SNAP_MAX_EXTENTS);
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n][0] = off;
	l->v[l->n][1] = len;
	l->n++;
	l->bytes += len;
	return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int vm_scratch_save(const char *disk, const char *outp, uint64_t *bytes, silo_error *err)
{
	cleanup_close int in = open(disk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "scratch disk %s", disk);
	extent_list l = {0};
	if (for_each_extent(in, (uint64_t)st.st_size, collect, &l, err) < 0) {
		free(l.v);
		silo_error_prefix(err, "scratch disk %s", disk);
		return -1;
	}
	size_t tlen = SNAP_HDR + l.n * 16;
	uint8_t *t = xcalloc(1, tlen);
	memcpy(t, SNAP_MAGIC, 8);
	put64(t + 8, (uint64_t)st.st_size);
	put64(t + 16, l.n);
	for (size_t i = 0; i < l.n; i++) {
		put64(t + SNAP_HDR + 16 * i, l.v[i][0]);
		put64(t + SNAP_HDR + 16 * i + 8, l.v[i][1]);
	}
	int rc = -1;
	int out = open(outp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", outp);
		goto done;
	}
	if (write_all(out, t, tlen) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "write %s", outp);
		goto done;
	}
	uint64_t pos = tlen;
	for (size_t i = 0; i < l.n; i++) {
		if (copy_range(in, l.v[i][0], out, pos, l.v[i][1], err) < 0)
			goto done;
		pos += l.v[i][1];
	}
	if (fsync(out) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "fsync %s", outp);
		goto done;
	}
	*bytes = pos;
	rc = 0;
done:
	if (out >= 0)
		close(out);
	if (rc < 0)
		unlink(outp);
	free(t);
	free(l.v);
	return rc;
}

int vm_scratch_check(const uint8_t *buf, size_t len, uint64_t want_size, silo_error *err)
{
	if (len < SNAP_HDR || memcmp(buf, SNAP_MAGIC, 8) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "scratch disk snapshot: bad magic");
	uint64_t size = get64(buf + 8), n = get64(buf + 16);
	if (!want_size && (size % MIB || size < (uint64_t)SPEC_DISK_MIN_MB * MIB || size > (uint64_t)SPEC_DISK_MAX_MB * MIB))
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "scratch disk snapshot: size %llu is not a disk budget",
				 (unsigned long long)size);
	if (want_size && size != want_size)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "scratch disk snapshot: a %llu-byte disk, the spec's disk budget gives %llu",
				 (unsigned long long)size, (unsigned long long)want_size);
	if (n > SNAP_MAX_EXTENTS || len < SNAP_HDR + n * 16)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "scratch disk snapshot: extent table of %llu "
				 "entries does not fit",
				 (unsigned long long)n);
	uint64_t end = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = get64(buf + SNAP_HDR + 16 * i), l = get64(buf + SNAP_HDR + 16 * i + 8);
		if (!l || off < end || l > size || off > size - l || off % SNAP_ALIGN)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "scratch disk snapshot: extent %llu (offset %llu, %llu bytes) is out of order or "
					 "outside the disk",
					 (unsigned long long)i, (unsigned long long)off, (unsigned long long)l);
		end = off + l;
	}
	return 0;
}

int vm_scratch_load(const char *inp, const char *disk, uint64_t want_size, silo_error *err)
{
	cleanup_close int in = open(inp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t hdr[SNAP_HDR];
	if (in < 0 || fstat(in, &st) < 0 || pread(in, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, errno ? errno : EIO, "%s", inp);
	uint64_t n = get64(hdr + 16);
	if (n > SNAP_MAX_EXTENTS)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s: %llu extents", inp, (unsigned long long)n);
	size_t tlen = SNAP_HDR + (size_t)n * 16;
	if ((uint64_t)st.st_size < tlen)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s: truncated extent table", inp);
	cleanup_free uint8_t *t = xmalloc(tlen);
	if (pread(in, t, tlen, 0) != (ssize_t)tlen)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno ? errno : EIO, "read %s", inp);
	if (vm_scratch_check(t, tlen, want_size, err) < 0) {
		silo_error_prefix(err, "%s", inp);
		return -1;
	}
	uint64_t data = 0;
	for (uint64_t i = 0; i < n; i++)
		data += get64(t + SNAP_HDR + 16 * i + 8);
	if ((uint64_t)st.st_size != tlen + data)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s: %llu bytes, the extent table says %llu", inp,
				 (unsigned long long)st.st_size, (unsigned long long)(tlen + data));
	cleanup_close int out = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", disk);
	if (ftruncate(out, (off_t)get64(t + 8)) < 0)
		return unlink(disk), silo_fail(err, SILO_ERR_IO_ERROR, errno, "size %s", disk);
	uint64_t pos = tlen;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = get64(t + SNAP_HDR + 16 * i), l = get64(t + SNAP_HDR + 16 * i + 8);
		if (copy_range(in, pos, out, off, l, err) < 0) {
			unlink(disk);
			return -1;
		}
		pos += l;
	}
	return 0;
}

/* ---------------------------------------------------------------- logs */

uint64_t vm_serial_log_max(void)
{
	const char *e = getenv("SILO_SERIAL_LOG_MAX");
	unsigned long long v = e && *e ? strtoull(e, NULL, 10) : 0;
	return v >= (64u << 10) && v <= (1ull << 30) ? v : VM_SERIAL_LOG_MAX;
}

/* ---------------------------------------------------------------- processes */

bool vm_proc_is(pid_t pid, const char *bin, const char *id)
{
	char p[64], exe[PATH_MAX];
	snprintf(p, sizeof p, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(p, exe, sizeof exe - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	const char *b = strrchr(exe, '/');
	if (strncmp(b ? b + 1 : exe, bin, strlen(bin)) != 0)
		return false;
	snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
	cleanup_free char *cl = NULL;
	size_t len = 0;
	if (read_file(p, 256 * 1024, &cl, &len, NULL) < 0)
		return false;
	char tag[SILO_ID_MAX + 8];
	snprintf(tag, sizeof tag, "silo-%s", id);
	for (size_t o = 0; o < len; o += strlen(cl + o) + 1)
		if (!strcmp(cl + o, tag))
			return true;
	return false;
}

bool vm_proc_zombie(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (read_file(p, 4096, &buf, &len, NULL) < 0)
		return true;
	const char *rp = strrchr(buf, ')');
	return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

pid_t vm_proc_child(pid_t pid)
{
	char p[80];
	snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (read_file(p, 4096, &buf, &len, NULL) < 0)
		return 0;
	pid_t c = (pid_t)atoi(buf);
	return c > 0 ? c : 0;
}

void vm_cgroup_remove(const char *id)
{
	cg_set cg;
	cg_paths(id, &cg);
	bool any = false;
	for (int i = 0; i < cg.n; i++)
		any = any || path_exists(cg.path[i]);
	if (any)
		cg_remove(&cg);
}

/* ---------------------------------------------------------------- uid lease */

int vm_uid_lease(const char *id, uid_t *uid, int *fd, silo_error *err)
{
	uint32_t h = 2166136261u;   /* FNV-1a of the id: a sandbox usually gets the same uid again */
	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (uint32_t i = 0; i < VM_UID_COUNT; i++) {
		uint32_t u = VM_UID_BASE + (h + i) % VM_UID_COUNT;
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "uid lease: socket");
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "silo-vm-uid-%u", u);
		if (bind(s, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) == 0) {
			*uid = (uid_t)u;
			*fd = s;
			return 0;
		}
		int e = errno;
		close(s);
		if (e != EADDRINUSE)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "uid lease: bind @silo-vm-uid-%u", u);
	}
	return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "uid lease: all %u VM uids from %u are in use",
			 VM_UID_COUNT, VM_UID_BASE);
}

/* ---- the run directory ---- */

void vm_rundir_remove(const vm_rundir *l, const char *rundir, bool and_dir)
{
	char p[PATH_MAX + 32];
	for (size_t i = 0; i < l->n_files; i++) {
		snprintf(p, sizeof p, "%s/%s", rundir, l->files[i]);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/%s", rundir, l->jail);
	rmdir(p);
	if (and_dir)
		rmdir(rundir);
}

void vm_residue(const vm_rundir *l, const char *id, const char *rundir, pid_t relay, const char *relay_name,
		const char *vmm_name, char ***out)
{
	char p[PATH_MAX + 32];
	for (size_t i = 0; i <= l->n_files; i++) {
		snprintf(p, sizeof p, "%s/%s", rundir, i < l->n_files ? l->files[i] : l->jail);
		if (path_exists(p)) /* only what is really left */
			strv_push(out, xstrdup(p));
	}
	if (relay > 0) {
		strv_push(out, xasprintf("pid %d (%s)", (int)relay, relay_name));
		pid_t vp = vm_proc_child(relay);
		if (vp > 0)
			strv_push(out, xasprintf("pid %d (%s)", (int)vp, vmm_name));
	}
	cg_set cg;
	cg_paths(id, &cg);
	for (int i = 0; i < cg.n; i++)
		if (path_exists(cg.path[i]))
			strv_push(out, xasprintf("cgroup %s", cg.path[i]));
}

bool vm_wait_exit(struct sandbox *sb, bool (*alive)(struct sandbox *), int ms, int poll_ms)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000ull;
	for (;;) {
		if (!alive(sb))
			return true;
		if (now_mono_ns() >= deadline)
			return false;
		struct timespec ts = {0, (long)poll_ms * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int vm_stop_jail(struct sandbox *sb, pid_t relay, const char *id, bool (*alive)(struct sandbox *), int poll_ms)
{
	if (relay > 0 && alive(sb)) {
		pid_t vp = vm_proc_child(relay);
		if (vp > 0)
			kill(vp, SIGKILL);
		if (!vm_wait_exit(sb, alive, vp > 0 ? 5000 : 0, poll_ms)) {
			kill(relay, SIGKILL);   /* the VMM has PR_SET_PDEATHSIG(SIGKILL) */
			if (!vm_wait_exit(sb, alive, 5000, poll_ms))
				return -1;
		}
	}
	vm_cgroup_remove(id);
	return 0;
}
