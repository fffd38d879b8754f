/* SPDX-License-Identifier: Apache-2.0
 * sigset_of (sigset.h).
 */
#include <stdarg.h>

#include "common/sigset.h"

sigset_t sigset_of(int sig, ...)
{
	sigset_t s;
	sigemptyset(&s);
	va_list ap;
	va_start(ap, sig);
	for (; sig; sig = va_arg(ap, int))
		sigaddset(&s, sig);
	va_end(ap);
	return s;
}
