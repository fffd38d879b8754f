/* SPDX-License-Identifier: Apache-2.0
 * Audit log: records, chain continuation across reopen, tamper detection
 * (edit, delete, reorder, truncate), concurrent appends.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "common/util.h"
#include "harness.h"
#include "threads_test.h"
#include "tmp_test.h"

static char *tmplog(void)
{
	return tmp_path("silo-audit", "audit.jsonl");
}

static void write_n(const char *p, int n)
{
	audit_log *a;
	silo_error e;
	REQUIRE(audit_open(p, &a, &e) == 0);
	for (int i = 0; i < n; i++) {
		json_t *d = json_pack("{s:i}", "i", i);
		REQUIRE(audit_append(a, "alice", "sb-1", "spawned", (uint64_t)i, d, &e) == 0);
		json_decref(d);
	}
	audit_close(a);
}

static char **lines_of(const char *p, size_t *n)
{
	char *buf;
	size_t len;
	silo_error e;
	REQUIRE(read_file(p, 1 << 20, &buf, &len, &e) == 0);
	char **v = xcalloc(64, sizeof *v);
	size_t k = 0;
	for (char *l = strtok(buf, "\n"); l && k < 63; l = strtok(NULL, "\n"))
		v[k++] = xstrdup(l);
	free(buf);
	*n = k;
	return v;
}

static void rewrite(const char *p, char **v, size_t n)
{
	FILE *f = fopen(p, "w");
	REQUIRE(f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", v[i]);
	fclose(f);
}

/* A fresh log of `records` records in a temp dir: its path in *p, its lines returned (*n). */
static char **new_log(char **p, int records, size_t *n)
{
	*p = tmplog();
	write_n(*p, records);
	return lines_of(*p, n);
}

/* The end of a case on a new_log: free what it returned, remove the temp dir. */
static void end_case(char *p, char **v)
{
	strv_free(v);
	cleanup_tmp(p);
}

TEST(record_fields_and_chain)
{
	char *p;
	size_t n;
	char **v = new_log(&p, 3, &n);
	REQUIRE(n == 3);
	json_t *o = json_loads(v[0], 0, NULL);
	REQUIRE(o);
	CHECK_INT_EQ(json_integer_value(json_object_get(o, "seq")), 1);
	CHECK_STR_EQ(json_string_value(json_object_get(o, "actor")), "alice");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "sandbox_id")), "sb-1");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "event")), "spawned");
	CHECK(json_is_integer(json_object_get(o, "duration_ms")));
	CHECK(json_is_object(json_object_get(o, "details")));
	CHECK_CONTAINS(json_string_value(json_object_get(o, "ts")), "T");
	CHECK_STR_EQ(json_string_value(json_object_get(o, "prev")),
		     "0000000000000000000000000000000000000000000000000000000000000000");
	json_decref(o);
	audit_verify_result r;
	silo_error e;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	CHECK_INT_EQ(r.records, 3);
	/* Reopen continues the chain. */
	write_n(p, 2);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	CHECK_INT_EQ(r.records, 5);
	end_case(p, v);
}

TEST(detects_edit)
{
	char *p;
	size_t n;
	char **v = new_log(&p, 5, &n);
	char *at = strstr(v[1], "alice");
	REQUIRE(at);
	memcpy(at, "mallo", 5);
	rewrite(p, v, n);
	audit_verify_result r;
	silo_error e;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 3);   /* line 2 changed: line 3's prev no longer matches */
	audit_log *a;
	CHECK(audit_open(p, &a, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_CHECKSUM_MISMATCH);
	end_case(p, v);
}

TEST(detects_delete_reorder_truncate_and_last_edit)
{
	char *p;
	size_t n;
	char **v = new_log(&p, 5, &n);
	audit_verify_result r;
	silo_error e;
	/* delete line 3 */
	char *w[5] = {v[0], v[1], v[3], v[4]};
	rewrite(p, w, 4);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 3);
	/* swap lines 2 and 3 */
	char *s[5] = {v[0], v[2], v[1], v[3], v[4]};
	rewrite(p, s, 5);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 2);
	/* truncate the last record: caught by the head file */
	rewrite(p, v, 4);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 5);
	/* edit the last record */
	char *last = xstrdup(v[4]);
	char *at = strstr(last, "spawned");
	memcpy(at, "spawneD", 7);
	char *l[5] = {v[0], v[1], v[2], v[3], last};
	rewrite(p, l, 5);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	/* garbage line */
	char *g[5] = {v[0], (char *)"not json", v[2], v[3], v[4]};
	rewrite(p, g, 5);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 2);
	CHECK_CONTAINS(r.why, "line 2");
	/* intact again */
	rewrite(p, v, 5);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	free(last);
	end_case(p, v);
}

TEST(lagging_head_is_accepted_and_continued)
{
	/* After a power loss the unsynced head may name an earlier record. */
	char *p = tmplog();
	write_n(p, 3);
	char *head = xasprintf("%s.head", p);
	char *h3;
	size_t len;
	silo_error e;
	REQUIRE(read_file(head, 256, &h3, &len, &e) == 0);
	write_n(p, 2);
	REQUIRE(write_file_atomic(head, h3, len, 0600, &e) == 0);
	audit_verify_result r;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	write_n(p, 1);   /* reopen accepts and moves the head forward */
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	CHECK_INT_EQ(r.records, 6);
	/* A head that points to a record that is not in the chain is tampering. */
	char bad[128];
	snprintf(bad, sizeof bad, "%020d %s\n", 2, "00000000000000000000000000000000000000000000000000000000000000ff");
	REQUIRE(write_file_atomic(head, bad, strlen(bad), 0600, &e) == 0);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 1);
	CHECK_INT_EQ(r.bad_line, 2);
	free(h3);
	free(head);
	cleanup_tmp(p);
}

static audit_log *shared_a;
static void *appender(void *arg)
{
	(void)arg;
	silo_error e;
	for (int i = 0; i < 100; i++)
		if (audit_append(shared_a, "t", "sb", "exec", 1, NULL, &e) < 0)
			return (void *)1;
	return NULL;
}

TEST(concurrent_appends_keep_chain)
{
	char *p = tmplog();
	silo_error e;
	REQUIRE(audit_open(p, &shared_a, &e) == 0);
	CHECK_INT_EQ(run_threads(4, appender), 0);
	audit_close(shared_a);
	audit_verify_result r;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	CHECK_INT_EQ(r.records, 400);
	cleanup_tmp(p);
}

TEST(missing_file_is_an_error)
{
	audit_verify_result r;
	silo_error e;
	CHECK_INT_EQ(audit_verify("/nonexistent/dir/audit.jsonl", &r, &e), -1);
	CHECK_INT_EQ(e.code, SILO_ERR_IO_ERROR);
}

/* A full disk: the failed append leaves no torn line, the chain stays intact,
 * appends work again once there is space, and the log reopens. */
TEST(full_disk_leaves_no_torn_record)
{
	if (geteuid() != 0)
		SKIP("mounting a small tmpfs needs root");
	char dir[] = "/tmp/silo-audit-full-XXXXXX";
	REQUIRE(mkdtemp(dir));
	snprintf(tmpdir_, sizeof tmpdir_, "%s", dir);
	if (mount("silo-audit-test", dir, "tmpfs", 0, "size=64k") < 0)
		SKIP("mount tmpfs: %s", strerror(errno));
	char *p = xasprintf("%s/audit.jsonl", dir), *filler = xasprintf("%s/filler", dir);
	write_n(p, 3);
	audit_log *a;
	silo_error e;
	REQUIRE(audit_open(p, &a, &e) == 0);
	/* fill the disk to the last byte, then give back less than a record */
	int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	static char buf[4096];
	for (size_t chunk = sizeof buf; chunk >= 1; chunk /= 2)
		while (write(fd, buf, chunk) == (ssize_t)chunk)
			;
	close(fd);
	json_t *d = json_pack("{s:s}", "pad", "a record long enough not to fit in what is left of the page");
	int failed = 0;
	for (int i = 0; i < 50; i++)   /* a page may still have room for a record or two */
		failed += audit_append(a, "alice", "sb-1", "exec", 0, d, &e) < 0;
	CHECK(failed > 0);
	CHECK(e.code == SILO_ERR_IO_ERROR);
	audit_verify_result r;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	unlink(filler);
	CHECK(audit_append(a, "alice", "sb-1", "exec", 0, d, &e) == 0);
	json_decref(d);
	audit_close(a);
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	REQUIRE(audit_open(p, &a, &e) == 0);   /* silod would start again */
	audit_close(a);
	umount2(dir, MNT_DETACH);
	free(p);
	free(filler);
	cleanup_tmp(NULL);
}

/* audit_append_batch: the records of a batch continue the chain in order
 * between single appends; a batch with one record too large writes none. */
TEST(batches_keep_chain)
{
	char *p = tmplog();
	audit_log *a;
	silo_error e;
	REQUIRE(audit_open(p, &a, &e) == 0);
	REQUIRE(audit_append(a, "alice", "sb-0", "spawned", 1, NULL, &e) == 0);
	json_t *d = json_pack("{s:s}", "snapshot", "snap-1");
	audit_record v[3] = {{"alice", "sb-1", "restored", 2, d}, {"alice", "sb-2", "restored", 3, d},
			     {"alice", "sb-3", "restored", 4, NULL}};
	REQUIRE(audit_append_batch(a, v, 3, &e) == 0);
	REQUIRE(audit_append(a, "alice", "sb-4", "exec", 5, NULL, &e) == 0);
	char *big = xcalloc(1, AUDIT_MAX_LINE + 16);
	memset(big, 'x', AUDIT_MAX_LINE + 8);
	json_t *huge = json_pack("{s:s}", "pad", big);
	audit_record w[2] = {{"alice", "sb-5", "restored", 1, d}, {"alice", "sb-6", "restored", 1, huge}};
	CHECK(audit_append_batch(a, w, 2, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
	REQUIRE(audit_append(a, "alice", "sb-7", "exec", 6, NULL, &e) == 0);
	audit_close(a);
	json_decref(d);
	json_decref(huge);
	free(big);
	audit_verify_result r;
	CHECK_INT_EQ(audit_verify(p, &r, &e), 0);
	CHECK_INT_EQ(r.records, 6);
	size_t n;
	char **lines = lines_of(p, &n);
	REQUIRE(n == 6);
	CHECK_CONTAINS(lines[1], "\"seq\":2,");
	CHECK_CONTAINS(lines[1], "\"sandbox_id\":\"sb-1\"");
	CHECK_CONTAINS(lines[3], "\"sandbox_id\":\"sb-3\"");
	CHECK_CONTAINS(lines[5], "\"sandbox_id\":\"sb-7\"");   /* sb-5 and sb-6 were not written */
	REQUIRE(audit_open(p, &a, &e) == 0);   /* and it reopens, chain continued */
	audit_close(a);
	end_case(p, lines);
}

TEST_MAIN(batches_keep_chain, record_fields_and_chain, detects_edit, detects_delete_reorder_truncate_and_last_edit,
	  concurrent_appends_keep_chain, missing_file_is_an_error, lagging_head_is_accepted_and_continued,
	  full_disk_leaves_no_torn_record)
