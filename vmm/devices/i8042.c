/* SPDX-License-Identifier: Apache-2.0
 * Minimal i8042 keyboard controller: enough for Linux's probe and for the
 * reset line (command 0xFE to port 0x64), which stops the VM (Firecracker style).
 */
#include "vmm.h"

static void i8042_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	vm *v = opaque;
	if (off == PORT_I8042_CMD - PORT_I8042_DATA && data[0] == 0xfe)
		vm_request_stop(v, VM_EXIT_RESET, 0);
}

static void i8042_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	/* Status: output buffer empty, input buffer empty, system flag set. Data: 0. */
	data[0] = off == PORT_I8042_CMD - PORT_I8042_DATA ? 0x04 : 0x00;
	for (uint32_t i = 1; i < len; i++)
		data[i] = 0;
}

static const bus_device_ops i8042_ops = {.name = "i8042", .read = i8042_read, .write = i8042_write};

int i8042_attach(vm *v, silo_error *err)
{
	/* Ports 0x60..0x64 (0x61 is the PC speaker port; reads as 0). */
	return bus_register(&v->bus, BUS_PIO, PORT_I8042_DATA, 5, &i8042_ops, v, err);
}
