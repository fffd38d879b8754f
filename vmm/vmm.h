/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm internals: the VM, guest memory, the I/O bus and the vCPUs.
 * Layout and protocols: docs/vmm.md.
 */
#ifndef SILO_VMM_H
#define SILO_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define VMM_MAX_VCPUS 32
#define VMM_MAX_BUS_DEVICES 64

/* Guest physical memory layout (docs/vmm.md). */
#define GPA_GDT 0x500ULL
#define GPA_PML4 0x9000ULL
#define GPA_PDPT 0xa000ULL
#define GPA_PD 0xb000ULL /* 4 pages: identity map of 4 GiB with 2 MiB pages */
#define GPA_FLAT_LOAD 0x10000ULL /* raw flat payloads, entered in real mode at 1000:0000 */
#define GPA_TSS 0xfffbd000ULL
#define GPA_IDENTITY_MAP 0xfffbc000ULL
#define GPA_MMIO_GAP_START 0xc0000000ULL /* no RAM between here and 4 GiB */
#define GPA_BOOT_TIMER 0xd0000000ULL
#define BOOT_TIMER_MAGIC 123
#define GPA_VIRTIO_BASE 0xd0001000ULL /* virtio-mmio device i at + i * 0x1000 */
#define VIRTIO_IRQ_BASE 5

/* Port-I/O devices. */
#define PORT_SERIAL0 0x3f8
#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD 0x64
#define PORT_DEBUG_EXIT 0xf4 /* QEMU isa-debug-exit compatible */
#define PORT_BOOT_TIMER 0x440
#define PORT_POST 0x80 /* first write = first guest instruction timestamp */
#define SERIAL_LOG_MAX_DEFAULT (16ull << 20) /* --serial-log-max */

typedef struct guest_mem {
	int memfd;
	uint8_t *host;
	uint64_t size; /* bytes of RAM starting at GPA 0 (below the MMIO gap) */
} guest_mem;

/* memory.c */
int guest_mem_create(guest_mem *m, uint64_t size, silo_error *err);
/* Restore: map the first size bytes of a snapshot memory file MAP_PRIVATE (copy-on-write).
 * fd stays the caller's; name is for errors. */
int guest_mem_map_file(guest_mem *m, int fd, const char *name, uint64_t size, silo_error *err);
void guest_mem_destroy(guest_mem *m);
/* Host pointer for [gpa, gpa+len) or NULL if any byte is outside guest RAM. */
void *guest_mem_ptr(const guest_mem *m, uint64_t gpa, uint64_t len);
/* Copy in/out with full bounds checks; -1 (no partial copy) when out of range. */
int guest_mem_write(const guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int guest_mem_read(const guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* bus.c: port and MMIO ranges dispatched to devices. */
typedef enum bus_space { BUS_PIO, BUS_MMIO } bus_space;
struct vm;
typedef struct bus_device_ops {
	const char *name;
	/* offset is relative to the range base; len is 1..8. */
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
} bus_device_ops;
typedef struct bus_range {
	bus_space space;
	uint64_t base, len;
	const bus_device_ops *ops;
	void *opaque;
} bus_range;
typedef struct bus {
	pthread_mutex_t lock; /* device emulation is serialized (devices are simple) */
	bus_range ranges[VMM_MAX_BUS_DEVICES];
	size_t n;
	uint64_t unhandled; /* accesses nobody claimed (reads return all ones) */
} bus;
void bus_init(bus *b);
void bus_destroy(bus *b);
int bus_register(bus *b, bus_space space, uint64_t base, uint64_t len, const bus_device_ops *ops,
		 void *opaque, silo_error *err);
/* Returns true when a device claimed the access. */
bool bus_access(bus *b, bus_space space, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

/* Why the VM stopped. */
typedef enum vm_exit_reason {
	VM_EXIT_NONE = 0,
	VM_EXIT_HALT,       /* HLT without an in-kernel irqchip */
	VM_EXIT_RESET,      /* i8042 0xFE or KVM_SYSTEM_EVENT reset */
	VM_EXIT_SHUTDOWN,   /* triple fault or KVM_SYSTEM_EVENT shutdown */
	VM_EXIT_DEBUG_EXIT, /* write to the debug-exit port */
	VM_EXIT_SIGNAL,     /* SIGTERM/SIGINT to the VMM */
	VM_EXIT_TIMEOUT,    /* --timeout-ms elapsed */
	VM_EXIT_ERROR,      /* internal error or unhandled guest state */
} vm_exit_reason;
const char *vm_exit_reason_name(vm_exit_reason r);

typedef struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	bool on_caller; /* vCPU 0: runs on the thread that calls vm_run, not a thread of its own */
	uint64_t exits;
} vcpu;

typedef enum boot_mode {
	BOOT_REAL_MODE, /* CS:IP = entry_cs:entry_ip */
	BOOT_LONG_MODE, /* 64-bit, identity-mapped 4 GiB, RIP = entry */
	BOOT_PROT32,    /* 32-bit flat protected mode, paging off (PVH) */
} boot_mode;

typedef struct boot_state {
	boot_mode mode;
	uint64_t entry;
	uint16_t entry_cs;
	uint64_t rsp;
	uint64_t rsi; /* bzImage: boot_params */
	uint64_t rbx; /* PVH: hvm_start_info */
} boot_state;

typedef struct vm_config {
	uint64_t mem_bytes;
	int vcpus;
	bool irqchip; /* in-kernel LAPIC/IOAPIC/PIC + PIT (default on) */
	const char *serial_log; /* NULL = stdout */
	uint64_t serial_log_max; /* cap of a serial log file in bytes (tail kept, logcap.h) */
	bool boot_timer;
	uint64_t timeout_ms; /* 0 = none */
	const char *mem_name; /* restore (non-NULL): guest RAM from this snapshot memory file, */
	int mem_fd;           /* open as mem_fd, mapped MAP_PRIVATE */
} vm_config;

typedef struct serial_dev serial_dev;

typedef struct vm {
	vm_config cfg;
	int kvm_fd, vm_fd;
	guest_mem mem;
	bus bus;
	vcpu vcpus[VMM_MAX_VCPUS];
	int nvcpus;
	boot_state boot;
	struct kvm_cpuid2 *cpuid;
	serial_dev *serial;
	struct virtio_mmio *virtio[16];
	int nvirtio;
	int serial_fd;
	/* Timing: CLOCK_MONOTONIC ns. */
	uint64_t t_process_start, t_vm_start, t_first_run;
	atomic_ullong t_boot_timer; /* 0 until the guest signals */
	atomic_ullong t_first_post; /* first write to PORT_POST */
	atomic_int exit_reason;
	atomic_int exit_code;
	atomic_bool stopping;
	_Atomic(pthread_t) main_thread; /* woken (SIGUSR2) by vm_request_stop: vm_run's stop thread */
	atomic_bool vcpu0_left;         /* vm_run: vCPU 0 left its loop on the caller's thread */
	/* Pause (PATCH /vm): vCPU threads park on pause_cv between KVM_RUN calls. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cv;
	atomic_bool pause_req;
	int parked;  /* vCPU threads parked (pause_lock) */
	bool paused; /* every vCPU parked (pause_lock) */
} vm;

/* kvm.c */
/* Start fetching KVM's supported CPUID table in a thread (once per process); vm_create
 * waits for it. vm_cpuid_join waits too (before the jail's last step: no thread may be left). */
void vm_prefetch_cpuid(void);
void vm_cpuid_join(void);
int vm_create(vm *v, const vm_config *cfg, silo_error *err);
void vm_destroy(vm *v);
/* Record the first stop reason (later ones are ignored) and wake the main thread. */
void vm_request_stop(vm *v, vm_exit_reason r, int code);

/* devices/virtio/mmio.c: free a transport and its device. */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* vcpu.c */
int vcpu_create(vm *v, int index, silo_error *err);
int vcpu_setup_regs(vcpu *c, const boot_state *b, silo_error *err);
int vcpus_start(vm *v, silo_error *err);
void vcpus_stop_and_join(vm *v);
/* Park every vCPU outside KVM_RUN (timeout_ms, then undo and fail) / let them run again.
 * Idempotent. Device threads (vsock) keep serving the host side while paused. */
int vm_pause(vm *v, int timeout_ms, silo_error *err);
void vm_resume(vm *v);
bool vm_is_paused(vm *v);
/* Run vCPU 0 on this thread (the one that called vcpus_start; the others have threads of
 * their own) until the VM stops (signal, device, timeout: a "stop" thread waits for those
 * requests meanwhile), then join every vCPU. Returns the reason. */
vm_exit_reason vm_run(vm *v);

/* boot/loader.c */
typedef enum payload_kind { PAYLOAD_FLAT, PAYLOAD_ELF64, PAYLOAD_PVH, PAYLOAD_BZIMAGE } payload_kind;
int loader_load_flat(vm *v, const uint8_t *img, size_t len, silo_error *err);
/* Plain ELF64 executable (unikernel style): PT_LOAD segments into RAM, 64-bit entry. */
int loader_load_elf64(vm *v, const uint8_t *img, size_t len, silo_error *err);
/* Load the PT_LOAD segments of an ELF64 image whose program headers were checked to lie in
 * img, each at its physical address at or above 1 MiB. *end: the end of the highest one
 * (1 MiB if none); *entry_in: e_entry lies in a segment. The number loaded, or -1. */
int loader_load_segments(vm *v, const uint8_t *img, size_t len, uint64_t *end, bool *entry_in, silo_error *err);
/* Build GDT + identity page tables for long-mode entry. */
int loader_setup_long_mode_tables(vm *v, silo_error *err);

/* boot/linux.c */
bool linux_elf_pvh_entry(const uint8_t *img, size_t len, uint32_t *entry);
bool linux_is_bzimage(const uint8_t *img, size_t len);
int linux_load_pvh(vm *v, const uint8_t *img, size_t len, const uint8_t *initrd, size_t initrd_len,
		   const char *cmdline, silo_error *err);
int linux_load_bzimage(vm *v, const uint8_t *img, size_t len, const uint8_t *initrd, size_t initrd_len,
		       const char *cmdline, silo_error *err);

/* jail.c (docs/vmm.md "Jail") */
typedef struct jail_opts {
	const char *dir;            /* the jail root (the VMM pivots into it) */
	const char *id;             /* the VM id: the default cgroup name is vmm-<id>-<pid> */
	const char *cgroup;         /* or this name: the cgroup is silo/<cgroup> */
	bool have_uid;              /* become uid/gid (no supplementary groups); else stay uid 0 */
	uid_t uid;
	gid_t gid;
	int hold_fd;                /* kept open by the relay only (-1: none) */
	const char *netns;          /* a network namespace to join (/run/netns/x), "new", or NULL:
	                             * Landlock scopes where the kernel has them, else new */
	uint64_t mem_mib, vcpus;    /* the envelope: cgroup memory and CPU; larger VMs are refused */
	uint64_t fsize;             /* RLIMIT_FSIZE: no file grows past this */
	const char *const *cleanup; /* NULL-terminated: removed by the relay after the VMM exits */
} jail_opts;
/* The cgroup: memory = guest RAM + overhead, CPU = (vcpus + 1) CPUs, pids; rlimits. */
#define JAIL_VMM_OVERHEAD_MIB 512
#define JAIL_PIDS_MAX 64
#define JAIL_NOFILE 256
/* Clone into new pid/mount/IPC/UTS namespaces: returns 0 in the child (the VMM, pid 1 of
 * its pid namespace). The parent becomes the relay (cgroup, network namespace, signal
 * forwarding, cleanup after the child exits) and never returns. */
int jail_start(const jail_opts *o, silo_error *err);
/* In the child's main thread once every host file is open: pivot_root, rlimits, cgroup,
 * network, uid/gid, no capabilities, no_new_privs, Landlock, seccomp. Per thread: threads
 * started before (a VM builder) keep root and must end before anything untrusted runs. */
int jail_enter(silo_error *err);
/* Clear the capability bounding set (needs CAP_SETPCAP while a capability is still in it). */
int jail_clear_bounding(silo_error *err);
/* The bounding set (as above), the ambient set, and effective/permitted/inheritable.
 * Shared with silo-jailer (jailer.c), which clears the bounding set before changing uid. */
int jail_drop_caps(silo_error *err);
/* Make the mount dir (already a mount point) the root; the old root is detached. */
int jail_pivot_root(const char *dir, silo_error *err);

/* devices */
/* out_fd: a regular file (capped at max_bytes, the tail kept: logcap.h) or a pipe/tty. */
int serial_attach(vm *v, int out_fd, uint64_t max_bytes, silo_error *err);
/* Snapshot state of the 8250: ier, lcr, mcr, scr, dll, dlm. */
#define SERIAL_STATE_LEN 6
void serial_save(const serial_dev *s, uint8_t out[SERIAL_STATE_LEN]);
void serial_restore(serial_dev *s, const uint8_t in[SERIAL_STATE_LEN]);
int i8042_attach(vm *v, silo_error *err);
int boot_timer_attach(vm *v, silo_error *err);
int debug_exit_attach(vm *v, silo_error *err);

uint64_t vmm_now_ns(void);
/* Start-up steps: record a named timestamp (any thread; the names must be string literals)
 * and how long the step took: since the same thread's previous step, or since
 * vmm_step_thread_begin in a helper thread, or (a thread without either: a vCPU) since
 * the last step of any thread. The metrics line prints them as "steps":{"name":us since
 * t0,...} and "step_us":{"name":us it took,...}. vmm_steps_begin(t0) starts main's chain. */
#define VMM_MAX_STEPS 32
void vmm_steps_begin(uint64_t t0);
void vmm_step_thread_begin(void);
void vmm_step(const char *name);
void vmm_steps_json(uint64_t t0, bool took, char *buf, size_t len);

#endif
