/* SPDX-License-Identifier: Apache-2.0
 * SQLite registry (see registry.h). One connection per registry, serialized by a
 * mutex; WAL mode so readers (sqlite3 CLI, a second silod refusing to start)
 * never block the writer for long.
 */
#include "registry/registry.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct registry {
	sqlite3 *db;
	pthread_mutex_t lock;
	int version;
};

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

static int db_fail(registry *r, silo_error *err, const char *what)
{
	int ec = sqlite3_extended_errcode(r->db);
	silo_code code = SILO_ERR_IO_ERROR;
	if ((ec & 0xff) == SQLITE_CONSTRAINT)
		code = SILO_ERR_CONFLICT;
	return silo_fail(err, code, 0, "registry: %s: %s", what, sqlite3_errmsg(r->db));
}

static int exec_sql(registry *r, const char *sql, silo_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "registry: %s", msg ? msg : "exec failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int read_version(registry *r, int *v, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return db_fail(r, err, "read schema version");
	int rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_fail(r, err, "read schema version");
}

static int migrate(registry *r, const char *path, silo_error *err)
{
	int v;
	if (read_version(r, &v, err) < 0)
		return -1;
	if (v > REGISTRY_SCHEMA_VERSION)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "registry %s: schema version %d is newer than this silo supports (%d)",
				 path, v, REGISTRY_SCHEMA_VERSION);
	for (; v < REGISTRY_SCHEMA_VERSION; v++) {
		if (exec_sql(r, "BEGIN IMMEDIATE", err) < 0)
			return -1;
		char setv[64];
		snprintf(setv, sizeof setv, "PRAGMA user_version = %d", v + 1);
		if (exec_sql(r, migrations[v], err) < 0 || exec_sql(r, setv, err) < 0) {
			silo_error_prefix(err, "migrate %s to schema %d", path, v + 1);
			exec_sql(r, "ROLLBACK", NULL);
			return -1;
		}
		if (exec_sql(r, "COMMIT", err) < 0)
			return -1;
	}
	r->version = v;
	return 0;
}

int registry_open(const char *path, registry **out, silo_error *err)
{
	registry *r = xcalloc(1, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	int rc = sqlite3_open_v2(path, &r->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "registry: open %s: %s", path,
			  r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(r->db, 5000);
	/* journal_mode returns the resulting mode as a row: insist on WAL. */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(r->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		db_fail(r, err, "enable WAL");
		goto fail;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcasecmp(mode, "wal") != 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "registry: %s: journal mode is %s, not wal", path,
			  mode ? mode : "?");
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	if (exec_sql(r, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err) < 0)
		goto fail;
	if (migrate(r, path, err) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	sqlite3_close(r->db);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return -1;
}

void registry_close(registry *r)
{
	if (!r)
		return;
	sqlite3_close(r->db);
	pthread_mutex_destroy(&r->lock);
	free(r);
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

static void col_str(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	snprintf(dst, len, "%s", s ? s : "");
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? xstrdup(s) : NULL;
}

#define SB_COLUMNS                                                                            \
	"s.id, s.name, s.provider, s.state, s.reason, s.pid, s.rundir, s.vcpus, s.memory_mb, " \
	"s.created_ms, s.updated_ms, s.spec_hash, p.toml, s.metadata"

static void row_to_sandbox(sqlite3_stmt *st, reg_sandbox *o)
{
	memset(o, 0, sizeof *o);
	col_str(st, 0, o->id, sizeof o->id);
	col_str(st, 1, o->name, sizeof o->name);
	col_str(st, 2, o->provider, sizeof o->provider);
	col_str(st, 3, o->state, sizeof o->state);
	col_str(st, 4, o->reason, sizeof o->reason);
	o->pid = sqlite3_column_int64(st, 5);
	col_str(st, 6, o->rundir, sizeof o->rundir);
	o->vcpus = (uint32_t)sqlite3_column_int64(st, 7);
	o->memory_mb = (uint64_t)sqlite3_column_int64(st, 8);
	o->created_ms = (uint64_t)sqlite3_column_int64(st, 9);
	o->updated_ms = (uint64_t)sqlite3_column_int64(st, 10);
	col_str(st, 11, o->spec_hash, sizeof o->spec_hash);
	o->spec_toml = col_dup(st, 12);
	o->metadata_json = col_dup(st, 13);
	if (!o->metadata_json)
		o->metadata_json = xstrdup("{}");
}

int registry_insert(registry *r, const reg_sandbox *s, silo_error *err)
{
	int ret = -1;
	sqlite3_stmt *st = NULL;
	uint64_t now = now_realtime_ms();
	char hash[65] = "";
	pthread_mutex_lock(&r->lock);
	if (exec_sql(r, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	if (s->spec_toml) {
		registry_sha256_hex(s->spec_toml, strlen(s->spec_toml), hash);
		if (sqlite3_prepare_v2(r->db,
				       "INSERT OR IGNORE INTO specs(hash, name, toml, created_ms) "
				       "VALUES (?1, ?2, ?3, ?4)",
				       -1, &st, NULL) != SQLITE_OK)
			goto dbfail;
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, s->spec_toml, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto dbfail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite3_prepare_v2(r->db,
			       "INSERT INTO sandboxes(id, name, provider, state, reason, pid, rundir, vcpus, "
			       "memory_mb, spec_hash, created_ms, updated_ms, metadata) VALUES "
			       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
			       -1, &st, NULL) != SQLITE_OK)
		goto dbfail;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->state[0] ? s->state : "provisioning", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, s->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, s->pid);
	sqlite3_bind_text(st, 7, s->rundir, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, s->vcpus);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)s->memory_mb);
	if (hash[0])
		sqlite3_bind_text(st, 10, hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 10);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)(s->created_ms ? s->created_ms : now));
	sqlite3_bind_text(st, 12, s->metadata_json ? s->metadata_json : "{}", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dbfail;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(r->db,
			       "INSERT INTO states(sandbox_id, ts_ms, old_state, new_state, reason) "
			       "VALUES (?1, ?2, '', ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK)
		goto dbfail;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	sqlite3_bind_text(st, 3, s->state[0] ? s->state : "provisioning", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->reason[0] ? s->reason : "created", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dbfail;
	sqlite3_finalize(st);
	st = NULL;
	if (exec_sql(r, "COMMIT", err) < 0)
		goto rollback;
	ret = 0;
	goto out;
dbfail:
	db_fail(r, err, "insert sandbox");
	if (err && err->code == SILO_ERR_CONFLICT)
		silo_error_set_vm(err, s->id);
	sqlite3_finalize(st);
rollback:
	exec_sql(r, "ROLLBACK", NULL);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_set_state(registry *r, const char *id, const char *old_state, const char *new_state,
		       const char *reason, silo_error *err)
{
	int ret = -1;
	sqlite3_stmt *st = NULL;
	uint64_t now = now_realtime_ms();
	pthread_mutex_lock(&r->lock);
	if (exec_sql(r, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	if (sqlite3_prepare_v2(r->db,
			       "UPDATE sandboxes SET state = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		goto dbfail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, new_state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, reason ? reason : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dbfail;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_changes(r->db) == 0) {
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "registry: no sandbox %s", id);
		goto rollback;
	}
	if (sqlite3_prepare_v2(r->db,
			       "INSERT INTO states(sandbox_id, ts_ms, old_state, new_state, reason) "
			       "VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL) != SQLITE_OK)
		goto dbfail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	sqlite3_bind_text(st, 3, old_state ? old_state : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, new_state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dbfail;
	sqlite3_finalize(st);
	st = NULL;
	if (exec_sql(r, "COMMIT", err) < 0)
		goto rollback;
	ret = 0;
	goto out;
dbfail:
	db_fail(r, err, "set state");
	sqlite3_finalize(st);
rollback:
	exec_sql(r, "ROLLBACK", NULL);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_set_runtime(registry *r, const char *id, const char *provider, int64_t pid,
			 const char *rundir, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db,
			       "UPDATE sandboxes SET provider = ?2, pid = ?3, rundir = ?4, updated_ms = ?5 "
			       "WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "set runtime");
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, provider ? provider : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pid);
	sqlite3_bind_text(st, 4, rundir ? rundir : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now_realtime_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(r, err, "set runtime");
		goto out;
	}
	if (sqlite3_changes(r->db) == 0) {
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "registry: no sandbox %s", id);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_get(registry *r, const char *id, reg_sandbox *out, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db,
			       "SELECT " SB_COLUMNS " FROM sandboxes s LEFT JOIN specs p ON p.hash = s.spec_hash "
			       "WHERE s.id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "get sandbox");
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_to_sandbox(st, out);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "no sandbox with id %s", id);
	} else {
		db_fail(r, err, "get sandbox");
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_list(registry *r, const reg_filter *f, reg_sandbox **out, size_t *n, silo_error *err)
{
	static const reg_filter none = {0};
	if (!f)
		f = &none;
	sqlite3_stmt *st = NULL;
	int ret = -1;
	reg_sandbox *v = NULL;
	size_t cnt = 0, cap = 0;
	pthread_mutex_lock(&r->lock);
	/* Every filter is a bound parameter; NULL means "no constraint". The name prefix
	 * is matched with substr() so '%'/'_' in it are literal. */
	if (sqlite3_prepare_v2(
		    r->db,
		    "SELECT " SB_COLUMNS " FROM sandboxes s LEFT JOIN specs p ON p.hash = s.spec_hash "
		    "WHERE (?1 IS NULL OR s.state = ?1) "
		    "AND (?2 = 0 OR s.state NOT IN ('terminated', 'error')) "
		    "AND (?3 IS NULL OR s.provider = ?3) "
		    "AND (?4 IS NULL OR substr(s.name, 1, length(?4)) = ?4) "
		    "AND (?5 IS NULL OR json_extract(s.metadata, '$.' || json_quote(?5)) = ?6) "
		    "ORDER BY s.created_ms, s.id",
		    -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "list sandboxes");
		goto out;
	}
	if (f->state)
		sqlite3_bind_text(st, 1, f->state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, f->live_only ? 1 : 0);
	if (f->provider)
		sqlite3_bind_text(st, 3, f->provider, -1, SQLITE_STATIC);
	if (f->name_prefix)
		sqlite3_bind_text(st, 4, f->name_prefix, -1, SQLITE_STATIC);
	if (f->meta_key) {
		sqlite3_bind_text(st, 5, f->meta_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, f->meta_value ? f->meta_value : "", -1, SQLITE_STATIC);
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		row_to_sandbox(st, &v[cnt++]);
	}
	if (rc != SQLITE_DONE) {
		db_fail(r, err, "list sandboxes");
		reg_sandboxes_free(v, cnt);
		goto out;
	}
	*out = v;
	*n = cnt;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_delete(registry *r, const char *id, silo_error *err)
{
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	static const char *const sqls[] = {
		"DELETE FROM states WHERE sandbox_id = ?1",
		"DELETE FROM deployments WHERE sandbox_id = ?1",
		"DELETE FROM sandboxes WHERE id = ?1",
	};
	if (exec_sql(r, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(sqls); i++) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(r->db, sqls[i], -1, &st, NULL) != SQLITE_OK) {
			db_fail(r, err, "delete sandbox");
			exec_sql(r, "ROLLBACK", NULL);
			goto out;
		}
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_fail(r, err, "delete sandbox");
			exec_sql(r, "ROLLBACK", NULL);
			goto out;
		}
	}
	if (sqlite3_changes(r->db) == 0) {
		exec_sql(r, "ROLLBACK", NULL);
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "no sandbox with id %s", id);
		goto out;
	}
	/* Specs no sandbox refers to any more are dropped too. */
	if (exec_sql(r, "DELETE FROM specs WHERE hash NOT IN (SELECT spec_hash FROM sandboxes "
			"WHERE spec_hash IS NOT NULL); COMMIT",
		     err) < 0) {
		exec_sql(r, "ROLLBACK", NULL);
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_states(registry *r, const char *id, reg_state_row **out, size_t *n, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	reg_state_row *v = NULL;
	size_t cnt = 0, cap = 0;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db,
			       "SELECT ts_ms, old_state, new_state, reason FROM states WHERE sandbox_id = ?1 "
			       "ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "state history");
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		reg_state_row *row = &v[cnt++];
		row->ts_ms = (uint64_t)sqlite3_column_int64(st, 0);
		col_str(st, 1, row->old_state, sizeof row->old_state);
		col_str(st, 2, row->new_state, sizeof row->new_state);
		col_str(st, 3, row->reason, sizeof row->reason);
	}
	if (rc != SQLITE_DONE) {
		db_fail(r, err, "state history");
		free(v);
		goto out;
	}
	*out = v;
	*n = cnt;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_deploy_begin(registry *r, const char *sandbox_id, const char *spec_hash,
			  const char *actor, int64_t *dep_id, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db,
			       "INSERT INTO deployments(sandbox_id, spec_hash, actor, started_ms) "
			       "VALUES (?1, ?2, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "begin deployment");
		goto out;
	}
	sqlite3_bind_text(st, 1, sandbox_id, -1, SQLITE_STATIC);
	if (spec_hash && *spec_hash)
		sqlite3_bind_text(st, 2, spec_hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, actor ? actor : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now_realtime_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(r, err, "begin deployment");
		goto out;
	}
	*dep_id = sqlite3_last_insert_rowid(r->db);
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_deploy_end(registry *r, int64_t dep_id, const char *provider, const char *result,
			const char *error, uint64_t duration_ms, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db,
			       "UPDATE deployments SET provider = ?2, result = ?3, error = ?4, "
			       "duration_ms = ?5, finished_ms = ?6 WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "end deployment");
		goto out;
	}
	sqlite3_bind_int64(st, 1, dep_id);
	sqlite3_bind_text(st, 2, provider ? provider : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, result, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, error ? error : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)duration_ms);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)now_realtime_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(r, err, "end deployment");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_count_deployments(registry *r, const char *result, int64_t *count, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&r->lock);
	if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM deployments WHERE (?1 IS NULL OR result = ?1)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(r, err, "count deployments");
		goto out;
	}
	if (result)
		sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_fail(r, err, "count deployments");
		goto out;
	}
	*count = sqlite3_column_int64(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->lock);
	return ret;
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
