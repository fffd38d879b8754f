/* SPDX-License-Identifier: Apache-2.0
 * TEMPORARY: between route_shim.c and the old daemon/api.c (route_shim.h). */
#ifndef SILO_DAEMON_ROUTE_SHIM_GLUE_H
#define SILO_DAEMON_ROUTE_SHIM_GLUE_H

#include "daemon/route_shim.h"

typedef struct shim_match {
	unsigned ncap;
	char name[4][16];
	char val[4][128];
} shim_match;

/* The shim row for method + url (*path_ok: some row has that path). */
const api_route *shim_find(const char *method, const char *url, shim_match *m, bool *path_ok);
/* Token operation, Content-Type, captures, then the handler. */
int shim_dispatch(api_req *q, api_reply *r, silo_error *err);

#endif
