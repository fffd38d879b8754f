/* SPDX-License-Identifier: Apache-2.0
 * Providers: one static const ops struct each, listed in providers.c.
 * A provider starts an isolated environment that runs silo-agent and gives
 * the core a byte stream to it; everything above the stream (exec, files,
 * heartbeat) is the same wire protocol for every provider.
 */
#ifndef SILO_CORE_PROVIDER_H
#define SILO_CORE_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "spec/spec.h"

struct sandbox;

typedef struct provider_info {
	const char *name;
	bool available;
	char version[64];      /* e.g. "QEMU 7.2.x", "silo-vmm 0.1.0", kernel release */
	char accel[32];        /* "kvm", "tcg", "pvm", "none" */
	char reason[256];      /* why not available */
} provider_info;

/* What a provider leaves in struct sandbox (see sandbox.h):
 *   sb->rundir     per-sandbox directory (created by the core before spawn)
 *   sb->pid        the supervising host process (VMM, QEMU, namespace init)
 *   sb->prov       provider-private state (freed by terminate)
 */
/* How a provider's sandboxes meet their host-side network stack
 * (docs/network.md; lib/core/sandbox_net.c does the rest). */
typedef enum provider_net {
	PROVIDER_NET_NONE = 0,   /* network = true is NOT_SUPPORTED */
	PROVIDER_NET_STREAM,     /* spawn attaches sb->net_fd (a connected stream socket speaking
				  * QEMU's length-prefixed Ethernet frames) as the guest's NIC */
	PROVIDER_NET_NETNS,      /* the stack joins the network namespace of sb->pid after spawn */
} provider_net;

typedef struct provider_ops {
	const char *name;
	provider_net net;
	uint32_t net_mtu;        /* the guest's MTU with network = true; 0 = 1500 */
	/* Isolation class: true = the guest runs its own kernel in a hardware VM
	 * ("vm"); false = it shares the host kernel ("namespace"). Falling back
	 * from a vm provider to another is never silent (provider_choose). */
	bool vm;
	/* Every process of a sandbox runs in a pid namespace whose init is
	 * sb->pid, and every host process the provider starts is reaped before
	 * spawn returns or named by residue() (pid + start time). Once alive() is
	 * false the kernel has killed and reaped the whole namespace
	 * (zap_pid_ns_processes runs before the init exits), so cleanup
	 * verification skips its scan of every host process (cleanup.h). */
	bool pidns_contained;
	/* Fill info; never fails: unavailability is reported in info. */
	void (*probe)(provider_info *info);
	/* Start the environment from spec. Returns when the process is started
	 * (not necessarily ready). Must clean up fully on failure. */
	int (*spawn)(struct sandbox *sb, const vm_spec *spec, silo_error *err);
	/* Open a new byte stream to the agent (blocking up to timeout_ms). Returns fd. */
	int (*connect)(struct sandbox *sb, int timeout_ms, silo_error *err);
	/* Stop: ask nicely (grace_ms), then force. Remove everything spawn created. */
	int (*terminate)(struct sandbox *sb, int grace_ms, silo_error *err);
	/* Is the supervising process still alive? */
	bool (*alive)(struct sandbox *sb);
	/* After a manager restart: rebuild provider state from sb->rundir and sb->pid. Optional. */
	int (*reattach)(struct sandbox *sb, silo_error *err);
	/* Optional: pause/resume the whole environment. */
	int (*pause)(struct sandbox *sb, silo_error *err);
	int (*resume)(struct sandbox *sb, silo_error *err);
	/* Optional: list host resources that must be gone after terminate
	 * (paths, cgroups, pids); used by cleanup verification. Appends to out (strv). */
	void (*residue)(struct sandbox *sb, char ***out);
	/* Optional: a short human-readable state for BOOT_TIMEOUT and similar errors
	 * (qemu: tail of the serial console + QEMU stderr). Call before terminate;
	 * sandbox.c appends it to the BOOT_TIMEOUT message. */
	void (*diagnostics)(struct sandbox *sb, char *buf, size_t len);
	/* Optional (docs/snapshots.md): write the sandbox's state into dir, a
	 * snapshot payload directory the store hashes afterwards. The core has
	 * paused the sandbox (pause op) and resumes it afterwards if asked. */
	int (*snapshot)(struct sandbox *sb, const char *dir, silo_error *err);
	/* Optional: like spawn, but start from a payload that snapshot() wrote
	 * (already verified against its manifest by the caller). */
	int (*restore)(struct sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err);
	/* Optional (templates, lib/core/template.c): append to *out (malloc'd text)
	 * the identity of everything a boot of spec depends on beyond the spec
	 * itself: accelerator, VMM binary, kernel, initramfs (which carries the
	 * agent), root disk (path, device, inode, size, mtime, ctime: any rewrite
	 * moves the ctime). With a keyring configured the boot files are checked
	 * against the signed manifest here, as a cold boot checks them. */
	int (*template_identity)(const vm_spec *spec, char **out, silo_error *err);
} provider_ops;

/* providers.c */
const provider_ops *provider_find(const char *name);
/* All known providers, NULL-terminated, in default fallback order (kvm, qemu, namespace). */
const provider_ops *const *provider_all(void);
/* "vm" or "namespace" (the isolation class of p, shown in sandbox state). */
const char *provider_isolation(const provider_ops *p);

typedef struct provider_choice {
	const provider_ops *ops;
	/* A vm provider earlier in the order was unavailable and a non-vm one was
	 * chosen: weaker isolation than the order asked for first. why says why
	 * each skipped provider was unavailable. */
	bool fell_back;
	char why[512];
} provider_choice;

/* Pick the provider for a spec: the requested one if available (no fallback),
 * else the first available in `fallback` (comma list, NULL =
 * "kvm,qemu,namespace"). need_vm_by non-NULL (who asks, e.g.
 * "vm.isolation = \"vm\"") forbids non-vm providers: PROVIDER_UNAVAILABLE
 * naming why each vm provider failed. */
int provider_choose(const char *requested, const char *fallback, const char *need_vm_by, provider_choice *out,
		    silo_error *err);
/* provider_choose without an isolation requirement; why gets the reasons. */
const provider_ops *provider_select(const char *requested, const char *fallback, char *why,
				    size_t why_len, silo_error *err);

#endif
