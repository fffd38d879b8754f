/* SPDX-License-Identifier: Apache-2.0
 * Reading what a child process or a short-lived peer writes before it closes
 * its end (fdread.c): a status line, an error message, an HTTP answer.
 */
#ifndef SILO_COMMON_FDREAD_H
#define SILO_COMMON_FDREAD_H

#include <stddef.h>
#include <stdint.h>

/* Read fd into buf until end of file, a read error, cap - 1 bytes, or (deadline_ns, a
 * now_mono_ns() time; 0 = none) until the deadline passes. EINTR is retried. buf is
 * NUL-terminated (cap >= 1); returns the bytes read. */
size_t fd_read_until(int fd, char *buf, size_t cap, uint64_t deadline_ns);

#endif
