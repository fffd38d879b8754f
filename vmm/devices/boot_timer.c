/* SPDX-License-Identifier: Apache-2.0
 * Boot timer (Firecracker style): the guest writes BOOT_TIMER_MAGIC to the MMIO
 * page at GPA_BOOT_TIMER (or to port PORT_BOOT_TIMER from real mode); the VMM
 * records the time since process start and since VM start, once.
 * Also the debug-exit port (QEMU isa-debug-exit compatible): a write of v stops
 * the VM with exit status v.
 */
#include <stdio.h>

#include "vmm.h"

static void boot_timer_fire(vm *v, uint8_t val)
{
	if (val != BOOT_TIMER_MAGIC)
		return;
	unsigned long long zero = 0, now = vmm_now_ns();
	if (!atomic_compare_exchange_strong(&v->t_boot_timer, &zero, now))
		return;
	fprintf(stderr, "silo-vmm: boot-timer: guest signalled after %llu us since process start, %llu us since VM start\n",
		(now - v->t_process_start) / 1000, (now - v->t_vm_start) / 1000);
}

static void boot_timer_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	if (off == 0)
		boot_timer_fire(opaque, data[0]);
}

static const bus_device_ops boot_timer_ops = {.name = "boot-timer", .write = boot_timer_write};

static void debug_exit_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	vm_request_stop(opaque, VM_EXIT_DEBUG_EXIT, data[0]);
}

static void post_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	vm *v = opaque;
	unsigned long long zero = 0;
	atomic_compare_exchange_strong(&v->t_first_post, &zero, vmm_now_ns());
}

static const bus_device_ops post_ops = {.name = "post", .write = post_write};

static const bus_device_ops debug_exit_ops = {.name = "debug-exit", .write = debug_exit_write};

int boot_timer_attach(vm *v, silo_error *err)
{
	if (bus_register(&v->bus, BUS_MMIO, GPA_BOOT_TIMER, 0x1000, &boot_timer_ops, v, err) < 0)
		return -1;
	return bus_register(&v->bus, BUS_PIO, PORT_BOOT_TIMER, 1, &boot_timer_ops, v, err);
}

int debug_exit_attach(vm *v, silo_error *err)
{
	if (bus_register(&v->bus, BUS_PIO, PORT_POST, 1, &post_ops, v, err) < 0)
		return -1;
	return bus_register(&v->bus, BUS_PIO, PORT_DEBUG_EXIT, 4, &debug_exit_ops, v, err);
}
