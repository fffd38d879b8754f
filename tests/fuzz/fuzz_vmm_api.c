/* SPDX-License-Identifier: Apache-2.0
 * Fuzz silo-vmm's control API (vmm/control_api.c): arbitrary bytes as an HTTP connection
 * before InstanceStart (request line, headers, Content-Length bodies, pipelining)
 * through the router and the JSON section parsers. Responses go to /dev/null; the
 * configuration must stay within its bounds (drives <= 8) and ASan checks the rest.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../vmm/control_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static vmm_api a;
	memset(&a, 0, sizeof a);
	a.listen_fd = a.stop_fd = a.start_conn = -1;
	for (int i = 0; i < VMM_API_MAX_CONNS; i++)
		a.conns[i].fd = -1;
	a.cfg.vcpus = 1;
	a.cfg.mem_mib = 128;
	snprintf(a.id, sizeof a.id, "fuzz");
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		abort();
	vmm_api_serve_bytes(&a, fd, data, size);
	if (a.cfg.ndrives > VMM_CONFIG_MAX_DRIVES || a.cfg.vcpus < 1 || a.cfg.vcpus > 32 || a.cfg.mem_mib < 1)
		abort();
	vmm_config_free(&a.cfg);
	return 0;
}
