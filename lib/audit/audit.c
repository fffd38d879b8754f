/* SPDX-License-Identifier: Apache-2.0
 * Hash-chained JSONL audit log (see audit.h).
 */
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct audit_log {
	pthread_mutex_t lock;
	int fd;
	int head_fd;
	char *path;
	char *head_path;
	uint64_t seq;
	char prev[65];
};

static const char zero_hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";

static void sha_hex(const void *buf, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(out, 65, h, sizeof h);
}

/* Walk the file line by line, checking each record's shape and chain link.
 * Calls back nothing; fills seq/prev of the last good record. */
static int walk(const char *path, bool missing_ok, uint64_t want_seq, char want_hash[65],
		audit_verify_result *res, uint64_t *last_seq, char last_hash[65], silo_error *err)
{
	memset(res, 0, sizeof *res);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && missing_ok) {
			*last_seq = 0;
			memcpy(last_hash, zero_hash, 65);
			return 0;
		}
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "audit: open %s", path);
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	char prev[65];
	memcpy(prev, zero_hash, 65);
	uint64_t seq = 0, lineno = 0;
	int ret = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		res->records = lineno;
		if (n == 0 || line[n - 1] != '\n') {
			res->bad_line = lineno;
			snprintf(res->why, sizeof res->why, "line %" PRIu64 ": not terminated by a newline", lineno);
			ret = 1;
			break;
		}
		line[--n] = '\0';
		if ((size_t)n > AUDIT_MAX_LINE) {
			res->bad_line = lineno;
			snprintf(res->why, sizeof res->why, "line %" PRIu64 ": longer than %d bytes", lineno,
				 AUDIT_MAX_LINE);
			ret = 1;
			break;
		}
		json_error_t jerr;
		json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
		const char *p = NULL;
		json_int_t s = 0;
		if (!o || json_unpack(o, "{s:I,s:s}", "seq", &s, "prev", &p) < 0) {
			res->bad_line = lineno;
			snprintf(res->why, sizeof res->why, "line %" PRIu64 ": not an audit record (%s)", lineno,
				 o ? "missing seq or prev" : jerr.text);
			json_decref(o);
			ret = 1;
			break;
		}
		if (strcmp(p, prev) != 0) {
			res->bad_line = lineno;
			snprintf(res->why, sizeof res->why,
				 "line %" PRIu64 ": prev hash does not match the previous record", lineno);
			json_decref(o);
			ret = 1;
			break;
		}
		if ((uint64_t)s != seq + 1) {
			res->bad_line = lineno;
			snprintf(res->why, sizeof res->why, "line %" PRIu64 ": seq %lld, expected %" PRIu64,
				 lineno, (long long)s, seq + 1);
			json_decref(o);
			ret = 1;
			break;
		}
		json_decref(o);
		seq = (uint64_t)s;
		sha_hex(line, (size_t)n, prev);
		if (want_hash && seq == want_seq)
			memcpy(want_hash, prev, 65);
	}
	free(line);
	fclose(f);
	*last_seq = seq;
	memcpy(last_hash, prev, 65);
	return ret;
}

/* The head file names the last record appended ("<seq> <hash>"). It is updated
 * without fsync, so after a power loss it may lag behind the log; it must then
 * still point into the chain. A log shorter than the head, or whose record at
 * the head's seq has another hash, lost or changed records at its end. */
static int read_head(const char *head_path, uint64_t *hseq, char hhash[65])
{
	char *buf = NULL;
	size_t len;
	silo_error e;
	if (read_file(head_path, 256, &buf, &len, &e) < 0)
		return 0;   /* no head file: a fresh log */
	int ok = sscanf(buf, "%" SCNu64 " %64s", hseq, hhash) == 2 && strlen(hhash) == 64;
	free(buf);
	return ok ? 1 : -1;
}

static int check_head(const char *path, const char *head_path, uint64_t seq, audit_verify_result *res,
		      silo_error *err)
{
	uint64_t hseq = 0;
	char hhash[65] = "";
	int h = read_head(head_path, &hseq, hhash);
	if (h == 0)
		return 0;
	if (h < 0) {
		res->bad_line = seq + 1;
		snprintf(res->why, sizeof res->why, "head file %s is malformed", head_path);
		return 1;
	}
	if (hseq > seq) {
		res->bad_line = seq + 1;
		snprintf(res->why, sizeof res->why,
			 "log ends at record %" PRIu64 " but the head file records %" PRIu64 " (records removed)", seq,
			 hseq);
		return 1;
	}
	if (hseq == 0)
		return 0;
	char at[65] = "";
	uint64_t s2;
	char last[65];
	audit_verify_result r2;
	if (walk(path, false, hseq, at, &r2, &s2, last, err) < 0)
		return -1;
	if (strcmp(at, hhash) != 0) {
		res->bad_line = hseq;
		snprintf(res->why, sizeof res->why,
			 "line %" PRIu64 ": record differs from the one the head file recorded (last record altered)",
			 hseq);
		return 1;
	}
	return 0;
}

int audit_verify(const char *path, audit_verify_result *res, silo_error *err)
{
	uint64_t seq;
	char hash[65];
	int r = walk(path, false, 0, NULL, res, &seq, hash, err);
	if (r != 0)
		return r;
	char head[4096];
	snprintf(head, sizeof head, "%s.head", path);
	return check_head(path, head, seq, res, err);
}

int audit_open(const char *path, audit_log **out, silo_error *err)
{
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "audit: libsodium init failed");
	audit_verify_result res;
	uint64_t seq;
	char hash[65];
	int r = walk(path, true, 0, NULL, &res, &seq, hash, err);
	if (r < 0)
		return -1;
	char *head = xasprintf("%s.head", path);
	if (r == 0)
		r = check_head(path, head, seq, &res, err);
	if (r < 0) {
		free(head);
		return -1;
	}
	if (r > 0) {
		free(head);
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "audit log %s is damaged: %s", path,
				 res.why);
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(head);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "audit: open %s", path);
	}
	int hfd = open(head, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (hfd < 0) {
		int e = errno;
		close(fd);
		silo_fail(err, SILO_ERR_IO_ERROR, e, "audit: open %s", head);
		free(head);
		return -1;
	}
	audit_log *a = xcalloc(1, sizeof *a);
	pthread_mutex_init(&a->lock, NULL);
	a->fd = fd;
	a->head_fd = hfd;
	a->path = xstrdup(path);
	a->head_path = head;
	a->seq = seq;
	memcpy(a->prev, hash, 65);
	*out = a;
	return 0;
}

void audit_close(audit_log *a)
{
	if (!a)
		return;
	close(a->fd);
	close(a->head_fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a->head_path);
	free(a);
}

/* Format record r as the line after (seq, prev): its text with the newline in
 * *line (owned) and its hash in hash. */
static int format_record(const audit_record *r, const char *ts, uint64_t seq, const char prev[65], char **line,
			 size_t *len, char hash[65], silo_error *err)
{
	json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:o,s:s}", "seq", (json_int_t)seq, "ts", ts, "actor",
			      r->actor ? r->actor : "", "sandbox_id", r->sandbox_id ? r->sandbox_id : "", "event",
			      r->event ? r->event : "", "duration_ms", (json_int_t)r->duration_ms, "details",
			      r->details ? json_incref(r->details) : json_object(), "prev", prev);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "audit: cannot encode record");
	size_t n = strlen(text);
	if (n > AUDIT_MAX_LINE) {
		free(text);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "audit: record of %zu bytes exceeds %d", n,
				 AUDIT_MAX_LINE);
	}
	sha_hex(text, n, hash);
	text = xrealloc(text, n + 2);
	text[n] = '\n';
	text[n + 1] = '\0';
	*line = text;
	*len = n + 1;
	return 0;
}

int audit_append_batch(audit_log *a, const audit_record *v, size_t n, silo_error *err)
{
	char ts[40];
	format_time_ms(now_realtime_ms(), ts, sizeof ts);
	pthread_mutex_lock(&a->lock);
	uint64_t seq = a->seq;
	char prev[65];
	memcpy(prev, a->prev, 65);
	char *buf = NULL;
	size_t len = 0;
	int ret = -1;
	for (size_t i = 0; i < n; i++) {
		char *line;
		size_t ll;
		if (format_record(&v[i], ts, seq + 1, prev, &line, &ll, prev, err) < 0)
			goto out;   /* none of the batch is written */
		buf = xrealloc(buf, len + ll);
		memcpy(buf + len, line, ll);
		len += ll;
		free(line);
		seq++;
	}
	/* One write(2) with O_APPEND for the whole batch: its records are never
	 * interleaved with others. A short write (a full disk) is cut off again:
	 * a torn line would break the chain for good (silod refuses to start on a
	 * damaged log). */
	struct stat st;
	off_t before = fstat(a->fd, &st) == 0 ? st.st_size : -1;
	if (len && write_all(a->fd, buf, len) < 0) {
		int e = errno;
		if (before >= 0 && ftruncate(a->fd, before) < 0)
			log_error("audit: cannot cut a torn record off %s: %s", a->path, strerror(errno));
		silo_fail(err, SILO_ERR_IO_ERROR, e, "audit: write %s", a->path);
		goto out;
	}
	a->seq = seq;
	memcpy(a->prev, prev, 65);
	/* Fixed width, one pwrite at offset 0: a reader never sees a torn head. */
	char head[128];
	int hl = snprintf(head, sizeof head, "%020" PRIu64 " %s\n", a->seq, a->prev);
	if (pwrite(a->head_fd, head, (size_t)hl, 0) != hl) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "audit: write %s", a->head_path);
		goto out;
	}
	ret = 0;
out:
	free(buf);
	pthread_mutex_unlock(&a->lock);
	return ret;
}

int audit_append(audit_log *a, const char *actor, const char *sandbox_id, const char *event,
		 uint64_t duration_ms, json_t *details, silo_error *err)
{
	audit_record r = {actor, sandbox_id, event, duration_ms, details};
	return audit_append_batch(a, &r, 1, err);
}
