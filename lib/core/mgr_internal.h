/* SPDX-License-Identifier: Apache-2.0
 * Between manager.c, mgr_snapshot.c and mgr_pool.c (not for other users).
 */
#ifndef SILO_CORE_MGR_INTERNAL_H
#define SILO_CORE_MGR_INTERNAL_H

#include "audit/audit.h"
#include "core/manager.h"

struct mgr_pools;
/* The manager's warm pools (NULL when none). */
struct mgr_pools **manager_pools_slot(manager *m);
/* Take a ready sandbox matching spec (spec templates) or snap_id (snapshot
 * templates) and resume it: 0 with id_out, 1 when none is ready. */
int mgr_pool_take(manager *m, const vm_spec *spec, const char *snap_id, const char *actor,
		  char id_out[SILO_ID_MAX]);
/* manager_restore without looking at the pools (the pools fill with it). */
int mgr_restore_nopool(manager *m, const char *snap, const char *actor, char id_out[SILO_ID_MAX],
		       silo_error *err);

/* Append n audit records as one batch (audit_append_batch). */
void mgr_audit_batch(manager *m, const audit_record *v, size_t n);
/* Would n more sandboxes of spec be admitted now? RESOURCE_EXCEEDED or
 * MAX_VMS_EXCEEDED naming the first copy that would not (a fork, up front). */
int mgr_admit_copies(manager *m, const vm_spec *spec, unsigned n, silo_error *err);

#endif
