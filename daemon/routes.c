/* SPDX-License-Identifier: Apache-2.0
 * silod's route table: every route of the API, one row each (docs/openapi.yaml
 * lists the same method+path pairs; tests/unit/test_routes.c checks both ways).
 *
 * A row: method, path pattern ({name} captures one segment, checked by its
 * kind below before the handler runs), handler (handlers.h), request body
 * (route.h api_body: none, small JSON/TOML, exec, a spooled file), the
 * Content-Types taken (NULL: any), what a scoped token needs (a TOKEN_OP_*,
 * API_OP_ANY, or API_OP_FULL with the group that says why), and the reply
 * kind (JSON, text, NDJSON/SSE stream, file, upgrade). Adding a route is one
 * row here, its handler, and its path in docs/openapi.yaml.
 *
 * Among rows whose patterns match a path the most specific pattern owns it
 * (lib/common/http_route.h): POST /v1/snapshots/gc is never a snapshot named
 * "gc", and GET on it is 405. Order does not matter otherwise.
 */
#include "daemon/handlers.h"
#include "daemon/route.h"

#include "common/util.h"
#include "core/proc.h"
#include "image/image.h"

static const char *const json_only[] = {"application/json", NULL};
/* hac.toml text or the JSON form (api_spec.c); h_sandbox_create reads which by index */
static const char *const spec_types[] = {"application/toml", "text/x-toml", "application/x-toml", "application/json",
					 NULL};

static const api_group snapshots = {"snapshot", "snapshots, fork, pause and resume"};
static const api_group deployments = {"deploy", "deployments and usage"};
static const api_group bundles = {"bundle", "bundles"};
static const api_group targets = {"target", "remote targets"};
static const api_group images = {"image", "images pushed by a hub"};

#define NONE API_BODY_NONE
#define SMALL API_BODY_SMALL
#define ANY API_OP_ANY
#define FULL API_OP_FULL
#define JSON API_REPLY_JSON
#define EXEC TOKEN_OP_EXEC
#define READ TOKEN_OP_FILE_READ
#define WRITE TOKEN_OP_FILE_WRITE

const api_route api_routes[] = {
	/* method  pattern                          handler           body            accept      token op              group         reply */
	{"GET",    "/v1/health",                    h_health,         NONE,           NULL,       ANY,                  NULL,         JSON},
	{"GET",    "/v1/providers",                 h_providers,      NONE,           NULL,       ANY,                  NULL,         JSON},
	{"GET",    "/metrics",                      h_metrics,        NONE,           NULL,       TOKEN_OP_METRICS,     NULL,         API_REPLY_TEXT},
	{"GET",    "/v1/events",                    h_events,         NONE,           NULL,       TOKEN_OP_EVENTS,      NULL,         API_REPLY_SSE},
	{"GET",    "/v1/sandboxes",                 h_sandbox_list,   NONE,           NULL,       TOKEN_OP_LIST,        NULL,         JSON},
	{"POST",   "/v1/sandboxes",                 h_sandbox_create, SMALL,          spec_types, TOKEN_OP_CREATE,      NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}",            h_sandbox_get,    NONE,           NULL,       TOKEN_OP_INSPECT,     NULL,         JSON},
	{"DELETE", "/v1/sandboxes/{id}",            h_sandbox_delete, NONE,           NULL,       TOKEN_OP_DELETE,      NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/logs",       h_sandbox_logs,   NONE,           NULL,       TOKEN_OP_INSPECT,     NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/exec",       h_exec,           API_BODY_EXEC,  json_only,  TOKEN_OP_EXEC,        NULL,         API_REPLY_NDJSON},
	{"PUT",    "/v1/sandboxes/{id}/files",      h_file_put,       API_BODY_FILE,  NULL,       TOKEN_OP_FILE_WRITE,  NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/files",      h_file_get,       NONE,           NULL,       TOKEN_OP_FILE_READ,   NULL,         API_REPLY_FILE},
	{"POST",   "/v1/sandboxes/{id}/ports",      h_port_add,       SMALL,          json_only,  EXEC,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/ports",      h_port_list,      NONE,           NULL,       TOKEN_OP_INSPECT,     NULL,         JSON},
	{"DELETE", "/v1/sandboxes/{id}/ports",      h_port_remove,    NONE,           NULL,       EXEC,                 NULL,         JSON},
	/* processes (api_procs.c, lib/core/proc.h): a token needs exec for all of them */
	{"GET",    "/v1/sandboxes/{id}/procs",      h_procs_list,     NONE,           NULL,       EXEC,                 NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/procs",      h_proc_start,     API_BODY_EXEC,  json_only,  EXEC,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}", h_proc_get,     NONE,           NULL,       EXEC,                 NULL,         JSON},
	{"DELETE", "/v1/sandboxes/{id}/procs/{proc}", h_proc_delete,  NONE,           NULL,       EXEC,                 NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/signal", h_proc_signal, SMALL,    json_only,  EXEC,                 NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/stdin", h_proc_stdin, API_BODY_FILE, NULL,    EXEC,                 NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/resize", h_proc_resize, SMALL,    json_only,  EXEC,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/wait", h_proc_wait, NONE,         NULL,       EXEC,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/output", h_proc_output, NONE,     NULL,       EXEC,                 NULL,         API_REPLY_NDJSON},
	/* WebSocket sessions (101 Switching Protocols) */
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/attach", h_proc_attach, NONE,     NULL,       EXEC,                 NULL,         API_REPLY_UPGRADE},
	{"GET",    "/v1/sandboxes/{id}/session",    h_session,        NONE,           NULL,       EXEC,                 NULL,         API_REPLY_UPGRADE},
	/* files beyond one file, archives, watches (api_fs.c) */
	{"GET",    "/v1/sandboxes/{id}/fs/stat",    h_fs_stat,        NONE,           NULL,       READ,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/fs/list",    h_fs_list,        NONE,           NULL,       READ,                 NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/fs/watch",   h_fs_watch,       NONE,           NULL,       READ,                 NULL,         API_REPLY_NDJSON},
	{"POST",   "/v1/sandboxes/{id}/fs/mkdir",   h_fs_mkdir,       SMALL,          json_only,  WRITE,                NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/fs/move",    h_fs_move,        SMALL,          json_only,  WRITE,                NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/fs/remove",  h_fs_remove,      SMALL,          json_only,  WRITE,                NULL,         JSON},
	{"GET",    "/v1/sandboxes/{id}/archive",    h_archive_get,    NONE,           NULL,       READ,                 NULL,         API_REPLY_TAR},
	{"PUT",    "/v1/sandboxes/{id}/archive",    h_archive_put,    API_BODY_FILE,  NULL,       WRITE,                NULL,         JSON},
	{"POST",   "/v1/sandboxes/{id}/snapshot",   h_snapshot_take,  SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/sandboxes/{id}/fork",       h_fork,           SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/sandboxes/{id}/pause",      h_pause,          SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/sandboxes/{id}/resume",     h_resume,         SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"GET",    "/v1/snapshots",                 h_snapshot_list,  NONE,           NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/snapshots/gc",              h_snapshot_gc,    SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"GET",    "/v1/snapshots/{snap}",          h_snapshot_get,   NONE,           NULL,       FULL,                 &snapshots,   JSON},
	{"DELETE", "/v1/snapshots/{snap}",          h_snapshot_delete, NONE,          NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/snapshots/{snap}/restore",  h_snapshot_restore, SMALL,        NULL,       FULL,                 &snapshots,   JSON},
	{"POST",   "/v1/snapshots/{snap}/tags",     h_snapshot_tags,  SMALL,          NULL,       FULL,                 &snapshots,   JSON},
	{"GET",    "/v1/pools",                     h_pools,          NONE,           NULL,       FULL,                 &snapshots,   JSON},
	{"GET",    "/v1/deployments",               h_deploy_list,    NONE,           NULL,       FULL,                 &deployments, JSON},
	{"POST",   "/v1/deployments",               h_deploy_create,  SMALL,          NULL,       FULL,                 &deployments, JSON},
	{"GET",    "/v1/deployments/{name}",        h_deploy_get,     NONE,           NULL,       FULL,                 &deployments, JSON},
	{"DELETE", "/v1/deployments/{name}",        h_deploy_delete,  NONE,           NULL,       FULL,                 &deployments, JSON},
	{"GET",    "/v1/usage",                     h_usage,          NONE,           NULL,       FULL,                 &deployments, JSON},
	{"PUT",    "/v1/bundles/{sha256}",          h_bundle_put,     API_BODY_FILE,  NULL,       FULL,                 &bundles,     JSON},
	{"GET",    "/v1/targets",                   h_target_list,    NONE,           NULL,       FULL,                 &targets,     JSON},
	{"POST",   "/v1/targets",                   h_target_add,     SMALL,          json_only,  FULL,                 &targets,     JSON},
	{"GET",    "/v1/targets/{target}",          h_target_get,     NONE,           NULL,       FULL,                 &targets,     JSON},
	{"DELETE", "/v1/targets/{target}",          h_target_remove,  NONE,           NULL,       FULL,                 &targets,     JSON},
	{"GET",    "/v1/targets/{target}/queue",    h_target_queue,   NONE,           NULL,       FULL,                 &targets,     JSON},
	{"DELETE", "/v1/targets/{target}/queue",    h_target_queue_cancel, NONE,      NULL,       FULL,                 &targets,     JSON},
	/* images a hub pushes here (api_images.c, docs/remote.md "Shipping images") */
	{"GET",    "/v1/blobs/{sha256}",            h_blob_get,       NONE,           NULL,       FULL,                 &images,      JSON},
	{"PUT",    "/v1/blobs/{sha256}",            h_blob_put,       API_BODY_FILE,  NULL,       FULL,                 &images,      JSON},
	{"GET",    "/v1/images/{image}",            h_image_get,      NONE,           NULL,       FULL,                 &images,      JSON},
	{"POST",   "/v1/images",                    h_image_push,     SMALL,          json_only,  FULL,                 &images,      JSON},
};
const size_t api_n_routes = ARRAY_SIZE(api_routes);

/* Every {capture} of a pattern: bounds and characters, and the error when a
 * value does not fit (what the resource's own lookup would say). */
const api_capture_kind api_capture_kinds[] = {
	/* name     max               also allowed  hex    code                    says: PREFIX 'VALUE'RULE */
	/* a sandbox id (sb-...) or the name of a live one */
	{"id",     SILO_ID_MAX - 1,  "_-",         false, SILO_ERR_VM_NOT_FOUND,  "no sandbox with id or name", ""},
	/* a snapshot id or tag (lib/snapshot) */
	{"snap",   SILO_ID_MAX - 1,  "_.-",        false, SILO_ERR_INVALID_CONFIG, "snapshot",
	 ": an id or tag is 1-63 of [A-Za-z0-9_.-]"},
	/* a process: its handle (p3), pid or tag (lib/core/proc.h) */
	{"proc",   PROC_TAG_MAX,     "_.-",        false, SILO_ERR_PROCESS_NOT_FOUND, "no process", " in this sandbox"},
	/* a deployment: its agent's name */
	{"name",   64,               "_-",         false, SILO_ERR_VM_NOT_FOUND,  "no deployment named", ""},
	/* a stored bundle */
	{"sha256", 64,               "",           true,  SILO_ERR_INVALID_CONFIG, "bundle",
	 ": the path must end in the bundle's sha256 (64 lowercase hex digits)"},
	/* a remote target (docs/remote.md) */
	{"target", 64,               "_.-",        false, SILO_ERR_NOT_FOUND,     "no target named", ""},
	/* an image (lib/image: 1-64 of [a-z0-9_-]) */
	{"image",  IMAGE_NAME_MAX,   "_-",         false, SILO_ERR_NOT_FOUND,     "no image named", ""},
};
const size_t api_n_capture_kinds = ARRAY_SIZE(api_capture_kinds);
