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
#include <time.h>
#include <unistd.h>

#include "vmm.h"

uint64_t vmm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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

static int fetch_cpuid(vm *v, silo_error *err)
{
	for (int n = 64; n <= 1024; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof *c + (size_t)n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "cpuid buffer");
		c->nent = (uint32_t)n;
		if (ioctl(v->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			v->cpuid = c;
			return 0;
		}
		int e = errno;
		free(c);
		if (e != E2BIG)
			return silo_fail(err, SILO_ERR_INTERNAL, e, "KVM_GET_SUPPORTED_CPUID");
	}
	return silo_fail(err, SILO_ERR_INTERNAL, E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
}

int vm_create(vm *v, const vm_config *cfg, silo_error *err)
{
	memset(v, 0, sizeof *v);
	v->kvm_fd = v->vm_fd = v->serial_fd = -1;
	v->mem.memfd = -1;
	v->cfg = *cfg;
	v->main_thread = pthread_self();
	pthread_mutex_init(&v->pause_lock, NULL);
	pthread_cond_init(&v->pause_cv, NULL);
	bus_init(&v->bus);
	if (cfg->vcpus < 1 || cfg->vcpus > VMM_MAX_VCPUS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "vcpus: %d is not in 1..%d", cfg->vcpus,
				 VMM_MAX_VCPUS);
	v->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm_fd < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "open /dev/kvm");
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
	if (ioctl(v->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)GPA_TSS) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_SET_TSS_ADDR");
	uint64_t idmap = GPA_IDENTITY_MAP;
	if (ioctl(v->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (cfg->irqchip) {
		if (ioctl(v->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_CREATE_IRQCHIP");
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
		if (ioctl(v->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_CREATE_PIT2");
	}
	if ((cfg->mem_file ? guest_mem_map_file(&v->mem, cfg->mem_file, cfg->mem_bytes, err)
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
	if (fetch_cpuid(v, err) < 0)
		return -1;
	for (int i = 0; i < cfg->vcpus; i++) {
		if (vcpu_create(v, i, err) < 0)
			return -1;
		v->nvcpus = i + 1;
	}
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
	if (v->kvm_fd >= 0)
		close(v->kvm_fd);
	v->vm_fd = v->kvm_fd = -1;
	free(v->cpuid);
	v->cpuid = NULL;
	for (int i = 0; i < v->nvirtio; i++)
		virtio_mmio_destroy(v->virtio[i]);
	v->nvirtio = 0;
	free(v->serial);
	v->serial = NULL;
	bus_destroy(&v->bus);
}
