/* SPDX-License-Identifier: Apache-2.0
 * The Firecracker-compatible control API of silo-vmm (docs/vmm.md, "Control API").
 *
 * A small HTTP/1.1 server of our own: at most VMM_API_MAX_CONNS connections, request
 * line + headers bounded by VMM_API_MAX_HEADER, bodies by VMM_API_MAX_BODY and given
 * by Content-Length (chunked bodies are refused), keep-alive and pipelining, and
 * "Expect: 100-continue" (curl sends it). Every malformed request gets a 4xx with a
 * {"fault_message"} naming what is wrong, then the connection is closed.
 *
 * Resources: the parts of Firecracker's API we support, one row each in the
 * route table vmm_api_routes below (patterns as in lib/common/http_route.h; the
 * most specific pattern owns a path, other methods on it are 405 naming the
 * allowed ones). docs/vmm.md lists the same routes (tests/unit/test_routes.c).
 * PUT /snapshot/load is answered later, like InstanceStart (vmm_api_reply_start).
 * Snapshot file paths may be "fd:N" (silo extension): the N-th descriptor passed with the
 * request (SCM_RIGHTS on the same sendmsg as its bytes, at most VMM_API_MAX_FDS). That is
 * how a jailed VMM writes and reads snapshots outside its root: the client opens them.
 * Descriptors a request does not use are closed when it has been answered.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_api.h"
#include "files.h"
#include "snapshot.h"
#include "common/jsonkeys.h"
#include "common/util.h"

#define PAUSE_TIMEOUT_MS 2000

static char *fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fault(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:s}", "fault_message", msg);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static const char *state_name(vmm_api *a)
{
	if (!a->v)
		return "Not started";
	return vm_is_paused(a->v) ? "Paused" : "Running";
}

/* A JSON body or a 400 naming the position of the syntax error. */
static json_t *parse_body(const char *body, size_t len, const char *what, char **out)
{
	if (!len) {
		*out = fault("%s: a JSON body is required", what);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		*out = fault("%s: invalid JSON at line %d column %d: %s", what, je.line, je.column, je.text);
	return j;
}

static int not_after_start(vmm_api *a, const char *what, char **out)
{
	if (!a->v)
		return 0;
	*out = fault("%s: the requested operation is not supported after starting the microVM", what);
	return -1;
}

static int put_drive(vmm_api *a, const char *id, json_t *j, char **out)
{
	silo_error err = {0};
	char ebuf[512];
	vmm_config_drive d = {0};
	if (vmm_config_parse_drive(j, "drive", &d, &err) < 0) {
		*out = fault("%s", silo_error_str(&err, ebuf, sizeof ebuf));
		return 400;
	}
	int rc = 204;
	if (strcmp(d.id, id)) {
		*out = fault("drive.drive_id: \"%s\" does not match the id in the path (\"%s\")", d.id, id);
		rc = 400;
		goto out;
	}
	size_t i;
	for (i = 0; i < a->cfg.ndrives; i++)
		if (!strcmp(a->cfg.drives[i].id, id))
			break;
	if (i == VMM_CONFIG_MAX_DRIVES) {
		*out = fault("drives: at most %d drives", VMM_CONFIG_MAX_DRIVES);
		rc = 400;
		goto out;
	}
	free(a->cfg.drives[i].id);
	free(a->cfg.drives[i].path);
	a->cfg.drives[i] = d;
	if (i == a->cfg.ndrives)
		a->cfg.ndrives++;
	return 204;
out:
	free(d.id);
	free(d.path);
	return rc;
}

static int action(vmm_api *a, json_t *j, char **out, bool *start)
{
	json_t *t = json_object_get(j, "action_type");
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		if (strcmp(k, "action_type")) {
			*out = fault("actions.%s: unknown or unsupported key", k);
			return 400;
		}
	}
	if (!json_is_string(t)) {
		*out = fault("actions.action_type: required string (InstanceStart)");
		return 400;
	}
	const char *s = json_string_value(t);
	if (strcmp(s, "InstanceStart")) {
		*out = fault("actions.action_type: \"%s\" is not supported (supported: InstanceStart)", s);
		return 400;
	}
	if (a->v) {
		*out = fault("actions: InstanceStart: the microVM is already running");
		return 400;
	}
	if (!a->have_boot_source) {
		*out = fault("actions: InstanceStart: configure boot-source first (PUT /boot-source)");
		return 400;
	}
	*start = true;
	return 204;
}

static int patch_vm(vmm_api *a, json_t *j, char **out)
{
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		if (strcmp(k, "state")) {
			*out = fault("vm.%s: unknown or unsupported key", k);
			return 400;
		}
	}
	json_t *st = json_object_get(j, "state");
	if (!json_is_string(st) || (strcmp(json_string_value(st), "Paused") && strcmp(json_string_value(st), "Resumed"))) {
		*out = fault("vm.state: expected \"Paused\" or \"Resumed\"");
		return 400;
	}
	if (!a->v) {
		*out = fault("vm.state: the microVM has not been started (PUT /actions InstanceStart)");
		return 400;
	}
	if (!strcmp(json_string_value(st), "Resumed")) {
		vm_resume(a->v);
		return 204;
	}
	silo_error err = {0};
	char ebuf[512];
	if (vm_pause(a->v, PAUSE_TIMEOUT_MS, &err) < 0) {
		*out = fault("vm.state: %s", silo_error_str(&err, ebuf, sizeof ebuf));
		return 400;
	}
	return 204;
}

static int check_only_keys(json_t *j, const char *where, const char *const *allowed, char **out)
{
	const char *k = json_unknown_key(j, allowed);
	if (k) {
		*out = fault("%s.%s: unknown or unsupported key", where, k);
		return -1;
	}
	return 0;
}

static const char *path_field(json_t *j, const char *where, const char *key, char **out)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 4095 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*out = fault("%s.%s: required non-empty path (max 4095 bytes)", where, key);
		return NULL;
	}
	return json_string_value(v);
}

/* "fd:N": the N-th descriptor passed with this request, else -1 (a path). -2: a bad "fd:" name. */
static int passed_fd(vmm_api *a, const char *path)
{
	if (strncmp(path, "fd:", 3))
		return -1;
	char *end = NULL;
	errno = 0;
	long n = strtol(path + 3, &end, 10);
	if (errno || end == path + 3 || *end || n < 0 || n >= a->req_nfds || !isdigit((unsigned char)path[3]))
		return -2;
	return a->req_fds[n];
}

/* A snapshot file named by the request: a passed descriptor, or a path opened now (inside the
 * jail root when jailed). *opened: we opened (and created) it. */
static int snap_file(vmm_api *a, const char *where, const char *path, bool create, bool *opened, char **out)
{
	*opened = false;
	int fd = passed_fd(a, path);
	if (fd == -2) {
		*out = fault("%s: \"%s\": only %d file descriptor(s) came with this request", where, path, a->req_nfds);
		return -1;
	}
	if (fd >= 0)
		return fd;
	silo_error err = {0};
	char ebuf[1024];
	if (create) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "create %s", path);
	} else {
		fd = vmm_open(path, false, "file", &err);
	}
	if (fd < 0) {
		*out = fault("%s: %s", where, silo_error_str(&err, ebuf, sizeof ebuf));
		return -1;
	}
	*opened = true;
	return fd;
}

static int snapshot_create(vmm_api *a, json_t *j, char **out)
{
	static const char *const keys[] = {"snapshot_path", "mem_file_path", "snapshot_type", "version", NULL};
	if (check_only_keys(j, "snapshot", keys, out) < 0)
		return 400;
	json_t *t = json_object_get(j, "snapshot_type");
	if (t && (!json_is_string(t) || strcmp(json_string_value(t), "Full"))) {
		*out = fault("snapshot.snapshot_type: only \"Full\" is supported");
		return 400;
	}
	const char *sp = path_field(j, "snapshot", "snapshot_path", out), *mp = sp ? path_field(j, "snapshot", "mem_file_path", out) : NULL;
	if (!sp || !mp)
		return 400;
	if (!a->v) {
		*out = fault("snapshot: the microVM has not been started");
		return 400;
	}
	bool sopen = false, mopen = false;
	int sfd = snap_file(a, "snapshot.snapshot_path", sp, true, &sopen, out);
	int mfd = sfd < 0 ? -1 : snap_file(a, "snapshot.mem_file_path", mp, true, &mopen, out);
	int rc = 204;
	silo_error err = {0};
	char ebuf[1024];
	vmm_snap_file st = {.fd = sfd, .name = sp}, mem = {.fd = mfd, .name = mp};
	if (mfd < 0) {
		rc = 400;
	} else if (vmm_snapshot_create(a->v, &a->cfg, a->rng, &st, &mem, &err) < 0) {
		*out = fault("snapshot: %s", silo_error_str(&err, ebuf, sizeof ebuf));
		rc = 400;
	}
	/* what we created ourselves is removed again when the snapshot failed */
	if (sopen) {
		close(sfd);
		if (rc != 204)
			unlink(sp);
	}
	if (mopen) {
		close(mfd);
		if (rc != 204)
			unlink(mp);
	}
	return rc;
}

static void clear_load(vmm_api *a);

static int snapshot_load(vmm_api *a, json_t *j, char **out, bool *start)
{
	static const char *const keys[] = {"snapshot_path", "mem_file_path", "mem_backend", "resume_vm",
					   "enable_diff_snapshots", "vsock_uds_path", "verify_memory", NULL};
	if (check_only_keys(j, "snapshot", keys, out) < 0)
		return 400;
	if (a->v) {
		*out = fault("snapshot: load is only possible before the microVM starts");
		return 400;
	}
	const char *sp = path_field(j, "snapshot", "snapshot_path", out);
	if (!sp)
		return 400;
	const char *mp = NULL;
	json_t *mb = json_object_get(j, "mem_backend");
	if (mb && json_object_get(j, "mem_file_path")) {
		*out = fault("snapshot: give mem_backend or mem_file_path, not both");
		return 400;
	}
	if (mb) {
		static const char *const bk[] = {"backend_type", "backend_path", NULL};
		if (!json_is_object(mb) || check_only_keys(mb, "snapshot.mem_backend", bk, out) < 0) {
			if (!*out)
				*out = fault("snapshot.mem_backend: expected an object");
			return 400;
		}
		json_t *bt = json_object_get(mb, "backend_type");
		if (!json_is_string(bt) || strcmp(json_string_value(bt), "File")) {
			*out = fault("snapshot.mem_backend.backend_type: only \"File\" is supported");
			return 400;
		}
		mp = path_field(mb, "snapshot.mem_backend", "backend_path", out);
	} else {
		mp = path_field(j, "snapshot", "mem_file_path", out);
	}
	if (!mp)
		return 400;
	static const char *const bools[] = {"resume_vm", "enable_diff_snapshots", "verify_memory"};
	for (size_t i = 0; i < 3; i++) {
		json_t *b = json_object_get(j, bools[i]);
		if (b && !json_is_boolean(b)) {
			*out = fault("snapshot.%s: expected true or false", bools[i]);
			return 400;
		}
	}
	if (json_is_true(json_object_get(j, "enable_diff_snapshots"))) {
		*out = fault("snapshot.enable_diff_snapshots: diff snapshots are not supported");
		return 400;
	}
	const char *vs = NULL;
	if (json_object_get(j, "vsock_uds_path") && !(vs = path_field(j, "snapshot", "vsock_uds_path", out)))
		return 400;
	bool sopen, mopen;
	int sfd = snap_file(a, "snapshot.snapshot_path", sp, false, &sopen, out);
	int mfd = sfd < 0 ? -1 : snap_file(a, mb ? "snapshot.mem_backend.backend_path" : "snapshot.mem_file_path", mp,
					   false, &mopen, out);
	/* the pending load keeps its own descriptors (the request's are closed once answered) */
	if (sfd >= 0 && !sopen)
		sfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	if (mfd >= 0 && !mopen)
		mfd = fcntl(mfd, F_DUPFD_CLOEXEC, 0);
	if (sfd < 0 || mfd < 0) {
		if (!*out) {
			silo_error err = {0};
			char ebuf[512];
			silo_fail(&err, SILO_ERR_RESOURCE_EXCEEDED, errno, "duplicate a passed descriptor");
			*out = fault("snapshot: %s", silo_error_str(&err, ebuf, sizeof ebuf));
		}
		if (sfd >= 0)
			close(sfd);
		if (mfd >= 0)
			close(mfd);
		return 400;
	}
	clear_load(a);
	a->load_state_fd = sfd;
	a->load_mem_fd = mfd;
	a->load_state = xstrdup(sp);
	a->load_mem = xstrdup(mp);
	a->load_vsock_uds = vs ? xstrdup(vs) : NULL;
	a->load_resume = json_is_true(json_object_get(j, "resume_vm"));
	json_t *verify = json_object_get(j, "verify_memory");
	a->load_verify = !verify || json_is_true(verify);
	*start = true;
	return 204;
}

/* ---- the resources: one handler per row of the table below ---- */

static int config_fault(const silo_error *err, char **out)
{
	char ebuf[512];
	*out = fault("%s", silo_error_str(err, ebuf, sizeof ebuf));
	return 400;
}

static int get_root(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)q;
	(void)start;
	*out = dump(json_pack("{s:s,s:s,s:s,s:s}", "id", a->id, "state", state_name(a), "vmm_version", SILO_VERSION,
			      "app_name", "silo-vmm"));
	return 200;
}

static int get_vm_config(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)q;
	(void)start;
	*out = dump(vmm_config_json(&a->cfg));
	return 200;
}

static int get_machine(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)q;
	(void)start;
	*out = dump(json_pack("{s:I,s:I,s:b,s:b}", "vcpu_count", (json_int_t)a->cfg.vcpus, "mem_size_mib",
			      (json_int_t)a->cfg.mem_mib, "smt", 0, "track_dirty_pages", 0));
	return 200;
}

/* PUT (every field) and PATCH (some) */
static int put_machine(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	silo_error err = {0};
	if (vmm_config_parse_machine(q->body, "machine-config", q->patch, &a->cfg, &err) < 0)
		return config_fault(&err, out);
	return 204;
}

static int put_boot_source(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	silo_error err = {0};
	if (vmm_config_parse_boot_source(q->body, "boot-source", &a->cfg, &err) < 0)
		return config_fault(&err, out);
	a->have_boot_source = true;
	return 204;
}

static int put_vsock(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	silo_error err = {0};
	if (vmm_config_parse_vsock(q->body, "vsock", &a->cfg, &err) < 0)
		return config_fault(&err, out);
	return 204;
}

static int put_drive_route(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	return put_drive(a, http_capture(&q->caps, "drive_id"), q->body, out);
}

static int put_actions(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	return action(a, q->body, out, start);
}

static int put_snapshot_create(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	return snapshot_create(a, q->body, out);
}

static int put_snapshot_load(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	return snapshot_load(a, q->body, out, start);
}

static int patch_vm_route(vmm_api *a, const vmm_req *q, char **out, bool *start)
{
	(void)start;
	return patch_vm(a, q->body, out);
}

/* The table: one row per route (docs/vmm.md lists the same method+path pairs;
 * tests/unit/test_routes.c checks both ways). body: the name a JSON body's
 * errors use, NULL for none; VMM_ROUTE_CONFIG rows are refused once the VM
 * runs; VMM_ROUTE_OBJECT bodies must be JSON objects (the configuration
 * parsers say so themselves for theirs). */
enum { VMM_ROUTE_CONFIG = 1, VMM_ROUTE_OBJECT = 2 };
#define CONFIG VMM_ROUTE_CONFIG
#define OBJECT VMM_ROUTE_OBJECT
const vmm_route vmm_api_routes[] = {
	/* method   pattern              handler               body              flags */
	{"GET",    "/",                 get_root,             NULL,             0},
	{"GET",    "/vm/config",        get_vm_config,        NULL,             0},
	{"GET",    "/machine-config",   get_machine,          NULL,             0},
	{"PUT",    "/machine-config",   put_machine,          "machine-config", CONFIG},
	{"PATCH",  "/machine-config",   put_machine,          "machine-config", CONFIG},
	{"PUT",    "/boot-source",      put_boot_source,      "boot-source",    CONFIG},
	{"PUT",    "/drives/{drive_id}", put_drive_route,     "drive",          CONFIG},
	{"PUT",    "/vsock",            put_vsock,            "vsock",          CONFIG},
	{"PUT",    "/actions",          put_actions,          "actions",        OBJECT},
	{"PUT",    "/snapshot/create",  put_snapshot_create,  "snapshot",       OBJECT},
	{"PUT",    "/snapshot/load",    put_snapshot_load,    "snapshot",       OBJECT},
	{"PATCH",  "/vm",               patch_vm_route,       "vm",             OBJECT},
};
#undef CONFIG
#undef OBJECT
const size_t vmm_api_n_routes = sizeof vmm_api_routes / sizeof vmm_api_routes[0];

int vmm_api_handle(vmm_api *a, const char *method, const char *path, const char *body, size_t body_len,
		   char **out, bool *start)
{
	*out = NULL;
	*start = false;
	http_target t;
	silo_error err;
	char allow[64] = "";
	long i = -1;
	if (http_target_parse(path, strlen(path), 0, &t, &err) == 0) {
		http_table tab = HTTP_TABLE(vmm_api_routes, vmm_api_n_routes, vmm_route);
		i = http_route_lookup(&tab, method, &t, allow, sizeof allow);
	}
	if (i < 0 && !allow[0]) {
		*out = fault("%s: no such resource", path);
		return 404;
	}
	if (i < 0) {
		*out = fault("%s %s: method not allowed (allowed: %s)", method, path, allow);
		return 405;
	}
	const vmm_route *r = &vmm_api_routes[i];
	vmm_req q = {.patch = !strcmp(method, "PATCH")};
	http_pattern_match(r->pattern, &t, &q.caps);
	if ((r->flags & VMM_ROUTE_CONFIG) && not_after_start(a, r->body, out) < 0)
		return 400;
	if (r->body && !(q.body = parse_body(body, body_len, r->body, out)))
		return 400;
	int rc = 400;
	if ((r->flags & VMM_ROUTE_OBJECT) && !json_is_object(q.body))
		*out = fault("%s: expected an object", r->body);
	else
		rc = r->fn(a, &q, out, start);
	json_decref(q.body);
	return rc;
}

/* ---- HTTP ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void respond(int fd, int status, const char *body, bool close_after)
{
	size_t blen = body ? strlen(body) : 0;
	char head[256];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nServer: silo-vmm\r\nContent-Length: %zu\r\n%s%s\r\n", status,
			 reason(status), blen, blen ? "Content-Type: application/json\r\n" : "",
			 close_after ? "Connection: close\r\n" : "");
	if (write_all(fd, head, (size_t)n) == 0 && blen)
		write_all(fd, body, blen);
}

static void conn_drop_fds(vmm_api_conn *c)
{
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

static void conn_close(vmm_api_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	conn_drop_fds(c);
	free(c->buf);
	*c = (vmm_api_conn){.fd = -1};
}

static void conn_fail(vmm_api_conn *c, int status, const char *msg)
{
	char *b = fault("%s", msg);
	respond(c->fd, status, b, true);
	free(b);
	conn_close(c);
}

static bool tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch);
}

/* Parse and serve every complete request in c->buf. Returns 1 when an InstanceStart
 * is pending on this connection (stop serving it until answered), 0 to keep reading,
 * -1 when the connection was closed. */
static int conn_serve(vmm_api *a, int idx)
{
	vmm_api_conn *c = &a->conns[idx];
	while (c->len) {
		size_t scan = c->len < VMM_API_MAX_HEADER ? c->len : VMM_API_MAX_HEADER;
		char *end = memmem(c->buf, scan, "\r\n\r\n", 4);
		if (!end) {
			if (c->len >= VMM_API_MAX_HEADER) {
				conn_fail(c, 431, "request line and headers exceed 8192 bytes");
				return -1;
			}
			return 0;
		}
		size_t hlen = (size_t)(end - c->buf) + 4;
		for (size_t i = 0; i < hlen; i++) {
			unsigned char ch = (unsigned char)c->buf[i];
			if (ch == 0 || ch >= 0x7f || (ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t')) {
				char m[96];
				snprintf(m, sizeof m, "byte %zu of the request head: 0x%02x is not allowed", i, ch);
				conn_fail(c, 400, m);
				return -1;
			}
		}
		char head[VMM_API_MAX_HEADER + 1];
		memcpy(head, c->buf, hlen);
		head[hlen - 4] = 0;
		/* Request line: METHOD SP TARGET SP HTTP/1.x */
		char *save = NULL, *line = strtok_r(head, "\r\n", &save);
		char *sp1 = line ? strchr(line, ' ') : NULL, *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (!line || !sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
			conn_fail(c, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
			return -1;
		}
		*sp1 = *sp2 = 0;
		const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
		bool method_ok = *method && strlen(method) <= 16;
		for (const char *p = method; *p; p++)
			method_ok &= *p >= 'A' && *p <= 'Z';
		if (!method_ok) {
			conn_fail(c, 400, "malformed request line: bad method");
			return -1;
		}
		if (strcmp(version, "HTTP/1.1") && strcmp(version, "HTTP/1.0")) {
			conn_fail(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
			return -1;
		}
		if (target[0] != '/' || strlen(target) > 1024) {
			conn_fail(c, 400, "malformed request line: the target must be an absolute path of at most 1024 bytes");
			return -1;
		}
		bool keep = !strcmp(version, "HTTP/1.1"), expect = false, have_len = false;
		size_t clen = 0;
		for (char *h = strtok_r(NULL, "\r\n", &save); h; h = strtok_r(NULL, "\r\n", &save)) {
			char *colon = strchr(h, ':');
			bool name_ok = colon && colon != h;
			for (char *p = h; name_ok && p < colon; p++)
				name_ok = tchar(*p);
			if (!name_ok) {
				char m[160];
				snprintf(m, sizeof m, "malformed header line \"%.60s\"", h);
				conn_fail(c, 400, m);
				return -1;
			}
			*colon = 0;
			char *val = colon + 1;
			while (*val == ' ' || *val == '\t')
				val++;
			for (char *e = val + strlen(val); e > val && (e[-1] == ' ' || e[-1] == '\t');)
				*--e = 0;
			if (!strcasecmp(h, "Content-Length")) {
				char *e = NULL;
				errno = 0;
				unsigned long long v = strtoull(val, &e, 10);
				if (!*val || *e || errno || val[0] == '-' || val[0] == '+' || (have_len && v != clen)) {
					conn_fail(c, 400, "Content-Length: not a single decimal number");
					return -1;
				}
				if (v > VMM_API_MAX_BODY) {
					conn_fail(c, 413, "Content-Length: bodies are limited to 51200 bytes");
					return -1;
				}
				clen = (size_t)v;
				have_len = true;
			} else if (!strcasecmp(h, "Transfer-Encoding")) {
				conn_fail(c, 501, "Transfer-Encoding is not supported (send Content-Length)");
				return -1;
			} else if (!strcasecmp(h, "Connection")) {
				if (!strcasecmp(val, "close"))
					keep = false;
				else if (!strcasecmp(val, "keep-alive"))
					keep = true;
			} else if (!strcasecmp(h, "Expect")) {
				if (strcasecmp(val, "100-continue")) {
					conn_fail(c, 400, "Expect: only 100-continue is supported");
					return -1;
				}
				expect = true;
			}
		}
		if (c->len < hlen + clen) {
			if (expect && !c->continued) {
				static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
				write_all(c->fd, cont, sizeof cont - 1);
				c->continued = true;
			}
			return 0; /* wait for the body */
		}
		c->continued = false;
		char path[1025];
		snprintf(path, sizeof path, "%s", target);
		char *q = strchr(path, '?');
		if (q)
			*q = 0;
		char *body = NULL;
		bool start = false;
		/* the descriptors received so far came with this request: it may use them ("fd:N") */
		a->req_fds = c->fds;
		a->req_nfds = c->nfds;
		int st = vmm_api_handle(a, method, path, c->buf + hlen, clen, &body, &start);
		a->req_fds = NULL;
		a->req_nfds = 0;
		conn_drop_fds(c);
		memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
		c->len -= hlen + clen;
		if (start) {
			free(body);
			a->start_conn = idx;
			c->close_after = !keep;
			return 1;
		}
		respond(c->fd, st, body, !keep);
		free(body);
		if (!keep) {
			conn_close(c);
			return -1;
		}
	}
	return 0;
}

void vmm_api_serve_bytes(vmm_api *a, int fd, const void *data, size_t len)
{
	size_t cap = VMM_API_MAX_HEADER + VMM_API_MAX_BODY;
	vmm_api_conn *c = &a->conns[0];
	*c = (vmm_api_conn){.fd = fd, .buf = xmalloc(cap)};
	/* Fed in pieces the way read() would deliver them. */
	for (size_t off = 0; off < len && c->fd >= 0;) {
		size_t n = len - off < cap - c->len ? len - off : cap - c->len;
		if (!n)
			break;
		memcpy(c->buf + c->len, (const char *)data + off, n);
		c->len += n;
		off += n;
		conn_serve(a, 0);
		while (a->start_conn >= 0) {
			silo_error e = {0};
			silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0, "fuzzing: not started");
			vmm_api_reply_start(a, &e);
		}
	}
	if (c->fd >= 0)
		conn_close(c);
}

int vmm_api_open(vmm_api *a, const char *path, const char *id, silo_error *err)
{
	memset(a, 0, sizeof *a);
	a->listen_fd = a->stop_fd = -1;
	a->start_conn = -1;
	for (int i = 0; i < VMM_API_MAX_CONNS; i++)
		a->conns[i].fd = -1;
	a->cfg.vcpus = 1;
	a->cfg.mem_mib = 128;
	snprintf(a->id, sizeof a->id, "%s", id);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--api-sock %s: longer than %zu bytes", path,
				 sizeof sa.sun_path - 1);
	/* Bind a temporary name and rename it into place once listening: clients that wait for
	 * the file to appear can connect at once (no ECONNREFUSED window). */
	char tmp[sizeof sa.sun_path + 32];
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	if (strlen(tmp) >= sizeof sa.sun_path)
		snprintf(tmp, sizeof tmp, "%s", path); /* no room for a temporary name */
	strcpy(sa.sun_path, tmp);
	if (access(path, F_OK) == 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, EEXIST,
				 "--api-sock %s: cannot listen (the file exists: another VMM, or a stale socket to remove)",
				 path);
	a->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->listen_fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "--api-sock: socket");
	mode_t old = umask(0177);
	int r = bind(a->listen_fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || listen(a->listen_fd, 16) < 0 || (strcmp(tmp, path) && rename(tmp, path) < 0)) {
		int e = errno;
		close(a->listen_fd);
		a->listen_fd = -1;
		if (r == 0)
			unlink(tmp);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e, "--api-sock %s: cannot listen%s", path,
				 e == EADDRINUSE ? " (the file exists: another VMM, or a stale socket to remove)" : "");
	}
	snprintf(a->path, sizeof a->path, "%s", path);
	/* Created now: the post-boot thread starts inside the jail, where eventfd2 is not allowed. */
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "api: eventfd");
	return 0;
}

static void accept_one(vmm_api *a)
{
	int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* Blocking writes are fine: every response (< 4 KiB) fits in the socket buffer. */
	for (int i = 0; i < VMM_API_MAX_CONNS; i++) {
		if (a->conns[i].fd < 0) {
			a->conns[i] = (vmm_api_conn){.fd = fd, .buf = xmalloc(VMM_API_MAX_HEADER + VMM_API_MAX_BODY)};
			return;
		}
	}
	char *b = fault("too many connections (at most %d)", VMM_API_MAX_CONNS);
	respond(fd, 503, b, true);
	free(b);
	close(fd);
}

static void read_conn(vmm_api *a, int i)
{
	vmm_api_conn *c = &a->conns[i];
	size_t cap = VMM_API_MAX_HEADER + VMM_API_MAX_BODY;
	struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = cap - c->len};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * VMM_API_MAX_FDS)];
	} cm;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
	ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		conn_close(c);
		return;
	}
	bool too_many = mh.msg_flags & MSG_CTRUNC;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int f = 0; f < k; f++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + f * sizeof(int), sizeof fd);
			if (c->nfds < VMM_API_MAX_FDS)
				c->fds[c->nfds++] = fd;
			else {
				close(fd);
				too_many = true;
			}
		}
	}
	c->len += (size_t)n;
	if (too_many) {
		conn_fail(c, 400, "at most 4 file descriptors may come with a request");
		return;
	}
	conn_serve(a, i);
}

int vmm_api_poll(vmm_api *a, int extra_fd)
{
	for (;;) {
		if (a->start_conn >= 0) /* an InstanceStart pipelined behind an answered one */
			return VMM_API_EV_START;
		struct pollfd p[VMM_API_MAX_CONNS + 2];
		int idx[VMM_API_MAX_CONNS + 2], n = 0;
		p[n] = (struct pollfd){.fd = a->listen_fd, .events = POLLIN};
		idx[n++] = -1;
		if (extra_fd >= 0) {
			p[n] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
			idx[n++] = -2;
		}
		for (int i = 0; i < VMM_API_MAX_CONNS; i++)
			if (a->conns[i].fd >= 0 && i != a->start_conn) {
				p[n] = (struct pollfd){.fd = a->conns[i].fd, .events = POLLIN};
				idx[n++] = i;
			}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return VMM_API_EV_EXTRA;
		}
		for (int k = 0; k < n; k++) {
			if (!p[k].revents)
				continue;
			if (idx[k] == -2)
				return VMM_API_EV_EXTRA;
			if (idx[k] == -1)
				accept_one(a);
			else if (a->conns[idx[k]].fd >= 0)
				read_conn(a, idx[k]);
			if (a->start_conn >= 0)
				return VMM_API_EV_START;
		}
	}
}

static void clear_load(vmm_api *a)
{
	if (a->load_state) { /* the fds are valid exactly while a load is pending */
		close(a->load_state_fd);
		close(a->load_mem_fd);
	}
	free(a->load_state);
	free(a->load_mem);
	free(a->load_vsock_uds);
	a->load_state = a->load_mem = a->load_vsock_uds = NULL;
}

void vmm_api_reply_start(vmm_api *a, const silo_error *err)
{
	int i = a->start_conn;
	bool was_load = a->load_state != NULL;
	clear_load(a);
	if (i < 0)
		return;
	a->start_conn = -1;
	vmm_api_conn *c = &a->conns[i];
	if (err) {
		char ebuf[1024];
		char *b = fault("%s: %s", was_load ? "snapshot/load" : "actions: InstanceStart",
				silo_error_str(err, ebuf, sizeof ebuf));
		respond(c->fd, 400, b, c->close_after);
		free(b);
	} else {
		respond(c->fd, 204, NULL, c->close_after);
	}
	if (c->close_after) {
		conn_close(c);
		return;
	}
	/* Requests pipelined behind InstanceStart. */
	if (c->len)
		conn_serve(a, i);
}

static void *api_thread(void *arg)
{
	vmm_api *a = arg;
	pthread_setname_np(pthread_self(), "api");
	while (vmm_api_poll(a, a->stop_fd) != VMM_API_EV_EXTRA) {
		/* Unreachable: action() refuses InstanceStart once a->v is set. */
		silo_error e = {0};
		silo_fail(&e, SILO_ERR_CONFLICT, 0, "the microVM is already running");
		vmm_api_reply_start(a, &e);
	}
	return NULL;
}

int vmm_api_start_thread(vmm_api *a, vm *v, silo_error *err)
{
	a->v = v;
	int e = pthread_create(&a->thread, NULL, api_thread, a);
	if (e)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "api: start thread");
	a->thread_started = true;
	return 0;
}

void vmm_api_close(vmm_api *a)
{
	if (a->thread_started) {
		uint64_t one = 1;
		if (write(a->stop_fd, &one, sizeof one) < 0) {
			/* an eventfd write only fails on overflow */
		}
		pthread_join(a->thread, NULL);
		a->thread_started = false;
	}
	if (a->stop_fd >= 0)
		close(a->stop_fd);
	for (int i = 0; i < VMM_API_MAX_CONNS; i++)
		conn_close(&a->conns[i]);
	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		if (a->path[0])
			unlink(a->path); /* inside a jail the relay process removes it */
	}
	a->listen_fd = a->stop_fd = -1;
	a->v = NULL;
	clear_load(a);
	vmm_config_free(&a->cfg);
}
