/* SPDX-License-Identifier: Apache-2.0
 * Tar transfers over a channel (fsops.h). The tar task is an exec task of
 * the agent: its stream 1 is the archive (tar_out), its stdin the archive
 * (tar_in), its stream 2 warnings and, on failure, one "CODE: message" line
 * (agent/agent.c tar_child); exit status 0 means complete.
 */
#include "core/fsops.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define SLICE_MS 200
#define BUF (256u * 1024u)

void fs_tar_errtext_add(fs_tar_errtext *e, const void *buf, size_t n)
{
	size_t room = sizeof e->text - 1 - e->len;
	if (n > room)
		n = room;
	memcpy(e->text + e->len, buf, n);
	e->len += n;
	e->text[e->len] = '\0';
}

/* The last "CODE: message" line of the child's stderr. */
static void child_error(const fs_tar_errtext *e, const char *what, silo_error *err)
{
	const char *line = NULL;
	for (const char *p = e->text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *colon = memchr(p, ':', n);
		if (colon && colon > p && (size_t)(colon - p) < 32)
			line = p;
		p += n + (nl ? 1 : 0);
	}
	silo_code code = SILO_ERR_IO_ERROR;
	const char *msg = e->text;
	if (line) {
		char name[32];
		size_t k = strcspn(line, ":");
		memcpy(name, line, k);
		name[k] = '\0';
		silo_code c = silo_code_from_name(name);
		if (c != SILO_ERR__COUNT && c != SILO_OK) {
			code = c;
			msg = line + k + (line[k + 1] == ' ' ? 2 : 1);
		}
	}
	size_t ml = strcspn(msg, "\n");
	silo_fail(err, code, 0, "%s: %.*s", what, (int)(ml > 900 ? 900 : ml), msg[0] ? msg : "failed");
}

int fs_tar_finish(chan *c, uint32_t id, const fs_tar_errtext *e, const char *what, silo_error *err)
{
	exec_result res;
	silo_error ce = {0};
	if (chan_exec_wait(c, id, 30000, &res, &ce) < 0) {
		if (err)
			*err = ce;
		silo_error_prefix(err, "%s", what);
		return -1;
	}
	if (res.exit_code == 0 && !res.signal)
		return 0;
	if (res.signal)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s: the agent's tar child was killed by signal %d", what,
				 res.signal);
	child_error(e, what, err);
	return -1;
}

void fs_tar_abandon(chan *c, uint32_t id)
{
	silo_error e;
	chan_exec_discard(c, id, &e);
	chan_exec_signal(c, id, SIGKILL, &e);
	chan_exec_wait(c, id, 5000, NULL, &e);
}

static int start_failed(chan *c, uint32_t id, const char *what, silo_error *err)
{
	silo_error_prefix(err, "%s", what);
	silo_error e;
	chan_exec_wait(c, id, 5000, NULL, &e);
	return -1;
}

/* The end of a transfer: the bytes moved, then the child abandoned (rc < 0)
 * or its status and error line (fs_tar_finish). */
static int transfer_end(chan *c, uint32_t id, int rc, fs_tar_errtext *et, const char *what, uint64_t total,
			uint64_t *bytes, silo_error *err)
{
	if (bytes)
		*bytes = total;
	if (rc < 0) {
		fs_tar_abandon(c, id);
		return -1;
	}
	return fs_tar_finish(c, id, et, what, err);
}

/* One transfer in progress: the task, the local fd and what has moved. */
typedef struct xfer {
	chan *c;
	uint32_t id;
	int fd;
	const char *what;
	bool (*cancel)(void *ud);
	void *ud;
	uint8_t *buf;
	fs_tar_errtext et;
	uint64_t total;
} xfer;

static bool cancelled(const xfer *x, silo_error *err)
{
	if (!x->cancel || !x->cancel(x->ud))
		return false;
	silo_fail(err, SILO_ERR_CONFLICT, 0, "%s: cancelled (the sandbox is being deleted)", x->what);
	return true;
}

/* tar_out: the child's stream 1 into fd, its stream 2 kept for its error. */
static int pump_out(xfer *x, silo_error *err)
{
	for (;;) {
		if (cancelled(x, err))
			return -1;
		int stream;
		ssize_t n = chan_exec_read(x->c, x->id, &stream, x->buf, BUF, SLICE_MS, err);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (err && err->code == SILO_ERR_TIMEOUT)
				continue;
			return -1;
		}
		if (stream == 2) {
			fs_tar_errtext_add(&x->et, x->buf, (size_t)n);
			continue;
		}
		if (write_all(x->fd, x->buf, (size_t)n) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: write the archive", x->what);
		x->total += (uint64_t)n;
	}
}

/* tar_in: fd into the child's stdin, then its stream 2 (its error line). */
static int pump_in(xfer *x, silo_error *err)
{
	int rc = 0;
	bool eof = false;
	while (!eof) {
		if (cancelled(x, err)) {
			rc = -1;
			break;
		}
		ssize_t n = read(x->fd, x->buf, BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: read the archive", x->what);
			break;
		}
		eof = n == 0;
		size_t off = 0;
		for (;;) {   /* in slices, so a cancel is noticed while the agent does not read */
			size_t k = 0;
			silo_error e = {0};
			int r = chan_exec_stdin_timed(x->c, x->id, x->buf + off, (size_t)n - off, eof, SLICE_MS, &k, &e);
			off += k;
			if (r == 0)
				break;
			if (e.code == SILO_ERR_TIMEOUT && !(x->cancel && x->cancel(x->ud)))
				continue;
			if (e.code == SILO_ERR_INVALID_CONFIG && e.sys_errno == ESRCH)
				eof = true;   /* the child ended early: its status says why */
			else if (err)
				*err = e, rc = -1;
			break;
		}
		if (rc < 0)
			break;
		x->total += (uint64_t)n;
	}
	/* the child's stderr (its error line), then its status */
	for (;;) {
		int stream;
		silo_error e;
		ssize_t n = rc < 0 ? 0 : chan_exec_read(x->c, x->id, &stream, x->buf, BUF, 30000, &e);
		if (n <= 0)
			break;
		if (stream == 2)
			fs_tar_errtext_add(&x->et, x->buf, (size_t)n);
	}
	return rc;
}

/* Start the agent's tar task for path (put: extract into it, else archive
 * it), wait until it runs, pump, then collect its status. */
static int transfer(chan *c, bool put, const char *path, int fd, bool (*cancel)(void *ud), void *ud,
		    uint64_t *bytes, silo_error *err)
{
	char what[300];
	snprintf(what, sizeof what, "%s %.256s", put ? "extract into" : "archive of", path);
	uint32_t id;
	if ((put ? chan_tar_in_start(c, path, &id, err) : chan_tar_out_start(c, path, FS_TAR_WINDOW, &id, err)) < 0)
		return -1;
	if (chan_exec_started(c, id, 30000, NULL, err) < 0)
		return start_failed(c, id, what, err);
	xfer x = {.c = c, .id = id, .fd = fd, .what = what, .cancel = cancel, .ud = ud, .buf = xmalloc(BUF)};
	int rc = put ? pump_in(&x, err) : pump_out(&x, err);
	free(x.buf);
	return transfer_end(c, id, rc, &x.et, what, x.total, bytes, err);
}

int fs_archive_get_fd(chan *c, const char *path, int fd, bool (*cancel)(void *ud), void *ud, uint64_t *bytes,
		      silo_error *err)
{
	return transfer(c, false, path, fd, cancel, ud, bytes, err);
}

int fs_archive_put_fd(chan *c, const char *path, int fd, bool (*cancel)(void *ud), void *ud, uint64_t *bytes,
		      silo_error *err)
{
	return transfer(c, true, path, fd, cancel, ud, bytes, err);
}
