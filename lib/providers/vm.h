/* SPDX-License-Identifier: Apache-2.0
 * What the two VM providers (qemu.c, kvm.c) share, in vm-common.c:
 *   - what boots: the kernel, the loader or initramfs, the read-only root disk
 *     of an ext4 image (attached first, /dev/vda, named by silo.root=);
 *   - the guest kernel command line: Silo's parameters last, and the parameters
 *     that choose the root device or what runs as PID 1 reserved to Silo;
 *   - the scratch disk: the guest's writable layer, a sparse raw ext4 image of
 *     exactly the spec's disk budget ([sandbox] disk_mb), and its snapshot form;
 *   - the per-sandbox unprivileged uid of a jailed VMM, leased from a fixed range.
 * docs/providers.md ("Boot parameters", "Disk budget", "qemu: the jail") has the rules.
 */
#ifndef SILO_PROVIDERS_VM_H
#define SILO_PROVIDERS_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "spec/spec.h"

/* ---- what boots ---- */
typedef struct vm_boot_plan {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char rootdisk[PATH_MAX];   /* "" = none; attached read-only as /dev/vda, silo.root=/dev/vda */
	bool rootdisk_unsigned;    /* an OCI bundle's disk (silo-oci): not checked against the signed manifest */
	char hostname_arg[96];     /* " silo.hostname=NAME" (spec.hostname, silo-oci's) or "" */
} vm_boot_plan;
/* The kernel (boot.kernel or the guest kernel), the initramfs or loader (boot.initrd,
 * or the image's: boot.image, "base" by default), the root disk (an ext4 image's,
 * or boot.rootfs, a disk image file that needs a loader). Images are verified
 * (image_verify). prov names the provider in errors. kernel_alone: a boot.kernel
 * without boot.image or boot.initrd boots with no initramfs (kvm's tiny guests).
 * keyring: NULL to only plan; otherwise, for a boot, *keyring says whether a keyring
 * is configured, and with one every file of the plan must match the signed manifest
 * (trust_check_boot). */
int vm_plan_boot(const char *id, const char *prov, const vm_spec *spec, bool kernel_alone, bool *keyring,
		 vm_boot_plan *bp, silo_error *err);

/* Templates (provider_ops.template_identity): append "WHAT=PATH dev= ino= size= mtime= ctime="
 * of one boot file to *out (malloc'd; any rewrite moves the ctime). "" or NULL: nothing.
 * INVALID_CONFIG naming prov, what and path if it cannot be stat'ed. */
int vm_file_identity(const char *prov, const char *what, const char *path, char **out, silo_error *err);

/* ---- kernel command line ---- */
#define VM_CMDLINE_USER_MAX 1024
/* Compose "<user params> <silo params>" into a malloc'd *out. User parameters that
 * choose the root device or init (root=, init=, rdinit=, silo.*, "--", ... see
 * vm-common.c) are refused when a keyring is configured (CHECKSUM_MISMATCH,
 * "supply chain: boot.cmdline: ...", reported to the trust violation hook) and
 * dropped with a warning otherwise. Control characters, non-ASCII, double quotes
 * and more than VM_CMDLINE_USER_MAX bytes are INVALID_CONFIG naming boot.cmdline. */
int vm_cmdline_compose(const char *user, const char *silo, bool keyring, char **out, silo_error *err);
/* Is this one parameter (a whitespace-free token) reserved to Silo? */
bool vm_cmdline_reserved(const char *token);

/* ---- disk budget and the scratch disk ---- */
#define VM_SCRATCH_FILE "disk.img"
#define VM_SCRATCH_SERIAL "silo-scratch"
#define VM_SCRATCH_SNAP "disk.sparse"
/* How much the sandbox may grow the host disk: spec_disk_mb(spec). Writable [[drives]]
 * count with what they can still grow (apparent size minus allocated blocks); the
 * rest is the scratch disk, at least SPEC_DISK_MIN_MB. INVALID_CONFIG naming the
 * drive and disk_mb otherwise. *largest = the largest writable file in bytes
 * (drives and the scratch disk), for RLIMIT_FSIZE. */
int vm_disk_budget(const vm_spec *spec, uint64_t *scratch_mb, uint64_t *largest, silo_error *err);
/* Can scratch disks be made here (mkfs.ext4 found)? For the providers' probes. */
int vm_scratch_probe(silo_error *err);
/* Create dir/disk.img: a sparse copy of a cached empty ext4 filesystem of mb MiB
 * ($SILO_CACHE_DIR/scratch/ext4-<mb>.img, made once with mkfs.ext4). */
int vm_scratch_create(const char *dir, uint64_t mb, silo_error *err);
/* Snapshot form of a scratch disk: only its allocated extents.
 *   "SILODSK1" | u64 size | u64 n | n x (u64 offset, u64 length) | the extents' bytes
 * (little endian; extents sorted, disjoint, 4 KiB aligned, inside size). */
int vm_scratch_save(const char *disk, const char *out, uint64_t *bytes, silo_error *err);
/* Recreate disk (must not exist) from a snapshot form; its size must be want_size
 * (0: any disk budget, SPEC_DISK_MIN_MB..SPEC_DISK_MAX_MB whole MiB). */
int vm_scratch_load(const char *in, const char *disk, uint64_t want_size, silo_error *err);
/* Validate the header and extent table of a snapshot form held in memory (want_size as
 * above): 0, or -1 with CHECKSUM_MISMATCH. */
int vm_scratch_check(const uint8_t *buf, size_t len, uint64_t want_size, silo_error *err);

/* ---- logs ---- */
/* The serial log cap in bytes (the tail is kept): $SILO_SERIAL_LOG_MAX, 64 KiB .. 1 GiB,
 * default VM_SERIAL_LOG_MAX. */
#define VM_SERIAL_LOG_MAX (16ull << 20)
uint64_t vm_serial_log_max(void);

/* ---- uid of a jailed VMM ---- */
/* Per-sandbox uids (= gids) VM_UID_BASE .. VM_UID_BASE + VM_UID_COUNT - 1. */
#define VM_UID_BASE 1879048192u   /* 0x70000000: above the namespace provider's 0x60000000-0x6fffffff (ns.h) */
#define VM_UID_COUNT 65536u
/* Lease a uid no live sandbox on this host holds: *fd is a bound abstract unix socket
 * "@silo-vm-uid-<uid>" (close-on-exec); the lease lasts while any copy of it is open. */
int vm_uid_lease(const char *id, uid_t *uid, int *fd, silo_error *err);

/* ---- the VMM's processes (a relay and its one child, as silo-jailer and silo-vmm run) ---- */
/* Is pid a process of binary `bin` (by /proc/PID/exe's name) whose command line carries the
 * VM tag silo-<id>? Guards signals against pid reuse after a reattach. */
bool vm_proc_is(pid_t pid, const char *bin, const char *id);
bool vm_proc_zombie(pid_t pid);
/* The first child of pid (the relay's VMM), 0 if none. */
pid_t vm_proc_child(pid_t pid);
/* Remove the cgroup silo/<id> if a relay that was killed left it. */
void vm_cgroup_remove(const char *id);
/* Poll alive(sb) every poll_ms until it is false (true) or ms have passed (false). */
struct sandbox;
bool vm_wait_exit(struct sandbox *sb, bool (*alive)(struct sandbox *), int ms, int poll_ms);
/* Force a jail down: SIGKILL the relay's child, the VMM (the relay then cleans up and
 * exits), then the relay if it lingers, then any cgroup left. relay: sb's pid, 0 = none.
 * -1 if the relay would not die. */
int vm_stop_jail(struct sandbox *sb, pid_t relay, const char *id, bool (*alive)(struct sandbox *), int poll_ms);

/* ---- the run directory a VM provider leaves behind ---- */
typedef struct vm_rundir {
	const char *const *files;  /* relative to the rundir: sockets, logs, the scratch disk */
	size_t n_files;
	const char *jail;          /* the jail's root directory, relative */
} vm_rundir;
/* Unlink the files, rmdir the jail's root, and the rundir itself with and_dir. */
void vm_rundir_remove(const vm_rundir *l, const char *rundir, bool and_dir);
/* provider_ops.residue: the files and jail directory that still exist, the relay
 * (pid, when the caller found it alive and ours; 0 = none) and its child named
 * "pid N (relay_name)" / "pid N (vmm_name)", and the sandbox's cgroups. */
void vm_residue(const vm_rundir *l, const char *id, const char *rundir, pid_t relay, const char *relay_name,
		const char *vmm_name, char ***out);

#endif
