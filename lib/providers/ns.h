/* SPDX-License-Identifier: Apache-2.0
 * Internals of the namespace provider (namespace.c), split by concern:
 * ns-seccomp.c (+ ns-seccomp-deny.h, the reviewed
 * deny-list), ns-rootfs.c (the cached busybox + agent base layer), ns-ids.c
 * (host id ranges and user namespaces), ns-disk.c (the size-limited writable
 * layer), ns-masks.h (the reviewed /proc and /sys masks).
 */
#ifndef SILO_PROVIDERS_NS_H
#define SILO_PROVIDERS_NS_H

#include <limits.h>
#include <linux/filter.h>
#include <linux/loop.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/cgroup.h"
#include "common/error.h"

/* ---- seccomp ---- */
typedef struct ns_deny_entry {
	const char *name;
	const char *why;
} ns_deny_entry;
extern const ns_deny_entry ns_seccomp_deny[];
extern const size_t ns_seccomp_deny_count;
typedef struct ns_socket_rule {
	int value;                        /* address family, or netlink protocol */
	int err;                          /* errno returned (families) */
	const char *name;
	const char *why;
} ns_socket_rule;
extern const ns_socket_rule ns_seccomp_socket_deny[];        /* socket(family): err */
extern const size_t ns_seccomp_socket_deny_count;
extern const ns_socket_rule ns_seccomp_netlink_allow[];      /* the only netlink protocols allowed */
extern const size_t ns_seccomp_netlink_allow_count;
typedef struct ns_bpf {
	struct sock_fprog prog;
} ns_bpf;
/* Compile the deny-list (EPERM) to BPF in the parent (libseccomp allocates). */
int ns_seccomp_build(ns_bpf *out, silo_error *err);
void ns_seccomp_free(ns_bpf *b);
/* In the child: load it (a prctl only; needs no_new_privs or CAP_SYS_ADMIN). 0 or -errno. */
int ns_seccomp_apply(const ns_bpf *b);
/* build + no_new_privs + apply in the calling process (tests). 0 or -errno. */
int ns_seccomp_install(void);

/* ---- /proc and /sys masks (reviewed data: ns-masks.h) ---- */
typedef enum ns_mask_kind {
	NS_MASK_HIDE,       /* a file: /dev/null bound over it; a directory: an empty read-only tmpfs */
	NS_MASK_RDONLY,     /* bound read-only onto itself */
} ns_mask_kind;
typedef struct ns_mask {
	ns_mask_kind kind;
	const char *path;   /* inside the sandbox; skipped when the kernel has no such entry */
	const char *why;
} ns_mask;
extern const ns_mask ns_masks[];
extern const size_t ns_masks_count;

/* ---- host id ranges (ns-ids.c) ---- */
#define NS_IDS_SIZE 65536u                 /* ids per sandbox: 0-65535 inside */
#define NS_IDS_DEFAULT_BASE 0x60000000u    /* 1610612736 */
#define NS_IDS_DEFAULT_SLOTS 4096u         /* .. 0x6fffffff */
#define NS_IDS_SUB_NAME "silo"             /* /etc/subuid, /etc/subgid entry that overrides them */
#define NS_IDS_DIR "/run/silo-ids"          /* host-wide slot records */
#define NS_IDS_SWEEP_SCAN 4096             /* records listed per allocation (at most) */
#define NS_IDS_SWEEP_CHECK 16              /* of which checked for a dead owner */
typedef struct ns_id_pool {
	uint32_t uid_base, gid_base, slots;
} ns_id_pool;
typedef struct ns_ids {
	int slot;                         /* -1: none (rootless: sandbox root is the caller's uid) */
	uint32_t uid, gid;                /* host ids of the sandbox's uid/gid 0 */
} ns_ids;
/* The pool from /etc/subuid + /etc/subgid ("silo" entries) or the default. */
int ns_ids_pool(ns_id_pool *pool, silo_error *err);
/* Find NAME:START:COUNT in a subuid-format text: 1 found, 0 absent, -1 malformed. */
int ns_ids_parse_sub(const char *text, const char *name, uint32_t *start, uint32_t *count);
/* Claim a free slot in dir for sandbox sbid, owned by the calling process for now. */
int ns_ids_alloc(const char *dir, const char *sbid, ns_ids *out, silo_error *err);
/* Replace path with text through tmp and rename: atomic for readers, not
 * durable (no fsync). Async-signal-safe. 0 or -1 with errno. */
int ns_write_volatile(const char *path, const char *tmp, const char *text);
/* Hand the slot record at path to pid (async-signal-safe; tmp: a scratch path beside it). */
int ns_ids_own(const char *path, const char *tmp, pid_t pid, const char *sbid);
/* Remove the slot record if pid owns it. */
void ns_ids_release(const char *dir, int slot, pid_t pid);
/* Does pid own the slot record? */
bool ns_ids_held(const char *dir, int slot, pid_t pid);
/* A user namespace mapping inside..inside+count-1 to outside.. (uids, gids), as
 * an fd (async-signal-safe). -1 with errno. The helper process that made it
 * is reaped before returning, or, when holder_out is not NULL, left for
 * ns_userns_reap() (it exits by itself at once; reaping it later saves
 * waiting for the scheduler to run it). */
int ns_userns_fd(uint32_t uid_inside, uint32_t uid_outside, uint32_t gid_inside, uint32_t gid_outside,
		 uint32_t count, pid_t *holder_out);
void ns_userns_reap(pid_t *holder);
/* Decimal v into dst (async-signal-safe: no snprintf in forked children). */
void ns_utoa(char *dst, size_t n, unsigned long long v);
/* /proc/PID/stat: state and start time (async-signal-safe). 0 or -1. */
int ns_proc_stat(pid_t pid, char *state, unsigned long long *start);
/* Alive and, when start is not 0, the same process (not a reused pid). */
bool ns_pid_alive(pid_t pid, unsigned long long start);
/* fork-like clone with the namespace flags, the child born in the cgroup v2
 * directory open as cgroup_fd (clone3 with CLONE_INTO_CGROUP): no migration
 * afterwards, so no cgroup.procs write and none of the threadgroup lock it
 * takes. Returns the pid in the parent, 0 in the child, -1 with errno
 * (ENOSYS, E2BIG: no clone3 here; the caller joins and clones instead).
 * Async-signal-safe. */
long ns_clone_into_cgroup(unsigned long flags, int cgroup_fd);

/* ---- /tmp, /run and /dev/shm in snapshots (ns-tmpfs.c) ---- */
#define NS_TMPFS_KEPT 3
/* While the sandbox whose init is init (host ids uid/gid for its root) is
 * frozen: write each of its /tmp, /run, /dev/shm that is a tmpfs to
 * dir/tmpfs/{tmp,run,dev-shm}.tar, with the ids the sandbox sees. The three
 * together are bounded by snap_max_bytes() (RESOURCE_EXCEEDED past it). */
int ns_tmpfs_save(pid_t init, uint32_t uid, uint32_t gid, const char *dir, silo_error *err);
/* Extract what ns_tmpfs_save wrote (nothing if dir/tmpfs is absent) into a
 * freshly started sandbox's tmpfs mounts, owners mapped into its own range. */
int ns_tmpfs_load(pid_t init, uint32_t uid, uint32_t gid, const char *dir, silo_error *err);

/* ---- the writable layer's disk (ns-disk.c) ---- */
typedef struct ns_disk {
	int loop_fd;                      /* ours until the sandbox has mounted it, then -1 */
	int nr;                           /* /dev/loopNR, -1 none */
	uint64_t dev, ino;                /* the backing file */
	char name[LO_NAME_SIZE];          /* "silo-ns:<sandbox id>" (lo_file_name) */
} ns_disk;
/* Can disks be made here? why: the reason when not. */
bool ns_disk_probe(char *why, size_t len);
void ns_disk_init(ns_disk *d, const char *sbid);
/* A fresh mb-MiB ext4 on a loop device (AUTOCLEAR), d initialized by ns_disk_init. */
int ns_disk_create(uint32_t mb, ns_disk *d, silo_error *err);
/* Drop our reference: from now on the device lives as long as its mounts. */
/* The disk's filesystem as a detached mount (not attached to any path; the
 * last fd's close unmounts it), with the overlay's "upper" (owned by uid/gid,
 * the sandbox's root) and "work" directories made. The sandbox init gets it
 * over a unix socket, so the mount (and its synchronous superblock write
 * through the loop device) happens in the parent, in parallel with the init's
 * clone. fd, or -1 with err. */
int ns_disk_mount(const ns_disk *d, uint32_t uid, uint32_t gid, silo_error *err);
void ns_disk_close(ns_disk *d);
void ns_disk_devpath(const ns_disk *d, char *out, size_t len);
/* The loop device named after sandbox sbid, whatever its state file says; -1 if none. */
int ns_disk_find(const char *sbid);
/* Is /dev/loopNR still this sandbox's disk? */
bool ns_disk_attached(const ns_disk *d);
/* A detached, read-only mount of the disk's filesystem, id-mapped through
 * userns_fd (never attached to a path: gone when the fd closes). fd or -1. */
int ns_disk_view(const ns_disk *d, int userns_fd, silo_error *err);

/* ---- Silo's own read-only layers (ns-rootfs.c) ---- */
#define NS_AGENT_DIR ".silo"               /* the agent layer's only directory */
/* Ensure the cached read-only base layer for agent_path exists; path into out. */
int ns_rootfs_base(const char *agent_path, char *out, size_t len, silo_error *err);
/* The same for the agent layer (NS_AGENT_DIR/silo-agent, nothing else). */
int ns_rootfs_agent(const char *agent_path, char *out, size_t len, silo_error *err);

#endif
