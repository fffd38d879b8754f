/* SPDX-License-Identifier: Apache-2.0
 * SQLite files as another writer leaves them (an older silo, a newer one, an attacker):
 * db_exec runs SQL on the file at path before the code under test opens it.
 */
#ifndef SILO_TESTS_DB_TEST_H
#define SILO_TESTS_DB_TEST_H

#include <sqlite3.h>

#include "harness.h"

static __attribute__((unused)) void db_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
	REQUIRE(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

#endif
