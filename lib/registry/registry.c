/* SPDX-License-Identifier: Apache-2.0
 * SQLite registry (see registry.h). Writes and most reads go through one
 * connection serialized by a mutex (sq); the reads of sandbox rows
 * (registry_get, registry_list) through a second one with its own mutex (rd),
 * and checkpoints through a third (registry_checkpoint). WAL mode: readers
 * (these, the sqlite3 CLI, a second silod refusing to start) never wait for
 * the writer, and see every transaction committed before they began.
 */
#include "registry/registry.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "registry/sqldb.h"

#define REG_AUTOCHECKPOINT_PAGES "8192"   /* the backstop (registry.h, Checkpoints): 32 MiB of WAL */

struct registry {
	sqldb sq;
	int version;
	sqldb ck;                    /* registry_checkpoint's own connection (NULL db until migrated) */
	/* Reads of sandbox rows (registry_get, registry_list) go through a
	 * connection of their own with its own lock: in WAL mode a reader sees
	 * the last COMMIT and never waits for the writer's transaction (a
	 * group-committed batch, a delete) to end. rd.db is NULL until the
	 * schema is migrated: then they use sq. */
	sqldb rd;
};

static sqldb *reader(registry *r)
{
	return r->rd.db ? &r->rd : &r->sq;
}

/* Migrations: index i brings the schema from version i to i+1. Append only. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE specs ("
	"  hash TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  toml TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE TABLE sandboxes ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  provider TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  pid INTEGER NOT NULL DEFAULT 0,"
	"  rundir TEXT NOT NULL DEFAULT '',"
	"  vcpus INTEGER NOT NULL,"
	"  memory_mb INTEGER NOT NULL,"
	"  spec_hash TEXT REFERENCES specs(hash),"
	"  created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL);"
	"CREATE TABLE states ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sandbox_id TEXT NOT NULL,"
	"  ts_ms INTEGER NOT NULL,"
	"  old_state TEXT NOT NULL,"
	"  new_state TEXT NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE deployments ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sandbox_id TEXT NOT NULL,"
	"  spec_hash TEXT,"
	"  actor TEXT NOT NULL DEFAULT '',"
	"  provider TEXT NOT NULL DEFAULT '',"
	"  started_ms INTEGER NOT NULL,"
	"  finished_ms INTEGER,"
	"  duration_ms INTEGER,"
	"  result TEXT NOT NULL DEFAULT 'pending',"
	"  error TEXT NOT NULL DEFAULT '');",
	/* 1 -> 2: metadata for list filters, and indexes */
	"ALTER TABLE sandboxes ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';"
	"CREATE INDEX states_by_sandbox ON states(sandbox_id, seq);"
	"CREATE INDEX sandboxes_by_state ON sandboxes(state);"
	"CREATE INDEX deployments_by_sandbox ON deployments(sandbox_id);",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == REGISTRY_SCHEMA_VERSION,
	       "one migration per schema version");

static int migrate(registry *r, const char *path, silo_error *err)
{
	int64_t v;
	int rc = sqldb_one(&r->sq, sqldb_stmt(&r->sq, err, "read schema version", "PRAGMA user_version"),
			   sqldb_row_int64, &v, "read schema version", err);
	if (rc != 0)
		return rc < 0 ? -1 : sqldb_fail(&r->sq, err, "read schema version");
	if (v > REGISTRY_SCHEMA_VERSION)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "registry %s: schema version %d is newer than this silo supports (%d)",
				 path, (int)v, REGISTRY_SCHEMA_VERSION);
	for (; v < REGISTRY_SCHEMA_VERSION; v++) {
		if (sqldb_exec(&r->sq, "BEGIN IMMEDIATE", err) < 0)
			return -1;
		char setv[64];
		snprintf(setv, sizeof setv, "PRAGMA user_version = %d", (int)v + 1);
		if (sqldb_exec(&r->sq, migrations[v], err) < 0 || sqldb_exec(&r->sq, setv, err) < 0) {
			silo_error_prefix(err, "migrate %s to schema %d", path, (int)v + 1);
			sqldb_exec(&r->sq, "ROLLBACK", NULL);
			return -1;
		}
		if (sqldb_exec(&r->sq, "COMMIT", err) < 0)
			return -1;
	}
	r->version = (int)v;
	return 0;
}

/* journal_mode returns the resulting mode as a row: insist on WAL. */
static void row_journal_mode(sqlite3_stmt *st, void *out)
{
	sqldb_col_str(st, 0, out, 16);
}

int registry_open(const char *path, registry **out, silo_error *err)
{
	registry *r = xcalloc(1, sizeof *r);
	if (sqldb_open(&r->sq, "registry", path, NULL, err) < 0) {
		free(r);
		return -1;
	}
	char mode[16];
	int rc = sqldb_one(&r->sq, sqldb_stmt(&r->sq, err, "enable WAL", "PRAGMA journal_mode=WAL"), row_journal_mode,
			   mode, "enable WAL", err);
	if (rc > 0)
		sqldb_fail(&r->sq, err, "enable WAL");
	if (rc != 0)
		goto fail;
	if (strcasecmp(mode, "wal") != 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "registry: %s: journal mode is %s, not wal", path,
			  mode[0] ? mode : "?");
		goto fail;
	}
	if (sqldb_exec(&r->sq, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint="
				   REG_AUTOCHECKPOINT_PAGES ";", err) < 0)
		goto fail;
	if (migrate(r, path, err) < 0 || sqldb_open(&r->rd, "registry", path, "PRAGMA foreign_keys=ON;", err) < 0 ||
	    sqldb_open(&r->ck, "registry checkpoint", path, NULL, err) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	registry_close(r);
	return -1;
}

void registry_close(registry *r)
{
	if (!r)
		return;
	if (r->ck.db)
		sqldb_close(&r->ck);
	if (r->rd.db)
		sqldb_close(&r->rd);
	sqldb_close(&r->sq);
	free(r);
}

int registry_checkpoint(registry *r, silo_error *err)
{
	pthread_mutex_lock(&r->ck.lock);
	int rc = sqlite3_wal_checkpoint_v2(r->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	/* BUSY: another checkpoint runs; the next pass does it */
	int ret = rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : sqldb_fail(&r->ck, err, "checkpoint");
	pthread_mutex_unlock(&r->ck.lock);
	return ret;
}

int registry_schema_version(registry *r)
{
	return r->version;
}

void registry_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(out, 65, h, sizeof h);
}

#define SB_COLUMNS                                                                            \
	"s.id, s.name, s.provider, s.state, s.reason, s.pid, s.rundir, s.vcpus, s.memory_mb, " \
	"s.created_ms, s.updated_ms, s.spec_hash, p.toml, s.metadata"

static void row_to_sandbox(sqlite3_stmt *st, void *p)
{
	reg_sandbox *o = p;
	memset(o, 0, sizeof *o);
	sqldb_col_str(st, 0, o->id, sizeof o->id);
	sqldb_col_str(st, 1, o->name, sizeof o->name);
	sqldb_col_str(st, 2, o->provider, sizeof o->provider);
	sqldb_col_str(st, 3, o->state, sizeof o->state);
	sqldb_col_str(st, 4, o->reason, sizeof o->reason);
	o->pid = sqlite3_column_int64(st, 5);
	sqldb_col_str(st, 6, o->rundir, sizeof o->rundir);
	o->vcpus = (uint32_t)sqlite3_column_int64(st, 7);
	o->memory_mb = (uint64_t)sqlite3_column_int64(st, 8);
	o->created_ms = (uint64_t)sqlite3_column_int64(st, 9);
	o->updated_ms = (uint64_t)sqlite3_column_int64(st, 10);
	sqldb_col_str(st, 11, o->spec_hash, sizeof o->spec_hash);
	o->spec_toml = sqldb_col_dup(st, 12);
	o->metadata_json = sqldb_col_dup(st, 13);
	if (!o->metadata_json)
		o->metadata_json = xstrdup("{}");
}

/* End a write transaction: COMMIT when ok (rolling back if that fails), else ROLLBACK. */
static int finish_tx(registry *r, int ok, silo_error *err)
{
	if (ok == 0 && sqldb_exec(&r->sq, "COMMIT", err) == 0)
		return 0;
	sqldb_exec(&r->sq, "ROLLBACK", NULL);
	return -1;
}

/* The bodies of the writes below: r->sq.lock held, inside a transaction. */
static int insert_tx(registry *r, const reg_sandbox *s, silo_error *err)
{
	static const char what[] = "insert sandbox";
	uint64_t now = now_realtime_ms();
	char hash[65] = "";
	const char *state = s->state[0] ? s->state : "provisioning";
	if (s->spec_toml)
		registry_sha256_hex(s->spec_toml, strlen(s->spec_toml), hash);
	int rc = s->spec_toml ? sqldb_run(&r->sq, err, what,
					  "INSERT OR IGNORE INTO specs(hash, name, toml, created_ms) "
					  "VALUES (?1, ?2, ?3, ?4)",
					  SQ_TEXT(hash), SQ_TEXT(s->name), SQ_TEXT(s->spec_toml), SQ_INT(now))
			      : 0;
	if (rc == 0)
		rc = sqldb_run(&r->sq, err, what,
			       "INSERT INTO sandboxes(id, name, provider, state, reason, pid, rundir, vcpus, "
			       "memory_mb, spec_hash, created_ms, updated_ms, metadata) VALUES "
			       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
			       SQ_TEXT(s->id), SQ_TEXT(s->name), SQ_TEXT(s->provider), SQ_TEXT(state),
			       SQ_TEXT(s->reason), SQ_INT(s->pid), SQ_TEXT(s->rundir), SQ_INT(s->vcpus),
			       SQ_INT(s->memory_mb), SQ_TEXT(hash[0] ? hash : NULL),
			       SQ_INT(s->created_ms ? s->created_ms : now),
			       SQ_TEXT(s->metadata_json ? s->metadata_json : "{}"));
	if (rc == 0)
		rc = sqldb_run(&r->sq, err, what,
			       "INSERT INTO states(sandbox_id, ts_ms, old_state, new_state, reason) "
			       "VALUES (?1, ?2, '', ?3, ?4)",
			       SQ_TEXT(s->id), SQ_INT(now), SQ_TEXT(state),
			       SQ_TEXT(s->reason[0] ? s->reason : "created"));
	if (rc < 0 && err && err->code == SILO_ERR_CONFLICT)
		silo_error_set_vm(err, s->id);
	return rc;
}

static int set_state_tx(registry *r, const char *id, const char *old_state, const char *new_state,
			const char *reason, silo_error *err)
{
	static const char what[] = "set state";
	uint64_t now = now_realtime_ms();
	int rc = sqldb_run(&r->sq, err, what,
			   "UPDATE sandboxes SET state = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?1",
			   SQ_TEXT(id), SQ_TEXT(new_state), SQ_TEXT(reason ? reason : ""), SQ_INT(now));
	if (rc == 0 && sqlite3_changes(r->sq.db) == 0)
		rc = silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "registry: no sandbox %s", id);
	if (rc == 0)
		rc = sqldb_run(&r->sq, err, what,
			       "INSERT INTO states(sandbox_id, ts_ms, old_state, new_state, reason) "
			       "VALUES (?1, ?2, ?3, ?4, ?5)",
			       SQ_TEXT(id), SQ_INT(now), SQ_TEXT(old_state ? old_state : ""), SQ_TEXT(new_state),
			       SQ_TEXT(reason ? reason : ""));
	return rc;
}

static int set_runtime_tx(registry *r, const char *id, const char *provider, int64_t pid, const char *rundir,
			  silo_error *err)
{
	int rc = sqldb_run(&r->sq, err, "set runtime",
			   "UPDATE sandboxes SET provider = ?2, pid = ?3, rundir = ?4, updated_ms = ?5 "
			   "WHERE id = ?1",
			   SQ_TEXT(id), SQ_TEXT(provider ? provider : ""), SQ_INT(pid), SQ_TEXT(rundir ? rundir : ""),
			   SQ_INT(now_realtime_ms()));
	if (rc == 0 && sqlite3_changes(r->sq.db) == 0)
		rc = silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "registry: no sandbox %s", id);
	return rc;
}

static int deploy_begin_tx(registry *r, const char *sandbox_id, const char *spec_hash, const char *actor,
			   int64_t *dep_id, silo_error *err)
{
	int rc = sqldb_run(&r->sq, err, "begin deployment",
			   "INSERT INTO deployments(sandbox_id, spec_hash, actor, started_ms) "
			   "VALUES (?1, ?2, ?3, ?4)",
			   SQ_TEXT(sandbox_id), SQ_TEXT(spec_hash && *spec_hash ? spec_hash : NULL),
			   SQ_TEXT(actor ? actor : ""), SQ_INT(now_realtime_ms()));
	if (rc == 0)
		*dep_id = sqlite3_last_insert_rowid(r->sq.db);
	return rc;
}

static int deploy_end_tx(registry *r, int64_t dep_id, const char *provider, const char *result,
			 const char *error, uint64_t duration_ms, silo_error *err)
{
	return sqldb_run(&r->sq, err, "end deployment",
			 "UPDATE deployments SET provider = ?2, result = ?3, error = ?4, "
			 "duration_ms = ?5, finished_ms = ?6 WHERE id = ?1",
			 SQ_INT(dep_id), SQ_TEXT(provider ? provider : ""), SQ_TEXT(result), SQ_TEXT(error ? error : ""),
			 SQ_INT(duration_ms), SQ_INT(now_realtime_ms()));
}

/* Open a transaction (lock held on success). */
static int tx_begin(registry *r, silo_error *err)
{
	pthread_mutex_lock(&r->sq.lock);
	if (sqldb_exec(&r->sq, "BEGIN IMMEDIATE", err) == 0)
		return 0;
	pthread_mutex_unlock(&r->sq.lock);
	return -1;
}

/* Commit (rc == 0) or roll back, and unlock. */
static int tx_end(registry *r, int rc, silo_error *err)
{
	rc = finish_tx(r, rc, err);
	pthread_mutex_unlock(&r->sq.lock);
	return rc;
}

int registry_insert(registry *r, const reg_sandbox *s, silo_error *err)
{
	if (tx_begin(r, err) < 0)
		return -1;
	return tx_end(r, insert_tx(r, s, err), err);
}

int registry_insert_deploy(registry *r, const reg_sandbox *s, const char *actor, int64_t *dep_id, silo_error *err)
{
	char hash[65] = "";
	if (s->spec_toml)
		registry_sha256_hex(s->spec_toml, strlen(s->spec_toml), hash);
	if (tx_begin(r, err) < 0)
		return -1;
	int rc = insert_tx(r, s, err);
	if (rc == 0)
		rc = deploy_begin_tx(r, s->id, hash, actor, dep_id, err);
	return tx_end(r, rc, err);
}

int registry_set_state(registry *r, const char *id, const char *old_state, const char *new_state,
		       const char *reason, silo_error *err)
{
	if (tx_begin(r, err) < 0)
		return -1;
	return tx_end(r, set_state_tx(r, id, old_state, new_state, reason, err), err);
}

int registry_set_states(registry *r, const reg_state_change *v, size_t n, silo_error *err)
{
	if (tx_begin(r, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		silo_error e1 = {0};
		rc = set_state_tx(r, v[i].id, v[i].old_state, v[i].new_state, v[i].reason, &e1);
		if (rc < 0 && e1.code == SILO_ERR_VM_NOT_FOUND)
			rc = 0;   /* no row (deleted meanwhile): nothing to record, the others still are */
		else if (rc < 0)
			*err = e1;
	}
	return tx_end(r, rc, err);
}

int registry_set_runtime(registry *r, const char *id, const char *provider, int64_t pid,
			 const char *rundir, silo_error *err)
{
	pthread_mutex_lock(&r->sq.lock);
	int rc = set_runtime_tx(r, id, provider, pid, rundir, err);
	pthread_mutex_unlock(&r->sq.lock);
	return rc;
}

int registry_spawned(registry *r, const char *id, const char *provider, int64_t pid, const char *rundir,
		     int64_t dep_id, uint64_t duration_ms, silo_error *err)
{
	if (tx_begin(r, err) < 0)
		return -1;
	int rc = set_runtime_tx(r, id, provider, pid, rundir, err);
	if (rc == 0)
		rc = deploy_end_tx(r, dep_id, provider, "ok", NULL, duration_ms, err);
	return tx_end(r, rc, err);
}

int registry_get(registry *r, const char *id, reg_sandbox *out, silo_error *err)
{
	static const char what[] = "get sandbox";
	int rc = sqldb_one_locked(reader(r), err, what, row_to_sandbox, out,
				  "SELECT " SB_COLUMNS " FROM sandboxes s LEFT JOIN specs p ON p.hash = s.spec_hash "
				  "WHERE s.id = ?1", SQ_TEXT(id));
	if (rc > 0)
		rc = silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "no sandbox with id %s", id);
	return rc;
}

static void release_sandboxes(void *v, size_t n)
{
	reg_sandboxes_free(v, n);
}

int registry_list(registry *r, const reg_filter *f, reg_sandbox **out, size_t *n, silo_error *err)
{
	static const char what[] = "list sandboxes";
	static const reg_filter none = {0};
	if (!f)
		f = &none;
	sqldb *d = reader(r);
	pthread_mutex_lock(&d->lock);
	/* Every filter is a bound parameter; NULL means "no constraint". The name prefix
	 * is matched with substr() so '%'/'_' in it are literal. */
	int rc = sqldb_collect(
		d,
		sqldb_stmt(d, err, what,
			   "SELECT " SB_COLUMNS " FROM sandboxes s LEFT JOIN specs p ON p.hash = s.spec_hash "
			   "WHERE (?1 IS NULL OR s.state = ?1) "
			   "AND (?2 = 0 OR s.state NOT IN ('terminated', 'error')) "
			   "AND (?3 IS NULL OR s.provider = ?3) "
			   "AND (?4 IS NULL OR substr(s.name, 1, length(?4)) = ?4) "
			   "AND (?5 IS NULL OR json_extract(s.metadata, '$.' || json_quote(?5)) = ?6) "
			   "ORDER BY s.created_ms, s.id",
			   SQ_TEXT(f->state), SQ_INT(f->live_only ? 1 : 0), SQ_TEXT(f->provider), SQ_TEXT(f->name_prefix),
			   SQ_TEXT(f->meta_key), SQ_TEXT(f->meta_key ? (f->meta_value ? f->meta_value : "") : NULL)),
		sizeof **out, row_to_sandbox, release_sandboxes, (void **)out, n, what, err);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int registry_delete(registry *r, const char *id, silo_error *err)
{
	static const char *const sqls[] = {
		"DELETE FROM states WHERE sandbox_id = ?1",
		"DELETE FROM deployments WHERE sandbox_id = ?1",
		"DELETE FROM sandboxes WHERE id = ?1",
	};
	int ret = -1;
	pthread_mutex_lock(&r->sq.lock);
	if (sqldb_exec(&r->sq, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	int rc = 0;
	for (size_t i = 0; i < ARRAY_SIZE(sqls) && rc == 0; i++)
		rc = sqldb_run(&r->sq, err, "delete sandbox", sqls[i], SQ_TEXT(id));
	if (rc == 0 && sqlite3_changes(r->sq.db) == 0)
		rc = silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "no sandbox with id %s", id);
	/* Specs no sandbox refers to any more are dropped too. */
	if (rc == 0)
		rc = sqldb_exec(&r->sq, "DELETE FROM specs WHERE hash NOT IN (SELECT spec_hash FROM sandboxes "
				"WHERE spec_hash IS NOT NULL)", err);
	ret = finish_tx(r, rc, err);
out:
	pthread_mutex_unlock(&r->sq.lock);
	return ret;
}

static void row_to_state(sqlite3_stmt *st, void *p)
{
	reg_state_row *row = p;
	row->ts_ms = (uint64_t)sqlite3_column_int64(st, 0);
	sqldb_col_str(st, 1, row->old_state, sizeof row->old_state);
	sqldb_col_str(st, 2, row->new_state, sizeof row->new_state);
	sqldb_col_str(st, 3, row->reason, sizeof row->reason);
}

int registry_states(registry *r, const char *id, reg_state_row **out, size_t *n, silo_error *err)
{
	static const char what[] = "state history";
	return sqldb_collect_locked(&r->sq, err, what, sizeof **out, row_to_state, NULL, (void **)out, n,
				    "SELECT ts_ms, old_state, new_state, reason FROM states WHERE sandbox_id = ?1 "
				    "ORDER BY seq", SQ_TEXT(id));
}

int registry_deploy_begin(registry *r, const char *sandbox_id, const char *spec_hash,
			  const char *actor, int64_t *dep_id, silo_error *err)
{
	pthread_mutex_lock(&r->sq.lock);
	int rc = deploy_begin_tx(r, sandbox_id, spec_hash, actor, dep_id, err);
	pthread_mutex_unlock(&r->sq.lock);
	return rc;
}

int registry_deploy_end(registry *r, int64_t dep_id, const char *provider, const char *result,
			const char *error, uint64_t duration_ms, silo_error *err)
{
	pthread_mutex_lock(&r->sq.lock);
	int rc = deploy_end_tx(r, dep_id, provider, result, error, duration_ms, err);
	pthread_mutex_unlock(&r->sq.lock);
	return rc;
}

int registry_count_deployments(registry *r, const char *result, int64_t *count, silo_error *err)
{
	static const char what[] = "count deployments";
	pthread_mutex_lock(&r->sq.lock);
	int rc = sqldb_one(&r->sq,
			   sqldb_stmt(&r->sq, err, what,
				      "SELECT count(*) FROM deployments WHERE (?1 IS NULL OR result = ?1)",
				      SQ_TEXT(result)),
			   sqldb_row_int64, count, what, err);
	if (rc > 0)
		rc = sqldb_fail(&r->sq, err, what);
	pthread_mutex_unlock(&r->sq.lock);
	return rc;
}

void reg_sandbox_clear(reg_sandbox *s)
{
	if (!s)
		return;
	free(s->spec_toml);
	free(s->metadata_json);
	s->spec_toml = s->metadata_json = NULL;
}

void reg_sandboxes_free(reg_sandbox *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reg_sandbox_clear(&v[i]);
	free(v);
}
