/* SPDX-License-Identifier: Apache-2.0
 * vCPUs: creation (CPUID, MSRs, LAPIC LINT pins, FPU), initial registers for
 * each boot mode, and the run loop that dispatches exits to the bus.
 * Threads: vCPU 0 runs on the thread that started the VM (vm_run; the guest's first
 * instruction waits for no thread to be scheduled), every other vCPU on a thread of its
 * own; while vCPU 0 runs, a "stop" thread waits for stop requests (vm_request_stop wakes
 * it with SIGUSR2; SIGTERM/SIGINT; the timeout) and kicks vCPU 0 out with SIGUSR1 +
 * immediate_exit. Pause parks every vCPU, vCPU 0 included, on pause_cv.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/sigset.h"
#include "common/util.h"
#include "vmm.h"

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0

#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define CR0_PE 1ULL
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)

static __thread struct kvm_run *tls_run;

static void kick_handler(int sig)
{
	(void)sig;
	if (tls_run)
		tls_run->immediate_exit = 1;
}

static int setup_cpuid(vcpu *c, silo_error *err)
{
	const struct kvm_cpuid2 *tmpl = c->vm->cpuid;
	size_t sz = sizeof *tmpl + tmpl->nent * sizeof(struct kvm_cpuid_entry2);
	cleanup_free struct kvm_cpuid2 *cp = malloc(sz);
	if (!cp)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "cpuid");
	memcpy(cp, tmpl, sz);
	for (uint32_t i = 0; i < cp->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cp->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id, logical CPU count; we are a hypervisor guest. */
			e->ebx = (e->ebx & 0x0000ffffu) | ((uint32_t)c->index << 24) |
				 ((uint32_t)c->vm->cfg.vcpus << 16);
			e->ecx |= 1u << 31;
			if (c->vm->cfg.vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the logical count field is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = (uint32_t)c->index; /* x2APIC id */
			break;
		case 6:
			e->ecx &= ~(1u << 3); /* no energy-performance bias MSR */
			break;
		default:
			break;
		}
	}
	if (ioctl(c->fd, KVM_SET_CPUID2, cp) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_CPUID2", c->index);
	return 0;
}

static int setup_msrs(vcpu *c, silo_error *err)
{
	static const uint32_t idx[] = {MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
				       MSR_STAR,             MSR_CSTAR,             MSR_KERNEL_GS_BASE,
				       MSR_SYSCALL_MASK,     MSR_LSTAR,             MSR_IA32_TSC,
				       MSR_IA32_MISC_ENABLE};
	enum { N = sizeof idx / sizeof idx[0] };
	cleanup_free struct kvm_msrs *m = calloc(1, sizeof *m + N * sizeof(struct kvm_msr_entry));
	if (!m)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "msrs");
	m->nmsrs = N;
	for (int i = 0; i < N; i++) {
		m->entries[i].index = idx[i];
		m->entries[i].data = idx[i] == MSR_IA32_MISC_ENABLE ? 1 /* fast strings */ : 0;
	}
	int r = ioctl(c->fd, KVM_SET_MSRS, m);
	if (r < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_MSRS", c->index);
	if (r != N)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "vcpu %d: KVM_SET_MSRS: MSR 0x%x refused",
				 c->index, idx[r]);
	return 0;
}

/* LINT0 = ExtINT (the PIC), LINT1 = NMI, as firmware leaves them. */
static int setup_lapic(vcpu *c, silo_error *err)
{
	if (!c->vm->cfg.irqchip)
		return 0;
	struct kvm_lapic_state l;
	if (ioctl(c->fd, KVM_GET_LAPIC, &l) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_GET_LAPIC", c->index);
	uint32_t lint0, lint1;
	memcpy(&lint0, l.regs + 0x350, 4);
	memcpy(&lint1, l.regs + 0x360, 4);
	lint0 = (lint0 & ~0x700u) | (7u << 8); /* ExtINT */
	lint1 = (lint1 & ~0x700u) | (4u << 8); /* NMI */
	memcpy(l.regs + 0x350, &lint0, 4);
	memcpy(l.regs + 0x360, &lint1, 4);
	if (ioctl(c->fd, KVM_SET_LAPIC, &l) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_LAPIC", c->index);
	return 0;
}

int vcpu_create(vm *v, int index, silo_error *err)
{
	vcpu *c = &v->vcpus[index];
	memset(c, 0, sizeof *c);
	c->vm = v;
	c->index = index;
	c->fd = ioctl(v->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (c->fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "KVM_CREATE_VCPU %d", index);
	int sz = ioctl(v->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "KVM_GET_VCPU_MMAP_SIZE");
	c->run_size = (size_t)sz;
	c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "mmap kvm_run of vcpu %d", index);
	}
	if (setup_cpuid(c, err) < 0 || setup_msrs(c, err) < 0 || setup_lapic(c, err) < 0)
		return -1;
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_FPU", index);
	return 0;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64, bool db)
{
	*s = (struct kvm_segment){.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
				  .present = 1, .dpl = 0, .db = db, .s = 1, .l = code64, .g = 1};
}

int vcpu_setup_regs(vcpu *c, const boot_state *b, silo_error *err)
{
	struct kvm_sregs sr;
	if (ioctl(c->fd, KVM_GET_SREGS, &sr) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_GET_SREGS", c->index);
	struct kvm_regs r;
	memset(&r, 0, sizeof r);
	r.rflags = 2;
	switch (b->mode) {
	case BOOT_REAL_MODE: {
		struct kvm_segment *segs[] = {&sr.cs, &sr.ds, &sr.es, &sr.fs, &sr.gs, &sr.ss};
		for (size_t i = 0; i < 6; i++) {
			segs[i]->selector = b->entry_cs;
			segs[i]->base = (uint64_t)b->entry_cs << 4;
		}
		r.rip = b->entry;
		r.rsp = b->rsp ? b->rsp : 0xfff0;
		break;
	}
	case BOOT_LONG_MODE:
	case BOOT_PROT32: {
		bool lm = b->mode == BOOT_LONG_MODE;
		seg_flat(&sr.cs, lm ? 0x08 : 0x20, 0xb, lm, !lm);
		struct kvm_segment ds;
		seg_flat(&ds, 0x10, 0x3, false, true);
		sr.ds = sr.es = sr.fs = sr.gs = sr.ss = ds;
		sr.tr = (struct kvm_segment){.base = 0, .limit = 0xfffff, .selector = 0x18, .type = 0xb,
					     .present = 1, .s = 0, .g = 0};
		sr.gdt.base = GPA_GDT;
		sr.gdt.limit = 5 * 8 - 1;
		sr.idt.base = 0;
		sr.idt.limit = 0;
		sr.cr0 = CR0_PE | CR0_ET;
		sr.cr4 = 0;
		sr.efer = 0;
		if (lm) {
			sr.cr3 = GPA_PML4;
			sr.cr4 |= CR4_PAE;
			sr.cr0 |= CR0_PG;
			sr.efer = EFER_LME | EFER_LMA;
		}
		r.rip = b->entry;
		r.rsp = b->rsp;
		r.rsi = b->rsi;
		r.rbx = b->rbx;
		break;
	}
	}
	if (ioctl(c->fd, KVM_SET_SREGS, &sr) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_SREGS", c->index);
	if (ioctl(c->fd, KVM_SET_REGS, &r) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "vcpu %d: KVM_SET_REGS", c->index);
	return 0;
}

static void handle_io(vcpu *c)
{
	struct kvm_run *run = c->run;
	uint64_t size = run->io.size, count = run->io.count;
	if (size == 0 || size > 4 || count == 0 || run->io.data_offset > c->run_size ||
	    size * count > c->run_size - run->io.data_offset) {
		fprintf(stderr, "silo-vmm: vcpu %d: malformed I/O exit\n", c->index);
		vm_request_stop(c->vm, VM_EXIT_ERROR, 1);
		return;
	}
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	for (uint64_t i = 0; i < count; i++)
		bus_access(&c->vm->bus, BUS_PIO, run->io.port, data + i * size, (uint32_t)size,
			   run->io.direction == KVM_EXIT_IO_OUT);
}

/* The run loop of one vCPU, on its own thread or (vCPU 0) on the thread that started the
 * VM (vm_run). Returns once the VM stops. SIGUSR1 (the kick) must be unblocked. */
static void vcpu_loop(vcpu *c)
{
	vm *v = c->vm;
	tls_run = c->run;
	while (!atomic_load(&v->stopping)) {
		if (atomic_load(&v->pause_req)) {
			pthread_mutex_lock(&v->pause_lock);
			v->parked++;
			pthread_cond_broadcast(&v->pause_cv);
			while (atomic_load(&v->pause_req) && !atomic_load(&v->stopping))
				pthread_cond_wait(&v->pause_cv, &v->pause_lock);
			v->parked--;
			pthread_mutex_unlock(&v->pause_lock);
			continue;
		}
		if (c->index == 0 && !v->t_first_run) {
			v->t_first_run = vmm_now_ns();
			vmm_step("vcpu0_first_run");
		}
		int r = ioctl(c->fd, KVM_RUN, 0);
		c->run->immediate_exit = 0;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "silo-vmm: vcpu %d: KVM_RUN: %s\n", c->index, strerror(errno));
			vm_request_stop(v, VM_EXIT_ERROR, 1);
			break;
		}
		c->exits++;
		struct kvm_run *run = c->run;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(c);
			break;
		case KVM_EXIT_MMIO:
			if (run->mmio.len > 8) {
				vm_request_stop(v, VM_EXIT_ERROR, 1);
				break;
			}
			bus_access(&v->bus, BUS_MMIO, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
				   run->mmio.is_write);
			break;
		case KVM_EXIT_HLT:
			vm_request_stop(v, VM_EXIT_HALT, 0);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_request_stop(v, VM_EXIT_SHUTDOWN, 0);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(v, run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_EXIT_RESET
											     : VM_EXIT_SHUTDOWN,
					0);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_FAIL_ENTRY:
			fprintf(stderr, "silo-vmm: vcpu %d: entry failed, hardware reason 0x%llx\n", c->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			vm_request_stop(v, VM_EXIT_ERROR, 1);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "silo-vmm: vcpu %d: KVM internal error, suberror %u\n", c->index,
				run->internal.suberror);
			vm_request_stop(v, VM_EXIT_ERROR, 1);
			break;
		default:
			fprintf(stderr, "silo-vmm: vcpu %d: unhandled exit reason %u\n", c->index,
				run->exit_reason);
			vm_request_stop(v, VM_EXIT_ERROR, 1);
			break;
		}
	}
	tls_run = NULL;
}

static void kick_mask(int how)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(how, &s, NULL);
}

static void *vcpu_thread(void *arg)
{
	vcpu *c = arg;
	kick_mask(SIG_UNBLOCK);
	char name[16];
	snprintf(name, sizeof name, "vcpu%d", c->index);
	pthread_setname_np(pthread_self(), name);
	vcpu_loop(c);
	return NULL;
}

int vcpus_start(vm *v, silo_error *err)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	v->main_thread = pthread_self(); /* vm_request_stop wakes it; the VM may have been built by another thread */
	v->t_vm_start = vmm_now_ns();
	/* vCPU 0 runs on this thread once it calls vm_run: the guest's first instruction does not
	 * wait for a new thread to be scheduled (up to tens of ms on a loaded host) */
	v->vcpus[0].thread = pthread_self();
	v->vcpus[0].on_caller = v->vcpus[0].started = true;
	for (int i = 1; i < v->nvcpus; i++) {
		vcpu *c = &v->vcpus[i];
		int e = pthread_create(&c->thread, NULL, vcpu_thread, c);
		if (e) {
			vm_request_stop(v, VM_EXIT_ERROR, 1);
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "start vcpu %d thread", i);
		}
		c->started = true;
	}
	return 0;
}

/* CLOCK_REALTIME now + ms, for pthread_cond_timedwait / pthread_timedjoin_np. */
static struct timespec realtime_in_ms(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000 * 1000;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return ts;
}

static void kick_all(vm *v)
{
	for (int i = 0; i < v->nvcpus; i++)
		if (v->vcpus[i].started)
			pthread_kill(v->vcpus[i].thread, SIGUSR1);
}

static int started_vcpus(vm *v)
{
	int n = 0;
	for (int i = 0; i < v->nvcpus; i++)
		n += v->vcpus[i].started;
	return n;
}

int vm_pause(vm *v, int timeout_ms, silo_error *err)
{
	pthread_mutex_lock(&v->pause_lock);
	if (v->paused) {
		pthread_mutex_unlock(&v->pause_lock);
		return 0;
	}
	/* Set before the kick: a vCPU that misses the signal sees the flag at its next loop. */
	atomic_store(&v->pause_req, true);
	uint64_t deadline = vmm_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	while (v->parked < started_vcpus(v) && !atomic_load(&v->stopping)) {
		if (vmm_now_ns() >= deadline) {
			atomic_store(&v->pause_req, false);
			pthread_cond_broadcast(&v->pause_cv);
			pthread_mutex_unlock(&v->pause_lock);
			return silo_fail(err, SILO_ERR_TIMEOUT, 0, "pause: vCPUs did not stop within %d ms", timeout_ms);
		}
		kick_all(v);
		struct timespec ts = realtime_in_ms(2);
		pthread_cond_timedwait(&v->pause_cv, &v->pause_lock, &ts);
	}
	if (atomic_load(&v->stopping)) {
		atomic_store(&v->pause_req, false);
		pthread_mutex_unlock(&v->pause_lock);
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "pause: the VM is stopping");
	}
	v->paused = true;
	pthread_mutex_unlock(&v->pause_lock);
	return 0;
}

void vm_resume(vm *v)
{
	pthread_mutex_lock(&v->pause_lock);
	atomic_store(&v->pause_req, false);
	v->paused = false;
	pthread_cond_broadcast(&v->pause_cv);
	pthread_mutex_unlock(&v->pause_lock);
}

bool vm_is_paused(vm *v)
{
	pthread_mutex_lock(&v->pause_lock);
	bool p = v->paused;
	pthread_mutex_unlock(&v->pause_lock);
	return p;
}

void vcpus_stop_and_join(vm *v)
{
	atomic_store(&v->stopping, true);
	pthread_mutex_lock(&v->pause_lock);
	pthread_cond_broadcast(&v->pause_cv); /* wake parked vCPUs so they see stopping */
	pthread_mutex_unlock(&v->pause_lock);
	for (int i = 0; i < v->nvcpus; i++) {
		vcpu *c = &v->vcpus[i];
		if (!c->started)
			continue;
		if (c->on_caller) {
			/* vCPU 0 on the caller's thread: vm_run has returned from its loop, or it
			 * never entered it (a start that failed after vcpus_start) */
			c->started = c->on_caller = false;
			continue;
		}
		/* Kick until the thread leaves KVM_RUN (the signal can race the ioctl entry). */
		for (;;) {
			pthread_kill(c->thread, SIGUSR1);
			struct timespec ts = realtime_in_ms(10);
			if (pthread_timedjoin_np(c->thread, NULL, &ts) == 0)
				break;
		}
		c->started = false;
	}
}

/* Wait for a stop request (device, vCPU, signal, timeout) on this thread. */
static void wait_for_stop(vm *v)
{
	sigset_t s = sigset_of(SIGUSR2, SIGINT, SIGTERM, 0);
	uint64_t deadline = v->cfg.timeout_ms ? v->t_vm_start + v->cfg.timeout_ms * 1000000ULL : 0;
	while (atomic_load(&v->exit_reason) == VM_EXIT_NONE) {
		struct timespec ts = {.tv_sec = 1};
		if (deadline) {
			uint64_t now = vmm_now_ns();
			if (now >= deadline) {
				vm_request_stop(v, VM_EXIT_TIMEOUT, 124);
				break;
			}
			uint64_t left = deadline - now;
			if (left < 1000000000ULL)
				ts = (struct timespec){.tv_sec = 0, .tv_nsec = (long)left};
		}
		siginfo_t si;
		int sig = sigtimedwait(&s, &si, &ts);
		if (sig == SIGINT || sig == SIGTERM)
			vm_request_stop(v, VM_EXIT_SIGNAL, 0);
	}
}

/* vm_run's stop waiter: waits, then gets vCPU 0 out of KVM_RUN (or its pause wait) on the
 * thread that runs it, kicking until that thread says it left its loop. */
static void *stop_waiter(void *arg)
{
	vm *v = arg;
	pthread_setname_np(pthread_self(), "stop");
	atomic_store(&v->main_thread, pthread_self()); /* then exit_reason is checked: no request is lost */
	wait_for_stop(v);
	atomic_store(&v->stopping, true);
	while (!atomic_load(&v->vcpu0_left)) {
		pthread_mutex_lock(&v->pause_lock);
		pthread_cond_broadcast(&v->pause_cv);
		pthread_mutex_unlock(&v->pause_lock);
		pthread_kill(v->vcpus[0].thread, SIGUSR1);
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

vm_exit_reason vm_run(vm *v)
{
	pthread_t w;
	int e = pthread_create(&w, NULL, stop_waiter, v);
	if (e) {
		fprintf(stderr, "silo-vmm: stop waiter thread: %s\n", strerror(e));
		vm_request_stop(v, VM_EXIT_ERROR, 1);
	} else {
		/* a kick pending from before (a pause) is taken here: the loop checks the flags first */
		kick_mask(SIG_UNBLOCK);
		vcpu_loop(&v->vcpus[0]);
		kick_mask(SIG_BLOCK);
		atomic_store(&v->vcpu0_left, true);
		pthread_join(w, NULL);
	}
	vcpus_stop_and_join(v);
	return (vm_exit_reason)atomic_load(&v->exit_reason);
}
