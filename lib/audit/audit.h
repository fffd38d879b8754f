/* SPDX-License-Identifier: Apache-2.0
 * Audit log: append-only JSONL, one record per line:
 *   {"seq":N,"ts":"RFC3339","actor":"...","sandbox_id":"...","event":"...",
 *    "duration_ms":N,"details":{...},"prev":"<sha256 hex of the previous line>"}
 * The first record's prev is 64 zeros. Changing, inserting, reordering or
 * deleting any line breaks the chain at the next line; truncating the tail is
 * caught by the head file (PATH.head, rewritten atomically after every append:
 * "<seq> <sha256 of the last line>").
 */
#ifndef SILO_AUDIT_H
#define SILO_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AUDIT_MAX_LINE (256 * 1024)

typedef struct audit_log audit_log;

/* Open (create) for appending; verifies the tail of the chain so appends continue it.
 * Refuses (CHECKSUM_MISMATCH) a damaged chain or a log its head file does not point into. */
int audit_open(const char *path, audit_log **out, silo_error *err);
void audit_close(audit_log *a);
/* Append one record; details is borrowed (may be NULL). Thread-safe. */
int audit_append(audit_log *a, const char *actor, const char *sandbox_id, const char *event,
		 uint64_t duration_ms, json_t *details, silo_error *err);

/* One record of a batch (fields as audit_append's; details borrowed). */
typedef struct audit_record {
	const char *actor, *sandbox_id, *event;
	uint64_t duration_ms;
	json_t *details;
} audit_record;
/* Append n records in order as ONE write(2) and one head update (a fork's
 * per-copy records): all of them or, on an error, none. Thread-safe. */
int audit_append_batch(audit_log *a, const audit_record *v, size_t n, silo_error *err);

typedef struct audit_verify_result {
	uint64_t records;      /* lines checked */
	uint64_t bad_line;     /* 1-based first bad line, 0 if intact */
	char why[256];
} audit_verify_result;

/* 0 intact, 1 tampered (res says where), -1 could not read (err). */
int audit_verify(const char *path, audit_verify_result *res, silo_error *err);

#endif
