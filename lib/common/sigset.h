/* SPDX-License-Identifier: Apache-2.0
 * Signal sets from a list (sigset.c). libc only: silo-agent links it too.
 */
#ifndef SILO_COMMON_SIGSET_H
#define SILO_COMMON_SIGSET_H

#include <signal.h>

/* The set of the signals listed, up to a 0: sigset_of(SIGTERM, SIGINT, 0). */
sigset_t sigset_of(int sig, ...);

#endif
