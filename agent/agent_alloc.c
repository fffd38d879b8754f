/* SPDX-License-Identifier: Apache-2.0
 * silo-agent's answer to running out of memory in the allocation helpers of
 * lib/common/xalloc.c, which the code it shares with the host (lib/oci/tar.c,
 * lib/archive) uses. They run only in the forked child of a tar task, so
 * running out of memory ends that child (exit 1 with a message), never the
 * agent.
 */
#include <unistd.h>

#include "common/util.h"

void silo_out_of_memory(void)
{
	static const char msg[] = "silo-agent: out of memory\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}
