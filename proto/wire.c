/* SPDX-License-Identifier: Apache-2.0 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Field keys and kinds, one table for both directions. */
enum kind { K_U32, K_I64, K_U64, K_BOOL, K_STR, K_STRV, K_BIN, K_ENTS, K_EVS };

typedef struct field {
	const char *key;
	uint64_t bit;
	enum kind kind;
	size_t off;         /* offset of the value in wire_msg */
	size_t aux;         /* count offset for K_STRV/K_ENTS/K_BIN, max len for K_STR */
} field;

#define OFF(f) offsetof(wire_msg, f)
static const field fields[] = {
	{"v", WF_V, K_U32, OFF(v), 0},
	{"argv", WF_ARGV, K_STRV, OFF(argv), OFF(argc)},
	{"env", WF_ENV, K_STRV, OFF(env), OFF(envc)},
	{"cwd", WF_CWD, K_STR, OFF(cwd), WIRE_MAX_PATH},
	{"path", WF_PATH, K_STR, OFF(path), WIRE_MAX_PATH},
	{"msg", WF_MSG, K_STR, OFF(msg), WIRE_MAX_MSG},
	{"agent", WF_AGENT, K_STR, OFF(agent), WIRE_MAX_MSG},
	{"kernel", WF_KERNEL, K_STR, OFF(kernel), WIRE_MAX_MSG},
	{"d", WF_DATA, K_BIN, OFF(data), OFF(data_len)},
	{"s", WF_STREAM, K_U32, OFF(stream), 0},
	{"code", WF_CODE, K_I64, OFF(code), 0},
	{"sig", WF_SIG, K_I64, OFF(sig), 0},
	{"to", WF_TIMEDOUT, K_BOOL, OFF(timed_out), 0},
	{"ms", WF_MS, K_U64, OFF(ms), 0},
	{"uid", WF_UID, K_I64, OFF(uid), 0},
	{"gid", WF_GID, K_I64, OFF(gid), 0},
	{"pty", WF_PTY, K_BOOL, OFF(pty), 0},
	{"rows", WF_ROWS, K_U32, OFF(rows), 0},
	{"cols", WF_COLS, K_U32, OFF(cols), 0},
	{"mode", WF_MODE, K_U32, OFF(mode), 0},
	{"eof", WF_EOF, K_BOOL, OFF(eof), 0},
	{"flag", WF_FLAG, K_BOOL, OFF(flag), 0},
	{"size", WF_SIZE, K_U64, OFF(size), 0},
	{"mtime", WF_MTIME, K_I64, OFF(mtime), 0},
	{"pid", WF_PID, K_U32, OFF(pid), 0},
	{"ex", WF_EXISTS, K_BOOL, OFF(exists), 0},
	{"max", WF_MAX, K_U64, OFF(max), 0},
	{"ents", WF_ENTS, K_ENTS, OFF(ents), OFF(n_ents)},
	{"tmo", WF_TIMEOUT, K_U64, OFF(timeout), 0},
	{"win", WF_WIN, K_U32, OFF(win), 0},
	{"n", WF_N, K_U32, OFF(n), 0},
	{"dst", WF_DST, K_STR, OFF(dst), WIRE_MAX_PATH},
	{"depth", WF_DEPTH, K_U32, OFF(depth), 0},
	{"link", WF_LINK, K_STR, OFF(link), WIRE_MAX_PATH},
	{"evs", WF_EVS, K_EVS, OFF(evs), OFF(n_evs)},
	{"ovf", WF_OVF, K_BOOL, OFF(ovf), 0},
	{"a", WF_ADDR, K_STR, OFF(addr), 64},
	{"oom", WF_OOM, K_BOOL, OFF(oom), 0},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The two keys every message carries, first (outside the present mask). */
static const struct {
	const char *key;
	size_t off;             /* of a uint32_t in wire_msg */
	const char *missing;
} head[2] = {{"t", OFF(type), "missing key \"t\""}, {"id", OFF(id), "missing key \"id\""}};

#define AT(m, off, type) ((type *)((char *)(m) + (off)))
#define CAT(m, off, type) ((const type *)((const char *)(m) + (off)))

static void put_dirent(mp_buf *b, const void *ev)
{
	const wire_dirent *e = ev;
	mp_put_array(b, e->link ? 7 : 6);
	mp_put_cstr(b, e->name);
	mp_put_uint(b, e->size);
	mp_put_uint(b, e->mode);
	mp_put_int(b, e->mtime);
	mp_put_uint(b, e->uid);
	mp_put_uint(b, e->gid);
	if (e->link)
		mp_put_cstr(b, e->link);
}

static void put_event(mp_buf *b, const void *ev)
{
	const wire_event *e = ev;
	mp_put_array(b, 2);
	mp_put_uint(b, e->kind);
	mp_put_cstr(b, e->name);
}

static bool get_dirent(mp_rd *r, void *ev);
static bool get_event(mp_rd *r, void *ev);
/* The arrays of records (K_ENTS, K_EVS): element size, most elements, how one is
 * written and read. */
typedef struct list_kind {
	size_t size;
	uint32_t max;
	void (*put)(mp_buf *b, const void *e);
	bool (*get)(mp_rd *r, void *e);
} list_kind;
static const list_kind list_ents = {sizeof(wire_dirent), WIRE_MAX_ENTS, put_dirent, get_dirent};
static const list_kind list_evs = {sizeof(wire_event), WIRE_MAX_EVS, put_event, get_event};

bool wire_encode(mp_buf *b, const wire_msg *m)
{
	size_t start = b->len;
	uint8_t hdr[4] = {0, 0, 0, 0};
	mp_put_raw(b, hdr, 4);
	uint32_t n = 2;
	for (size_t i = 0; i < N_FIELDS; i++)
		if (m->present & fields[i].bit)
			n++;
	mp_put_map(b, n);
	for (size_t h = 0; h < 2; h++) {
		mp_put_cstr(b, head[h].key);
		mp_put_uint(b, *CAT(m, head[h].off, uint32_t));
	}
	for (size_t i = 0; i < N_FIELDS; i++) {
		const field *f = &fields[i];
		if (!(m->present & f->bit))
			continue;
		mp_put_cstr(b, f->key);
		switch (f->kind) {
		case K_U32: mp_put_uint(b, *CAT(m, f->off, uint32_t)); break;
		case K_U64: mp_put_uint(b, *CAT(m, f->off, uint64_t)); break;
		case K_I64: mp_put_int(b, *CAT(m, f->off, int64_t)); break;
		case K_BOOL: mp_put_bool(b, *CAT(m, f->off, bool)); break;
		case K_STR: mp_put_cstr(b, *CAT(m, f->off, char *)); break;
		case K_STRV: {
			char *const *v = *(char **const *)((const char *)m + f->off);
			uint32_t c = *CAT(m, f->aux, uint32_t);
			mp_put_array(b, c);
			for (uint32_t k = 0; k < c; k++)
				mp_put_cstr(b, v[k]);
			break;
		}
		case K_BIN: mp_put_bin(b, *CAT(m, f->off, const uint8_t *), *CAT(m, f->aux, size_t)); break;
		case K_ENTS:
		case K_EVS: {
			const list_kind *lk = f->kind == K_ENTS ? &list_ents : &list_evs;
			const char *e = *CAT(m, f->off, void *);
			uint32_t c = *CAT(m, f->aux, uint32_t);
			mp_put_array(b, c);
			for (uint32_t k = 0; k < c; k++)
				lk->put(b, e + k * lk->size);
			break;
		}
		}
	}
	if (b->oom)
		return false;
	size_t plen = b->len - start - 4;
	if (plen > WIRE_MAX_FRAME) {
		b->len = start;
		return false;
	}
	b->p[start] = (uint8_t)(plen >> 24);
	b->p[start + 1] = (uint8_t)(plen >> 16);
	b->p[start + 2] = (uint8_t)(plen >> 8);
	b->p[start + 3] = (uint8_t)plen;
	return true;
}

bool wire_frame_len(const uint8_t hdr[4], uint32_t *len)
{
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0 || n > WIRE_MAX_FRAME)
		return false;
	*len = n;
	return true;
}

/* Copy a string value, rejecting embedded NULs. */
static char *dup_str(mp_rd *r, size_t max)
{
	const char *s;
	size_t n;
	if (!mp_get_str(r, &s, &n, max))
		return NULL;
	if (memchr(s, '\0', n)) {
		mp_fail(r, "string contains NUL");
		return NULL;
	}
	char *c = malloc(n + 1);
	if (!c) {
		mp_fail(r, "out of memory");
		return NULL;
	}
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

static bool get_u32(mp_rd *r, uint32_t *out)
{
	uint64_t v;
	if (!mp_get_uint(r, &v))
		return false;
	if (v > UINT32_MAX)
		return mp_fail(r, "integer exceeds 32 bits");
	*out = (uint32_t)v;
	return true;
}

static bool get_dirent(mp_rd *r, void *ev)
{
	wire_dirent *e = ev;
	uint32_t n;
	uint64_t size;
	if (!mp_get_array(r, &n, 7))
		return false;
	if (n != 6 && n != 7)
		return mp_fail(r, "directory entry must have 6 or 7 fields");
	e->name = dup_str(r, WIRE_MAX_PATH);
	if (!e->name)
		return false;
	if (!mp_get_uint(r, &size) || !get_u32(r, &e->mode) || !mp_get_int(r, &e->mtime) ||
	    !get_u32(r, &e->uid) || !get_u32(r, &e->gid))
		return false;
	e->size = size;
	if (n == 7 && !(e->link = dup_str(r, WIRE_MAX_PATH)))
		return false;
	return true;
}

static bool get_event(mp_rd *r, void *ev)
{
	wire_event *e = ev;
	uint32_t n;
	if (!mp_get_array(r, &n, 2))
		return false;
	if (n != 2)
		return mp_fail(r, "watch event must have 2 fields");
	if (!get_u32(r, &e->kind))
		return false;
	if (e->kind < WEV_CREATE || e->kind > WEV__MAX)
		return mp_fail(r, "unknown watch event kind");
	e->name = dup_str(r, WIRE_MAX_PATH);
	return e->name != NULL;
}

static bool decode_field(mp_rd *r, wire_msg *m, const field *f)
{
	if (m->present & f->bit)
		return mp_fail(r, "duplicate key");
	m->present |= f->bit;
	switch (f->kind) {
	case K_U32: return get_u32(r, AT(m, f->off, uint32_t));
	case K_U64: return mp_get_uint(r, AT(m, f->off, uint64_t));
	case K_I64: return mp_get_int(r, AT(m, f->off, int64_t));
	case K_BOOL: return mp_get_bool(r, AT(m, f->off, bool));
	case K_STR: {
		char *s = dup_str(r, f->aux);
		*AT(m, f->off, char *) = s;
		return s != NULL;
	}
	case K_STRV: {
		uint32_t n;
		if (!mp_get_array(r, &n, WIRE_MAX_ARGS))
			return false;
		char **v = calloc((size_t)n + 1, sizeof *v);
		if (!v)
			return mp_fail(r, "out of memory");
		*AT(m, f->off, char **) = v;
		for (uint32_t i = 0; i < n; i++) {
			v[i] = dup_str(r, WIRE_MAX_STR);
			if (!v[i])
				return false;
			*AT(m, f->aux, uint32_t) = i + 1;
		}
		return true;
	}
	case K_BIN:
		return mp_get_bin(r, AT(m, f->off, const uint8_t *), AT(m, f->aux, size_t), WIRE_CHUNK);
	case K_ENTS:
	case K_EVS: {
		const list_kind *lk = f->kind == K_ENTS ? &list_ents : &list_evs;
		uint32_t n;
		if (!mp_get_array(r, &n, lk->max))
			return false;
		char *e = calloc(n ? n : 1, lk->size);
		if (!e)
			return mp_fail(r, "out of memory");
		*AT(m, f->off, void *) = e;
		for (uint32_t i = 0; i < n; i++) {
			*AT(m, f->aux, uint32_t) = i + 1;
			if (!lk->get(r, e + i * lk->size))
				return false;
		}
		return true;
	}
	}
	return mp_fail(r, "internal: unknown field kind");
}

bool wire_decode(const uint8_t *payload, size_t len, wire_msg *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	mp_rd r;
	mp_rd_init(&r, payload, len);
	uint32_t n;
	bool have[2] = {false, false};
	if (len > WIRE_MAX_FRAME) {
		mp_fail(&r, "frame too large");
		goto fail;
	}
	if (!mp_get_map(&r, &n, WIRE_MAX_KEYS))
		goto fail;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		size_t kl;
		if (!mp_get_str(&r, &k, &kl, 16))
			goto fail;
		size_t h = 0;
		while (h < 2 && !(strlen(head[h].key) == kl && !memcmp(head[h].key, k, kl)))
			h++;
		if (h < 2) {
			if (have[h]) {
				mp_fail(&r, "duplicate key");
				goto fail;
			}
			have[h] = true;
			if (!get_u32(&r, AT(out, head[h].off, uint32_t)))
				goto fail;
			continue;
		}
		const field *f = NULL;
		for (size_t j = 0; j < N_FIELDS; j++)
			if (strlen(fields[j].key) == kl && memcmp(fields[j].key, k, kl) == 0)
				f = &fields[j];
		if (f) {
			if (!decode_field(&r, out, f))
				goto fail;
		} else if (!mp_skip(&r, WIRE_MAX_DEPTH)) {
			goto fail; /* unknown key: skipped for forward compatibility */
		}
	}
	for (size_t h = 0; h < 2; h++)
		if (!have[h]) {
			mp_fail(&r, head[h].missing);
			goto fail;
		}
	if (r.left) {
		mp_fail(&r, "trailing bytes after message");
		goto fail;
	}
	return true;
fail:
	if (err)
		snprintf(err, errlen, "byte %zu: %s", r.err_off, r.err ? r.err : "invalid message");
	return false;
}

void wire_msg_free(wire_msg *m)
{
	if (m->argv)
		for (uint32_t i = 0; i < m->argc; i++)
			free(m->argv[i]);
	free(m->argv);
	if (m->env)
		for (uint32_t i = 0; i < m->envc; i++)
			free(m->env[i]);
	free(m->env);
	free(m->cwd);
	free(m->path);
	free(m->msg);
	free(m->agent);
	free(m->kernel);
	free(m->dst);
	free(m->link);
	free(m->addr);
	if (m->ents)
		for (uint32_t i = 0; i < m->n_ents; i++) {
			free(m->ents[i].name);
			free(m->ents[i].link);
		}
	free(m->ents);
	if (m->evs)
		for (uint32_t i = 0; i < m->n_evs; i++)
			free(m->evs[i].name);
	free(m->evs);
	memset(m, 0, sizeof *m);
}

const char *wire_type_name(uint32_t t)
{
	switch (t) {
	case WM_HELLO: return "hello";
	case WM_HELLO_OK: return "hello_ok";
	case WM_EXEC: return "exec";
	case WM_STARTED: return "started";
	case WM_OUTPUT: return "output";
	case WM_STDIN: return "stdin";
	case WM_SIGNAL: return "signal";
	case WM_RESIZE: return "resize";
	case WM_EXIT: return "exit";
	case WM_CREDIT: return "credit";
	case WM_DISCARD: return "discard";
	case WM_CANCEL: return "cancel";
	case WM_FWRITE: return "fwrite";
	case WM_FREAD: return "fread";
	case WM_FDATA: return "fdata";
	case WM_STAT: return "stat";
	case WM_STAT_R: return "stat_r";
	case WM_LIST: return "list";
	case WM_LIST_R: return "list_r";
	case WM_MKDIR: return "mkdir";
	case WM_REMOVE: return "remove";
	case WM_OK: return "ok";
	case WM_ERROR: return "error";
	case WM_RENAME: return "rename";
	case WM_WATCH: return "watch";
	case WM_WATCH_EV: return "watch_ev";
	case WM_TAR_OUT: return "tar_out";
	case WM_TAR_IN: return "tar_in";
	case WM_PING: return "ping";
	case WM_PONG: return "pong";
	case WM_SHUTDOWN: return "shutdown";
	case WM_NET: return "net";
	case WM_DNSQ: return "dnsq";
	case WM_DNSR: return "dnsr";
	case WM_TCP: return "tcp";
	default: return "unknown";
	}
}
