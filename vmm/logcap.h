/* SPDX-License-Identifier: Apache-2.0
 * A log file that never grows past a cap and keeps its most recent bytes.
 *
 * Used for everything a guest can make a VMM write without bound: the serial
 * console of silo-vmm (devices/serial.c) and, through silo-jailer's relay, the
 * serial console and stderr of QEMU. When a write would take the file past
 * `cap`, the newest cap/2 bytes (including the new ones) are moved to the start
 * of the file behind one marker line
 *     [silo: N earlier bytes of this log were dropped (cap C bytes, the tail is kept)]
 * and the file is truncated there: the file is at most `cap` bytes at every
 * moment, its end is always the newest output (what diagnostics and the logs API
 * read), and N counts every byte ever dropped. Needs a regular file opened
 * O_RDWR (pread + pwrite + ftruncate); on anything else (a pipe, a tty) writes
 * pass through unbounded, since the reader decides how much it keeps.
 * Not thread-safe: one writer per logcap (the serial device writes under the bus
 * lock, the relay is single-threaded).
 */
#ifndef SILO_VMM_LOGCAP_H
#define SILO_VMM_LOGCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGCAP_MIN (64u << 10)   /* smaller caps are raised to this */

typedef struct logcap {
	int fd;
	bool capped;        /* a regular file: the cap applies */
	uint64_t size;      /* current file size */
	uint64_t cap;
	uint64_t dropped;   /* bytes dropped so far (shown in the marker) */
	uint64_t marker;    /* length of the marker line at the start of the file (0: none) */
} logcap;

/* Take fd (not closed by logcap); its current size counts. */
void logcap_init(logcap *l, int fd, uint64_t cap);
/* Append n bytes. 0, or -1 with errno from the failing syscall (the log is then unusable). */
int logcap_write(logcap *l, const void *buf, size_t n);

#endif
