/* SPDX-License-Identifier: Apache-2.0
 * VM setup: /dev/kvm, the VM fd, in-kernel irqchip + PIT, TSS and identity-map
 * addresses, guest RAM slot, the CPUID template.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "files.h"
#include "vmm.h"

uint64_t vmm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct {
	const char *name;
	uint64_t ns, took;
} steps[VMM_MAX_STEPS];
static atomic_int nsteps;
static _Atomic uint64_t last_step_ns;
static __thread uint64_t thread_prev_ns; /* this thread's previous step (0: none yet) */

void vmm_steps_begin(uint64_t t0)
{
	thread_prev_ns = t0;
	atomic_store(&last_step_ns, t0);
}

void vmm_step_thread_begin(void)
{
	thread_prev_ns = vmm_now_ns();
}

void vmm_step(const char *name)
{
	uint64_t now = vmm_now_ns();
	/* a thread that did not begin its own chain (a vCPU) counts from the last step of all */
	uint64_t prev = thread_prev_ns ? thread_prev_ns : atomic_load(&last_step_ns);
	thread_prev_ns = now;
	atomic_store(&last_step_ns, now);
	int i = atomic_fetch_add(&nsteps, 1);
	if (i < VMM_MAX_STEPS) {
		steps[i].ns = now;
		steps[i].took = now > prev ? now - prev : 0;
		steps[i].name = name;
	}
}

void vmm_steps_json(uint64_t t0, bool took, char *buf, size_t len)
{
	size_t n = 0;
	int k = atomic_load(&nsteps);
	if (k > VMM_MAX_STEPS)
		k = VMM_MAX_STEPS;
	buf[0] = '\0';
	for (int i = 0; i < k && n < len; i++) {
		uint64_t us = took ? steps[i].took / 1000 : steps[i].ns > t0 ? (steps[i].ns - t0) / 1000 : 0;
		int w = snprintf(buf + n, len - n, "%s\"%s\":%llu", i ? "," : "", steps[i].name, (unsigned long long)us);
		if (w < 0 || (size_t)w >= len - n) {
			buf[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
}

const char *vm_exit_reason_name(vm_exit_reason r)
{
	switch (r) {
	case VM_EXIT_NONE: return "none";
	case VM_EXIT_HALT: return "halt";
	case VM_EXIT_RESET: return "reset";
	case VM_EXIT_SHUTDOWN: return "shutdown";
	case VM_EXIT_DEBUG_EXIT: return "debug-exit";
	case VM_EXIT_SIGNAL: return "signal";
	case VM_EXIT_TIMEOUT: return "timeout";
	case VM_EXIT_ERROR: return "error";
	}
	return "unknown";
}

void vm_request_stop(vm *v, vm_exit_reason r, int code)
{
	int expected = VM_EXIT_NONE;
	if (atomic_compare_exchange_strong(&v->exit_reason, &expected, (int)r))
		atomic_store(&v->exit_code, code);
	atomic_store(&v->stopping, true);
	pthread_kill(v->main_thread, SIGUSR2);
}

/* KVM_GET_SUPPORTED_CPUID costs ~0.45 ms of CPU here (a nested host: every CPUID the kernel
 * runs to build the table traps to the outer hypervisor), more than building the rest of the
 * VM. The table only changes with the kernel, the CPU or the KVM module, so it is cached:
 *   $SILO_RUNTIME_DIR (default /run/silo)/vmm-cpuid.bin, written by root (mode 0644, in a
 *   root-owned directory nobody else can write): "SILOCPU1" | u32 nent | u32 0 | boot_id (40) |
 *   u64 ino | i64 ctime sec | i64 ctime nsec of /dev/kvm | nent x kvm_cpuid_entry2.
 * A reboot changes boot_id, reloading the KVM module recreates /dev/kvm (new inode and
 * ctime): either makes the file stale and it is rebuilt. Anything that does not match
 * exactly (owner, mode, size, key) is ignored. Without root there is no cache. On a miss the
 * table is fetched in a thread started early (vm_prefetch_cpuid) while the start-up goes on;
 * every VM gets a copy. */
enum { CPUID_MAX_ENTRIES = 256 }; /* KVM_MAX_CPUID_ENTRIES */
#define CPUID_CACHE_FILE "vmm-cpuid.bin"

typedef struct cpuid_key {
	char magic[8];
	uint32_t nent, zero;
	char boot_id[40];
	uint64_t ino;
	int64_t ctime_sec, ctime_nsec;
} cpuid_key;

static struct {
	pthread_t thread;
	bool started, joined;
	struct kvm_cpuid2 *table;
	int err;      /* errno of a failed fetch */
	int dirfd;    /* the cache directory (opened before the jail), -1: no cache */
	cpuid_key key;
} cpuid_cache = {.dirfd = -1};

static bool cpuid_make_key(cpuid_key *k)
{
	memset(k, 0, sizeof *k);
	memcpy(k->magic, "SILOCPU1", 8);
	struct stat st;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, k->boot_id, sizeof k->boot_id - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n < 36 || stat("/dev/kvm", &st) < 0)
		return false;
	k->ino = (uint64_t)st.st_ino;
	k->ctime_sec = (int64_t)st.st_ctim.tv_sec;
	k->ctime_nsec = (int64_t)st.st_ctim.tv_nsec;
	return true;
}

/* The cached table, or NULL. */
static struct kvm_cpuid2 *cpuid_cache_read(void)
{
	int fd = openat(cpuid_cache.dirfd, CPUID_CACHE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	cpuid_key k;
	struct kvm_cpuid2 *c = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) ||
	    pread(fd, &k, sizeof k, 0) != (ssize_t)sizeof k || k.nent == 0 || k.nent > CPUID_MAX_ENTRIES ||
	    (uint64_t)st.st_size != sizeof k + k.nent * sizeof(struct kvm_cpuid_entry2))
		goto out;
	cpuid_key want = cpuid_cache.key;
	want.nent = k.nent;
	if (memcmp(&k, &want, sizeof k))
		goto out;
	c = calloc(1, sizeof *c + k.nent * sizeof(struct kvm_cpuid_entry2));
	if (c && pread(fd, c->entries, k.nent * sizeof(struct kvm_cpuid_entry2), sizeof k) !=
			  (ssize_t)(k.nent * sizeof(struct kvm_cpuid_entry2))) {
		free(c);
		c = NULL;
	}
	if (c)
		c->nent = k.nent;
out:
	close(fd);
	return c;
}

static void cpuid_cache_write(const struct kvm_cpuid2 *c)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, CPUID_CACHE_FILE ".%d.tmp", (int)getpid());
	int fd = openat(cpuid_cache.dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	cpuid_key k = cpuid_cache.key;
	k.nent = c->nent;
	bool ok = write_all(fd, &k, sizeof k) == 0 &&
		  write_all(fd, c->entries, c->nent * sizeof(struct kvm_cpuid_entry2)) == 0 && fchmod(fd, 0644) == 0;
	close(fd);
	if (!ok || renameat(cpuid_cache.dirfd, tmp, cpuid_cache.dirfd, CPUID_CACHE_FILE) < 0)
		unlinkat(cpuid_cache.dirfd, tmp, 0);
}

static void *cpuid_fetch(void *arg)
{
	if (arg)
		vmm_step_thread_begin(); /* its own thread */
	struct kvm_cpuid2 *c = calloc(1, sizeof *c + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	int fd = vmm_kvm_fd(NULL);
	if (!c) {
		cpuid_cache.err = ENOMEM;
		return NULL;
	}
	c->nent = CPUID_MAX_ENTRIES;
	if (fd < 0 || ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		cpuid_cache.err = fd < 0 ? ENODEV : errno;
		free(c);
		return NULL;
	}
	cpuid_cache.table = c;
	vmm_step("cpuid_fetched");
	if (cpuid_cache.dirfd >= 0)
		cpuid_cache_write(c);
	return NULL;
}

/* The cache directory: root's, not writable by anyone else. */
static int cpuid_cache_dir(void)
{
	if (geteuid() != 0)
		return -1;
	const char *dir = silo_runtime_dir();
	mkdir_p(dir, 0755);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void vm_prefetch_cpuid(void)
{
	if (cpuid_cache.started || cpuid_cache.table)
		return;
	cpuid_cache.dirfd = cpuid_make_key(&cpuid_cache.key) ? cpuid_cache_dir() : -1;
	if (cpuid_cache.dirfd >= 0 && (cpuid_cache.table = cpuid_cache_read()))
		return;
	if (pthread_create(&cpuid_cache.thread, NULL, cpuid_fetch, "thread") == 0)
		cpuid_cache.started = true;
}

void vm_cpuid_join(void)
{
	if (cpuid_cache.started && !cpuid_cache.joined) {
		pthread_join(cpuid_cache.thread, NULL);
		cpuid_cache.joined = true;
	}
	if (cpuid_cache.dirfd >= 0) {
		close(cpuid_cache.dirfd); /* not into the jail */
		cpuid_cache.dirfd = -1;
	}
}

static int fetch_cpuid(vm *v, silo_error *err)
{
	vm_cpuid_join();
	if (!cpuid_cache.table && !cpuid_cache.started)
		cpuid_fetch(NULL);
	if (!cpuid_cache.table)
		return silo_fail(err, SILO_ERR_INTERNAL, cpuid_cache.err, "KVM_GET_SUPPORTED_CPUID");
	size_t sz = sizeof *cpuid_cache.table + cpuid_cache.table->nent * sizeof(struct kvm_cpuid_entry2);
	v->cpuid = xmalloc(sz);
	memcpy(v->cpuid, cpuid_cache.table, sz);
	return 0;
}

int vm_create(vm *v, const vm_config *cfg, silo_error *err)
{
	memset(v, 0, sizeof *v);
	v->kvm_fd = v->vm_fd = v->serial_fd = -1;
	v->mem.memfd = -1;
	v->cfg = *cfg;
	v->main_thread = pthread_self(); /* vcpus_start sets it again: the VM may be built elsewhere */
	pthread_mutex_init(&v->pause_lock, NULL);
	pthread_cond_init(&v->pause_cv, NULL);
	bus_init(&v->bus);
	if (cfg->vcpus < 1 || cfg->vcpus > VMM_MAX_VCPUS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "vcpus: %d is not in 1..%d", cfg->vcpus,
				 VMM_MAX_VCPUS);
	/* /dev/kvm was opened before the jail; the VM only borrows it */
	v->kvm_fd = vmm_kvm_fd(err);
	if (v->kvm_fd < 0)
		return -1;
	int api = ioctl(v->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "/dev/kvm API version %d, need %d",
				 api, KVM_API_VERSION);
	static const struct {
		int cap;
		const char *name;
	} need[] = {{KVM_CAP_USER_MEMORY, "USER_MEMORY"}, {KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR"},
		    {KVM_CAP_EXT_CPUID, "EXT_CPUID"}, {KVM_CAP_IRQCHIP, "IRQCHIP"}};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (ioctl(v->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "/dev/kvm lacks KVM_CAP_%s",
					 need[i].name);
	do
		v->vm_fd = ioctl(v->kvm_fd, KVM_CREATE_VM, 0);
	while (v->vm_fd < 0 && errno == EINTR);
	if (v->vm_fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "KVM_CREATE_VM");
	vmm_step("kvm_create_vm");
	if (ioctl(v->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)GPA_TSS) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_SET_TSS_ADDR");
	uint64_t idmap = GPA_IDENTITY_MAP;
	if (ioctl(v->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	/* Guest RAM before the irqchip and the PIT: registering their I/O devices queues
	 * SRCU grace periods that a later KVM_SET_USER_MEMORY_REGION would have to wait for
	 * (measured here: 4-11 ms after, ~0.1 ms before; docs/vmm.md "Start-up"). */
	if ((cfg->mem_name ? guest_mem_map_file(&v->mem, cfg->mem_fd, cfg->mem_name, cfg->mem_bytes, err)
			   : guest_mem_create(&v->mem, cfg->mem_bytes, err)) < 0)
		return -1;
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = v->mem.size,
		.userspace_addr = (uint64_t)(uintptr_t)v->mem.host,
	};
	if (ioctl(v->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_SET_USER_MEMORY_REGION");
	vmm_step("guest_ram");
	if (cfg->irqchip) {
		if (ioctl(v->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_CREATE_IRQCHIP");
		vmm_step("irqchip");
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
		if (ioctl(v->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_CREATE_PIT2");
		vmm_step("pit");
	}
	if (fetch_cpuid(v, err) < 0)
		return -1;
	for (int i = 0; i < cfg->vcpus; i++) {
		if (vcpu_create(v, i, err) < 0)
			return -1;
		v->nvcpus = i + 1;
	}
	vmm_step("vcpus");
	return 0;
}

void vm_destroy(vm *v)
{
	vcpus_stop_and_join(v);
	for (int i = 0; i < v->nvcpus; i++) {
		vcpu *c = &v->vcpus[i];
		if (c->run)
			munmap(c->run, c->run_size);
		if (c->fd >= 0)
			close(c->fd);
	}
	v->nvcpus = 0;
	guest_mem_destroy(&v->mem);
	if (v->vm_fd >= 0)
		close(v->vm_fd);
	v->vm_fd = v->kvm_fd = -1; /* kvm_fd is borrowed (files.c) */
	free(v->cpuid);
	v->cpuid = NULL;
	for (int i = 0; i < v->nvirtio; i++)
		virtio_mmio_destroy(v->virtio[i]);
	v->nvirtio = 0;
	free(v->serial);
	v->serial = NULL;
	bus_destroy(&v->bus);
}
