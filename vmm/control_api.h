/* SPDX-License-Identifier: Apache-2.0
 * --api-sock PATH: the Firecracker-compatible control API (docs/vmm.md) on a unix
 * socket: HTTP/1.1, JSON bodies, {"fault_message": ...} errors.
 *
 * Before InstanceStart the main thread runs the loop (vmm_api_poll) and builds the
 * VM when asked; after it, a thread started inside the jail serves GET /, PATCH /vm
 * (Paused/Resumed) and the read-only resources.
 */
#ifndef SILO_VMM_API_H
#define SILO_VMM_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "common/http_route.h"
#include "config.h"
#include "vmm.h"

#define VMM_API_MAX_CONNS 8
#define VMM_API_MAX_HEADER 8192  /* request line + headers */
#define VMM_API_MAX_BODY 51200   /* Firecracker's payload limit */

typedef struct vmm_api_conn {
	int fd;
	char *buf;
	size_t len;
	bool continued; /* "100 Continue" sent for this request */
	bool close_after; /* the pending InstanceStart/load asked for Connection: close */
} vmm_api_conn;

typedef struct vmm_api {
	int listen_fd;
	char path[108];
	char id[65];
	vmm_api_conn conns[VMM_API_MAX_CONNS];
	vmm_file_config cfg; /* what the API configured before InstanceStart */
	bool have_boot_source;
	int start_conn;      /* connection waiting for the InstanceStart answer, or -1 */
	vm *v;               /* after InstanceStart */
	bool rng;            /* virtio-rng attached (not part of Firecracker's configuration) */
	/* PUT /snapshot/load, pending like InstanceStart (cleared by vmm_api_reply_start). */
	char *load_state, *load_mem, *load_vsock_uds;
	bool load_resume, load_verify;
	int stop_fd;         /* eventfd: stops the post-boot thread */
	pthread_t thread;
	bool thread_started;
} vmm_api;

enum { VMM_API_EV_START = 1, VMM_API_EV_EXTRA = 2 };

/* Listen on path (mode 0600; an existing socket file is an error). */
int vmm_api_open(vmm_api *a, const char *path, const char *id, silo_error *err);
/* Serve requests until InstanceStart arrives (VMM_API_EV_START; answer it with
 * vmm_api_reply_start) or extra_fd (if >= 0) is readable (VMM_API_EV_EXTRA). */
int vmm_api_poll(vmm_api *a, int extra_fd);
/* Answer the pending InstanceStart: 204, or 400 with err's message. */
void vmm_api_reply_start(vmm_api *a, const silo_error *err);
/* Serve the running VM from a thread (call after the jail is entered). */
int vmm_api_start_thread(vmm_api *a, vm *v, silo_error *err);
/* Stop the thread, close every connection and the socket, unlink the path. */
void vmm_api_close(vmm_api *a);

/* The route table (control_api.c): one row per resource and method. */
typedef struct vmm_req {
	http_captures caps;      /* {drive_id} */
	struct json_t *body;     /* the JSON body of rows that take one */
	bool patch;              /* PATCH (partial update) rather than PUT */
} vmm_req;
typedef int (*vmm_route_fn)(vmm_api *a, const vmm_req *q, char **out, bool *start);
typedef struct vmm_route {
	const char *method;
	const char *pattern;     /* lib/common/http_route.h */
	vmm_route_fn fn;         /* HTTP status; *out a fault or a document */
	const char *body;        /* a JSON body is required, named so in errors; NULL: none read */
	unsigned flags;          /* control_api.c: before InstanceStart only, object body */
} vmm_route;
extern const vmm_route vmm_api_routes[];
extern const size_t vmm_api_n_routes;

/* Handle one parsed request (exposed for the unit test and the fuzz target).
 * Returns the HTTP status; *body is a malloc'd JSON document or NULL; *start is set
 * for a valid InstanceStart before boot. */
int vmm_api_handle(vmm_api *a, const char *method, const char *path, const char *body, size_t body_len,
		   char **out_body, bool *start);

/* Serve the bytes as if read from a connection on fd (responses are written to fd, which is
 * closed at the end). For the fuzz target; the API must not be listening. */
void vmm_api_serve_bytes(vmm_api *a, int fd, const void *data, size_t len);

#endif
