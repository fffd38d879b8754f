/* SPDX-License-Identifier: Apache-2.0
 * The E2B server's route table (daemon/e2b.h): one row per route. Control
 * plane paths are those of e2b-dev/E2B spec/openapi.yml; envd paths are
 * spec/envd/envd.yaml and the Connect procedures /<package>.<Service>/<Method>
 * of process.proto and filesystem.proto. Adding a route is one row here and
 * a handler; docs/e2b.md lists what is served.
 */
#include "daemon/e2b.h"
#include "policy/token.h"

#define API E2B_PLANE_API
#define ENVD E2B_PLANE_ENVD
#define ANY (-1)
#define FULL (-2)

const e2b_route e2b_routes[] = {
	/* control plane */
	{"POST", "/sandboxes", e2b_h_create, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_CREATE},
	{"POST", "/v2/sandboxes", e2b_h_create, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_CREATE},
	{"GET", "/sandboxes", e2b_h_list_v1, API, E2B_REST, E2B_BODY_NONE, TOKEN_OP_LIST},
	{"GET", "/v2/sandboxes", e2b_h_list, API, E2B_REST, E2B_BODY_NONE, TOKEN_OP_LIST},
	{"GET", "/sandboxes/{id}", e2b_h_get, API, E2B_REST, E2B_BODY_NONE, TOKEN_OP_INSPECT},
	{"DELETE", "/sandboxes/{id}", e2b_h_kill, API, E2B_REST, E2B_BODY_NONE, TOKEN_OP_DELETE},
	{"GET", "/sandboxes/{id}/metrics", e2b_h_metrics, API, E2B_REST, E2B_BODY_NONE, TOKEN_OP_INSPECT},
	{"POST", "/sandboxes/{id}/timeout", e2b_h_timeout, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_EXEC},
	{"POST", "/sandboxes/{id}/refreshes", e2b_h_refresh, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_EXEC},
	{"POST", "/sandboxes/{id}/pause", e2b_h_pause, API, E2B_REST, E2B_BODY_JSON, FULL},
	{"POST", "/sandboxes/{id}/resume", e2b_h_resume, API, E2B_REST, E2B_BODY_JSON, FULL},
	{"POST", "/sandboxes/{id}/connect", e2b_h_connect, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_EXEC},
	{"POST", "/v2/sandboxes/{id}/connect", e2b_h_connect, API, E2B_REST, E2B_BODY_JSON, TOKEN_OP_EXEC},
	/* envd REST */
	{"GET", "/health", e2b_h_health, ENVD, E2B_REST, E2B_BODY_NONE, ANY},
	{"GET", "/files", e2b_h_files_get, ENVD, E2B_REST, E2B_BODY_NONE, ANY},
	{"POST", "/files", e2b_h_files_post, ENVD, E2B_REST, E2B_BODY_UPLOAD, ANY},
	/* envd Connect: process.Process */
	{"POST", "/process.Process/Start", e2b_h_proc_start, ENVD, E2B_SSTREAM, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/Connect", e2b_h_proc_connect, ENVD, E2B_SSTREAM, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/List", e2b_h_proc_list, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/SendInput", e2b_h_proc_input, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/StreamInput", e2b_h_proc_stream_input, ENVD, E2B_CSTREAM, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/CloseStdin", e2b_h_proc_close_stdin, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/SendSignal", e2b_h_proc_signal, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/process.Process/Update", e2b_h_proc_update, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	/* envd Connect: filesystem.Filesystem */
	{"POST", "/filesystem.Filesystem/Stat", e2b_h_fs_stat, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/MakeDir", e2b_h_fs_mkdir, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/Move", e2b_h_fs_move, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/ListDir", e2b_h_fs_list, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/Remove", e2b_h_fs_remove, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/WatchDir", e2b_h_fs_watch, ENVD, E2B_SSTREAM, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/CreateWatcher", e2b_h_fs_watcher_create, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/GetWatcherEvents", e2b_h_fs_watcher_events, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
	{"POST", "/filesystem.Filesystem/RemoveWatcher", e2b_h_fs_watcher_remove, ENVD, E2B_UNARY, E2B_BODY_RPC, ANY},
};
const size_t e2b_n_routes = sizeof e2b_routes / sizeof e2b_routes[0];
