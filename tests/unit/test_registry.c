/* SPDX-License-Identifier: Apache-2.0
 * Registry against a real SQLite file: WAL mode, schema migrations, CRUD,
 * filters, state history, deployments, concurrent writers.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "harness.h"
#include "db_test.h"
#include "threads_test.h"
#include "tmp_test.h"
#include "registry/registry.h"

static char *tmpdb(void)
{
	return tmp_path("silo-reg", "registry.db");
}

static void fill(reg_sandbox *s, const char *id, const char *name, const char *provider)
{
	memset(s, 0, sizeof *s);
	snprintf(s->id, sizeof s->id, "%s", id);
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->provider, sizeof s->provider, "%s", provider);
	snprintf(s->state, sizeof s->state, "provisioning");
	s->vcpus = 2;
	s->memory_mb = 512;
	s->spec_toml = (char *)"name = \"x\"\n";
	s->metadata_json = (char *)"{\"team\":\"ml\",\"tier\":\"gold\"}";
}

TEST(wal_and_schema_version)
{
	char *p = tmpdb();
	registry *r;
	silo_error e;
	REQUIRE(registry_open(p, &r, &e) == 0);
	CHECK_INT_EQ(registry_schema_version(r), REGISTRY_SCHEMA_VERSION);
	registry_close(r);
	sqlite3 *db;
	REQUIRE(sqlite3_open(p, &db) == SQLITE_OK);
	sqlite3_stmt *st;
	REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
	REQUIRE(sqlite3_step(st) == SQLITE_ROW);
	CHECK_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
				   "('sandboxes','specs','states','deployments')", -1, &st, NULL) == SQLITE_OK);
	REQUIRE(sqlite3_step(st) == SQLITE_ROW);
	CHECK_INT_EQ(sqlite3_column_int(st, 0), 4);
	sqlite3_finalize(st);
	sqlite3_close(db);
	cleanup_tmp(p);
}

TEST(migrates_v1_file_and_keeps_rows)
{
	char *p = tmpdb();
	/* A version-1 file as an older silo wrote it. */
	db_exec(p, "CREATE TABLE specs (hash TEXT PRIMARY KEY, name TEXT NOT NULL, toml TEXT NOT NULL, created_ms INTEGER NOT NULL);"
		     "CREATE TABLE sandboxes (id TEXT PRIMARY KEY, name TEXT NOT NULL, provider TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', pid INTEGER NOT NULL DEFAULT 0, rundir TEXT NOT NULL DEFAULT '', vcpus INTEGER NOT NULL, memory_mb INTEGER NOT NULL, spec_hash TEXT REFERENCES specs(hash), created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
		     "CREATE TABLE states (seq INTEGER PRIMARY KEY AUTOINCREMENT, sandbox_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, old_state TEXT NOT NULL, new_state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '');"
		     "CREATE TABLE deployments (id INTEGER PRIMARY KEY AUTOINCREMENT, sandbox_id TEXT NOT NULL, spec_hash TEXT, actor TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', started_ms INTEGER NOT NULL, finished_ms INTEGER, duration_ms INTEGER, result TEXT NOT NULL DEFAULT 'pending', error TEXT NOT NULL DEFAULT '');"
		     "INSERT INTO sandboxes(id,name,state,vcpus,memory_mb,created_ms,updated_ms) VALUES ('sb-old','old','running',1,256,1,1);"
		     "PRAGMA user_version=1;");
	registry *r;
	silo_error e;
	REQUIRE(registry_open(p, &r, &e) == 0);
	CHECK_INT_EQ(registry_schema_version(r), 2);
	reg_sandbox s;
	REQUIRE(registry_get(r, "sb-old", &s, &e) == 0);
	CHECK_STR_EQ(s.state, "running");
	CHECK_STR_EQ(s.metadata_json, "{}");
	reg_sandbox_clear(&s);
	registry_close(r);
	cleanup_tmp(p);
}

TEST(refuses_newer_schema)
{
	char *p = tmpdb();
	db_exec(p, "PRAGMA user_version=99");
	registry *r;
	silo_error e;
	CHECK(registry_open(p, &r, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(e.message, "schema version 99");
	cleanup_tmp(p);
}

TEST(crud_states_filters)
{
	char *p = tmpdb();
	registry *r;
	silo_error e;
	REQUIRE(registry_open(p, &r, &e) == 0);
	reg_sandbox s;
	fill(&s, "sb-1", "web-a", "namespace");
	REQUIRE(registry_insert(r, &s, &e) == 0);
	CHECK(registry_insert(r, &s, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_CONFLICT);
	fill(&s, "sb-2", "web-b", "qemu");
	s.metadata_json = (char *)"{\"team\":\"infra\"}";
	REQUIRE(registry_insert(r, &s, &e) == 0);
	fill(&s, "sb-3", "db", "namespace");
	REQUIRE(registry_insert(r, &s, &e) == 0);

	REQUIRE(registry_set_state(r, "sb-1", "provisioning", "running", "agent ready", &e) == 0);
	REQUIRE(registry_set_runtime(r, "sb-1", "namespace", 4242, "/run/x/sb-1", &e) == 0);
	REQUIRE(registry_set_state(r, "sb-3", "provisioning", "error", "boot timeout", &e) == 0);
	CHECK(registry_set_state(r, "sb-nope", "a", "b", "", &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_VM_NOT_FOUND);

	reg_sandbox g;
	REQUIRE(registry_get(r, "sb-1", &g, &e) == 0);
	CHECK_STR_EQ(g.state, "running");
	CHECK_STR_EQ(g.reason, "agent ready");
	CHECK_INT_EQ(g.pid, 4242);
	CHECK_STR_EQ(g.rundir, "/run/x/sb-1");
	CHECK_STR_EQ(g.spec_toml, "name = \"x\"\n");
	CHECK_INT_EQ(strlen(g.spec_hash), 64);
	reg_sandbox_clear(&g);
	CHECK(registry_get(r, "sb-9", &g, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_VM_NOT_FOUND);

	reg_sandbox *v;
	size_t n;
	reg_filter f = {.provider = "namespace"};
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 2);
	reg_sandboxes_free(v, n);
	f = (reg_filter){.name_prefix = "web"};
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 2);
	reg_sandboxes_free(v, n);
	f = (reg_filter){.name_prefix = "w%"};   /* literal, not a LIKE pattern */
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 0);
	reg_sandboxes_free(v, n);
	f = (reg_filter){.live_only = true};
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 2);
	reg_sandboxes_free(v, n);
	f = (reg_filter){.state = "running"};
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	REQUIRE(n == 1);
	CHECK_STR_EQ(v[0].id, "sb-1");
	reg_sandboxes_free(v, n);
	f = (reg_filter){.meta_key = "team", .meta_value = "infra"};
	REQUIRE(registry_list(r, &f, &v, &n, &e) == 0);
	REQUIRE(n == 1);
	CHECK_STR_EQ(v[0].id, "sb-2");
	reg_sandboxes_free(v, n);

	reg_state_row *rows;
	REQUIRE(registry_states(r, "sb-1", &rows, &n, &e) == 0);
	REQUIRE(n == 2);
	CHECK_STR_EQ(rows[0].old_state, "");
	CHECK_STR_EQ(rows[0].new_state, "provisioning");
	CHECK_STR_EQ(rows[1].old_state, "provisioning");
	CHECK_STR_EQ(rows[1].new_state, "running");
	free(rows);

	int64_t dep, cnt;
	REQUIRE(registry_deploy_begin(r, "sb-1", NULL, "alice", &dep, &e) == 0);
	REQUIRE(registry_deploy_end(r, dep, "namespace", "ok", NULL, 12, &e) == 0);
	REQUIRE(registry_count_deployments(r, "ok", &cnt, &e) == 0);
	CHECK_INT_EQ(cnt, 1);

	REQUIRE(registry_delete(r, "sb-1", &e) == 0);
	CHECK(registry_delete(r, "sb-1", &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_VM_NOT_FOUND);
	REQUIRE(registry_states(r, "sb-1", &rows, &n, &e) == 0);
	CHECK_INT_EQ(n, 0);
	free(rows);
	registry_close(r);
	/* Reopen: rows persisted. */
	REQUIRE(registry_open(p, &r, &e) == 0);
	REQUIRE(registry_list(r, NULL, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 2);
	reg_sandboxes_free(v, n);
	registry_close(r);
	cleanup_tmp(p);
}

static registry *shared_r;
static void *writer(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < 50; i++) {
		reg_sandbox s;
		char id[32];
		snprintf(id, sizeof id, "sb-%ld-%d", k, i);
		fill(&s, id, id, "namespace");
		silo_error e;
		if (registry_insert(shared_r, &s, &e) < 0 ||
		    registry_set_state(shared_r, id, "provisioning", "running", "", &e) < 0)
			return (void *)1;
	}
	return NULL;
}

TEST(concurrent_writers)
{
	char *p = tmpdb();
	silo_error e;
	REQUIRE(registry_open(p, &shared_r, &e) == 0);
	CHECK_INT_EQ(run_threads(8, writer), 0);
	reg_sandbox *v;
	size_t n;
	reg_filter f = {.state = "running"};
	REQUIRE(registry_list(shared_r, &f, &v, &n, &e) == 0);
	CHECK_INT_EQ(n, 400);
	reg_sandboxes_free(v, n);
	registry_close(shared_r);
	cleanup_tmp(p);
}

/* Group commit (registry_set_states): a batch is written in order in one
 * transaction, a sandbox without a row is skipped, and a batch that fails
 * part way writes none of its transitions. */
TEST(state_batches)
{
	char *p = tmpdb();
	registry *r;
	silo_error e;
	REQUIRE(registry_open(p, &r, &e) == 0);
	reg_sandbox s;
	int64_t dep = 0;
	fill(&s, "sb-a", "a", "namespace");
	REQUIRE(registry_insert_deploy(r, &s, "alice", &dep, &e) == 0);
	CHECK(dep > 0);
	REQUIRE(registry_spawned(r, "sb-a", "namespace", 4242, "/run/x", dep, 7, &e) == 0);
	int64_t ok = 0;
	REQUIRE(registry_count_deployments(r, "ok", &ok, &e) == 0);
	CHECK_INT_EQ(ok, 1);
	fill(&s, "sb-b", "b", "namespace");
	REQUIRE(registry_insert(r, &s, &e) == 0);
	reg_state_change v[] = {
		{"sb-a", "provisioning", "running", "agent ready"},
		{"sb-gone", "running", "paused", "no row: skipped"},
		{"sb-b", "provisioning", "running", "agent ready"},
		{"sb-a", "running", "paused", "paused"},
		{"sb-a", "paused", "running", "resumed"},
	};
	REQUIRE(registry_set_states(r, v, ARRAY_SIZE(v), &e) == 0);
	reg_sandbox g;
	REQUIRE(registry_get(r, "sb-a", &g, &e) == 0);
	CHECK_STR_EQ(g.state, "running");
	CHECK_INT_EQ(g.pid, 4242);
	CHECK_STR_EQ(g.rundir, "/run/x");
	reg_sandbox_clear(&g);
	reg_state_row *h;
	size_t n;
	REQUIRE(registry_states(r, "sb-a", &h, &n, &e) == 0);
	REQUIRE(n == 4);   /* created, then the three of the batch in order */
	CHECK_STR_EQ(h[1].new_state, "running");
	CHECK_STR_EQ(h[2].new_state, "paused");
	CHECK_STR_EQ(h[3].new_state, "running");
	CHECK_STR_EQ(h[3].reason, "resumed");
	free(h);
	/* a failing transition (a state longer than the column allows is fine
	 * for SQLite, so make the statement fail: drop the history table) */
	db_exec(p, "DROP TABLE states");
	reg_state_change w[] = {{"sb-b", "running", "paused", "x"}, {"sb-a", "running", "paused", "y"}};
	CHECK(registry_set_states(r, w, 2, &e) < 0);
	REQUIRE(registry_get(r, "sb-b", &g, &e) == 0);
	CHECK_STR_EQ(g.state, "running");   /* rolled back with the rest of its batch */
	reg_sandbox_clear(&g);
	registry_close(r);
	cleanup_tmp(p);
}

TEST_MAIN(wal_and_schema_version, migrates_v1_file_and_keeps_rows, refuses_newer_schema,
	  crud_states_filters, concurrent_writers, state_batches)
