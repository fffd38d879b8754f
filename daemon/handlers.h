/* SPDX-License-Identifier: Apache-2.0
 * silod's handlers of the api_handler shape (a parsed request in, a reply or
 * a silo_error out). On this branch only the process, file-tree and archive
 * handlers have that shape yet (daemon/route_shim.h); the arch-routes branch
 * turns every other handler into it and lists them here too.
 */
#ifndef SILO_DAEMON_HANDLERS_H
#define SILO_DAEMON_HANDLERS_H

#include "daemon/route_shim.h"

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
