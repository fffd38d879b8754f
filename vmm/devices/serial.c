/* SPDX-License-Identifier: Apache-2.0
 * 8250/16550A UART at 0x3f8, transmit only: what the guest writes goes to the
 * serial log. Registers behave enough for Linux's 8250 driver and firmware probes.
 * A log file is capped (--serial-log-max, default 16 MiB) keeping its tail (logcap.h):
 * a guest flooding its console never grows the host file past the cap.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "logcap.h"
#include "vmm.h"

struct serial_dev {
	logcap log;       /* the sink: a capped log file, or a pipe/tty passed through */
	bool dead;        /* the sink failed: keep the guest running, drop output */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint64_t bytes, dropped;
};

#define LCR_DLAB 0x80
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

static void serial_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct serial_dev *s = opaque;
	uint8_t b = data[0];
	switch (off) {
	case 0:
		if (s->lcr & LCR_DLAB) {
			s->dll = b;
		} else if (!(s->mcr & MCR_LOOP)) {
			s->bytes++;
			/* Never block the vCPU (which holds the bus lock) on a slow reader: a full
			 * pipe drops the byte, as a UART without flow control would. */
			/* (a regular file never blocks: no poll() per byte) */
			struct pollfd pf = {.fd = s->log.fd, .events = POLLOUT};
			if (s->dead ||
			    (!s->log.capped && (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT)))) {
				s->dropped++;
			} else if (logcap_write(&s->log, &b, 1) < 0) {
				if (errno != EAGAIN && errno != EINTR)
					s->dead = true; /* log gone: keep the guest running */
				s->dropped++;
			}
		}
		break;
	case 1:
		if (s->lcr & LCR_DLAB)
			s->dlm = b;
		else
			s->ier = b & 0x0f;
		break;
	case 3: s->lcr = b; break;
	case 4: s->mcr = b & 0x1f; break;
	case 7: s->scr = b; break;
	default: break; /* FCR and read-only registers */
	}
}

static void serial_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct serial_dev *s = opaque;
	uint8_t v = 0;
	switch (off) {
	case 0: v = (s->lcr & LCR_DLAB) ? s->dll : 0; break;
	case 1: v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier; break;
	case 2: v = 0xc1; break; /* IIR: no interrupt pending, FIFOs enabled */
	case 3: v = s->lcr; break;
	case 4: v = s->mcr; break;
	case 5: v = LSR_THRE | LSR_TEMT; break;
	case 6: v = (s->mcr & MCR_LOOP) ? (uint8_t)((s->mcr & 0x0c) << 4 | (s->mcr & 0x3) << 4) : 0xb0; break;
	case 7: v = s->scr; break;
	default: break;
	}
	data[0] = v;
	for (uint32_t i = 1; i < len; i++)
		data[i] = 0;
}

static const bus_device_ops serial_ops = {.name = "serial", .read = serial_read, .write = serial_write};

int serial_attach(vm *v, int out_fd, uint64_t max_bytes, silo_error *err)
{
	struct serial_dev *s = calloc(1, sizeof *s);
	if (!s)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "serial");
	logcap_init(&s->log, out_fd, max_bytes);
	s->dead = out_fd < 0;
	s->lcr = 0x03;
	if (bus_register(&v->bus, BUS_PIO, PORT_SERIAL0, 8, &serial_ops, s, err) < 0) {
		free(s);
		return -1;
	}
	v->serial = s;
	return 0;
}

void serial_save(const serial_dev *s, uint8_t out[SERIAL_STATE_LEN])
{
	const uint8_t r[SERIAL_STATE_LEN] = {s->ier, s->lcr, s->mcr, s->scr, s->dll, s->dlm};
	memcpy(out, r, SERIAL_STATE_LEN);
}

void serial_restore(serial_dev *s, const uint8_t in[SERIAL_STATE_LEN])
{
	s->ier = in[0] & 0x0f;
	s->lcr = in[1];
	s->mcr = in[2] & 0x1f;
	s->scr = in[3];
	s->dll = in[4];
	s->dlm = in[5];
}
