/* SPDX-License-Identifier: Apache-2.0
 * silod's handlers, one per row of the route table (daemon/routes.c), all of
 * the api_handler shape (route.h): a parsed request in, a reply or a
 * silo_error out. Captures, the token operation and the Content-Type were
 * checked before they run.
 */
#ifndef SILO_DAEMON_HANDLERS_H
#define SILO_DAEMON_HANDLERS_H

#include "daemon/route.h"

/* api_sandbox.c: the service, sandboxes, files, logs */
int h_health(api_req *q, api_reply *r, silo_error *err);
int h_providers(api_req *q, api_reply *r, silo_error *err);
int h_metrics(api_req *q, api_reply *r, silo_error *err);
int h_sandbox_list(api_req *q, api_reply *r, silo_error *err);
int h_sandbox_create(api_req *q, api_reply *r, silo_error *err);
int h_sandbox_get(api_req *q, api_reply *r, silo_error *err);
int h_sandbox_delete(api_req *q, api_reply *r, silo_error *err);
int h_sandbox_logs(api_req *q, api_reply *r, silo_error *err);
int h_file_put(api_req *q, api_reply *r, silo_error *err);
int h_file_get(api_req *q, api_reply *r, silo_error *err);

/* targets.c: remote targets (docs/remote.md) */
int h_target_list(api_req *q, api_reply *r, silo_error *err);
int h_target_add(api_req *q, api_reply *r, silo_error *err);
int h_target_get(api_req *q, api_reply *r, silo_error *err);
int h_target_remove(api_req *q, api_reply *r, silo_error *err);
int h_target_queue(api_req *q, api_reply *r, silo_error *err);
int h_target_queue_cancel(api_req *q, api_reply *r, silo_error *err);
/* images pushed by a hub (api_images.c) */
int h_blob_get(api_req *q, api_reply *r, silo_error *err);
int h_blob_put(api_req *q, api_reply *r, silo_error *err);
int h_image_get(api_req *q, api_reply *r, silo_error *err);
int h_image_push(api_req *q, api_reply *r, silo_error *err);

/* api_port.c: port forwarding (docs/network.md) */
int h_port_add(api_req *q, api_reply *r, silo_error *err);
int h_port_list(api_req *q, api_reply *r, silo_error *err);
int h_port_remove(api_req *q, api_reply *r, silo_error *err);

/* api_stream.c: exec (NDJSON) and events (SSE) */
int h_exec(api_req *q, api_reply *r, silo_error *err);
int h_events(api_req *q, api_reply *r, silo_error *err);

/* api_snapshot.c: snapshots, fork, pause, resume, warm pools (docs/snapshots.md) */
int h_snapshot_take(api_req *q, api_reply *r, silo_error *err);
int h_fork(api_req *q, api_reply *r, silo_error *err);
int h_pause(api_req *q, api_reply *r, silo_error *err);
int h_resume(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_list(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_gc(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_get(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_delete(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_restore(api_req *q, api_reply *r, silo_error *err);
int h_snapshot_tags(api_req *q, api_reply *r, silo_error *err);
int h_pools(api_req *q, api_reply *r, silo_error *err);

/* api_deploy.c: deployments, usage, bundles (docs/deployments.md) */
int h_deploy_list(api_req *q, api_reply *r, silo_error *err);
int h_deploy_create(api_req *q, api_reply *r, silo_error *err);
int h_deploy_get(api_req *q, api_reply *r, silo_error *err);
int h_deploy_delete(api_req *q, api_reply *r, silo_error *err);
int h_usage(api_req *q, api_reply *r, silo_error *err);
int h_bundle_put(api_req *q, api_reply *r, silo_error *err);

/* api_procs.c: processes (lib/core/proc.h), interactive sessions (WebSocket) */
int h_procs_list(api_req *q, api_reply *r, silo_error *err);
int h_proc_start(api_req *q, api_reply *r, silo_error *err);
int h_proc_get(api_req *q, api_reply *r, silo_error *err);
int h_proc_delete(api_req *q, api_reply *r, silo_error *err);
int h_proc_signal(api_req *q, api_reply *r, silo_error *err);
int h_proc_stdin(api_req *q, api_reply *r, silo_error *err);
int h_proc_resize(api_req *q, api_reply *r, silo_error *err);
int h_proc_wait(api_req *q, api_reply *r, silo_error *err);
int h_proc_output(api_req *q, api_reply *r, silo_error *err);
int h_proc_attach(api_req *q, api_reply *r, silo_error *err);
int h_session(api_req *q, api_reply *r, silo_error *err);

/* api_fs.c: files beyond one file, archives, watches */
int h_fs_stat(api_req *q, api_reply *r, silo_error *err);
int h_fs_list(api_req *q, api_reply *r, silo_error *err);
int h_fs_mkdir(api_req *q, api_reply *r, silo_error *err);
int h_fs_move(api_req *q, api_reply *r, silo_error *err);
int h_fs_remove(api_req *q, api_reply *r, silo_error *err);
int h_fs_watch(api_req *q, api_reply *r, silo_error *err);
int h_archive_get(api_req *q, api_reply *r, silo_error *err);
int h_archive_put(api_req *q, api_reply *r, silo_error *err);

#endif
