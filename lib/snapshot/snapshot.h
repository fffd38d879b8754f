/* SPDX-License-Identifier: Apache-2.0
 * Snapshot store: $SILO_STATE_DIR/snapshots/<id>/ holds snapshot.json (the
 * header: format version, provider, the spec as hac.toml, tags, times and a
 * manifest of every payload entry with its SHA-256) and payload/ (what the
 * provider wrote: the namespace provider's writable layer, QEMU's migration
 * stream). A snapshot is written under snapshots/.tmp-<id>/ and renamed into
 * place once the header is on disk, so a listed snapshot is always complete.
 * Opening one verifies the header and every payload entry: a mismatch is
 * CHECKSUM_MISMATCH (bytes) or INVALID_CONFIG (header, version), naming the
 * file. docs/snapshots.md has the format.
 */
#ifndef SILO_SNAPSHOT_SNAPSHOT_H
#define SILO_SNAPSHOT_SNAPSHOT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "spec/spec.h"

#define SNAP_FORMAT "silo-snapshot"
#define SNAP_FORMAT_VERSION 1
#define SNAP_HEADER "snapshot.json"
#define SNAP_HEADER_MAX (64u << 20)      /* bytes; bounds the manifest */
#define SNAP_MAX_ENTRIES 1000000u         /* payload entries (files, dirs, links) */
#define SNAP_MAX_DEPTH 128
#define SNAP_TAG_MAX 64
#define SNAP_MAX_TAGS 32
/* In a running sandbox's run directory: the id of the snapshot it was
 * restored from (keeps the snapshot from being deleted or collected). */
#define SNAP_REF_FILE "snapshot-ref"

typedef struct snap_info {
	char id[SILO_ID_MAX];
	char dir[PATH_MAX];              /* snapshots/<id> */
	char payload[PATH_MAX + 16];     /* snapshots/<id>/payload */
	char provider[32];
	char source[SILO_ID_MAX];        /* sandbox it was taken from */
	char kind[16];                   /* "snapshot", "fork" */
	uint64_t created_ms;
	uint64_t expires_ms;             /* 0 = never */
	uint64_t bytes;                  /* payload bytes (regular files) */
	size_t entries;
	char **tags;                     /* strv, may be NULL */
	char *spec_toml;
	char spec_sha256[65];
	vm_spec spec;
	bool have_spec;
} snap_info;

void snap_info_free(snap_info *s);
json_t *snap_info_json(const snap_info *s);

/* $SILO_STATE_DIR/snapshots (created on demand by the writers). */
void snap_root(char *out, size_t len);
/* Upper bound on payload bytes: $SILO_SNAPSHOT_MAX_MB, default 8192 MiB. */
uint64_t snap_max_bytes(void);

/* ---- writing ---- */
typedef struct snap_writer snap_writer;
/* Reserve an id and a temporary directory; the provider fills payload. */
int snap_begin(const char *kind, snap_writer **out, silo_error *err);
const char *snap_writer_id(const snap_writer *w);
const char *snap_writer_payload(const snap_writer *w);
typedef struct snap_meta {
	const char *provider;
	const char *source;
	const vm_spec *spec;
	char *const *tags;               /* NULL-terminated, may be NULL */
	uint64_t ttl_ms;                 /* 0 = no expiry */
	/* If set: the snapshot appears already held (see snap_hold), so no gc or
	 * delete can take it between the commit and the caller's first restore;
	 * the hold's path goes here (release with snap_release). */
	char *hold_out;
	size_t hold_len;
} snap_meta;
/* Hash the payload, write the header, rename into place. Frees w either way.
 * out may be NULL. */
int snap_commit(snap_writer *w, const snap_meta *meta, snap_info *out, silo_error *err);
void snap_abort(snap_writer *w);

/* ---- reading ---- */
/* Resolve an id or a tag (newest snapshot carrying it) to an id. */
int snap_resolve(const char *id_or_tag, char id[SILO_ID_MAX], silo_error *err);
/* Open (id or tag): parse and check the header; with verify, check every
 * payload entry against the manifest too. */
int snap_open(const char *id_or_tag, bool verify, snap_info *out, silo_error *err);
/* Check the payload of an opened snapshot against its manifest again. */
int snap_verify(const snap_info *s, silo_error *err);
int snap_list_json(json_t **out, silo_error *err);

/* ---- maintenance ---- */
int snap_set_tags(const char *id_or_tag, char *const *add, char *const *remove, silo_error *err);
/* CONFLICT while a live sandbox was restored from it, unless force. */
int snap_delete(const char *id_or_tag, bool force, silo_error *err);
/* Remove, unless a live sandbox uses them or a restore holds them: expired
 * snapshots, fork snapshots (they only back forks), untagged ones older than
 * max_age_ms (UINT64_MAX = keep untagged ones), and abandoned temporary
 * directories. removed (array of ids) may be NULL. */
int snap_gc(uint64_t max_age_ms, json_t **removed, silo_error *err);
/* Is a live sandbox (a run directory with SNAP_REF_FILE naming id) using it?
 * who gets that sandbox's id. */
bool snap_in_use(const char *id, char *who, size_t len);
/* Keep a snapshot from being deleted or collected while a restore is in
 * progress (a file in its directory naming our pid); hold gets its path. */
int snap_hold(const char *id, char *hold, size_t len, silo_error *err);
void snap_release(const char *hold);
/* Record in rundir that a sandbox uses snapshot id. */
int snap_mark_use(const char *rundir, const char *id, silo_error *err);

/* ---- payload trees (tree.c) ---- */
/* Copy a directory tree from a possibly hostile source (a sandbox's writable
 * layer) without following symlinks: regular files, directories, symlinks,
 * overlayfs whiteouts (0/0 character devices) and the opaque-directory
 * xattr; owners and modes kept; sockets and FIFOs skipped (counted in
 * *skipped). Bounded by SNAP_MAX_DEPTH, SNAP_MAX_ENTRIES and max_bytes. */
int snap_copy_tree(const char *src, const char *dst, uint64_t max_bytes, size_t *skipped,
		   silo_error *err);
/* Apply an overlayfs upper layer on top of a copy of the layers below it in
 * dst (a copy of a lower layer), so dst becomes the flattened layer over base:
 * whiteouts replace what they hide (and stay only where base has the name),
 * opaque directories replace, other directories merge. Same bounds as
 * snap_copy_tree (max_bytes counts what is copied). */
int snap_merge_tree(const char *upper, const char *dst, const char *base, uint64_t max_bytes,
		    size_t *skipped, silo_error *err);
/* Apply a layer (snap_copy_tree's form: whiteouts, opaque directories) to a live
 * tree dst, as overlayfs would show it merged: a whiteout removes the name, an
 * opaque directory replaces the one in dst, everything else is copied over what
 * is there; nothing of dst is followed through a symlink. silo-oci writes a
 * container's changes back into its bundle's root this way. */
int snap_apply_tree(const char *layer, const char *dst, uint64_t max_bytes, size_t *skipped, silo_error *err);
/* SHA-256 over the metadata of every entry of a tree (names, type, mode,
 * owner, size, inode, link count, mtime and ctime): the verification cache
 * key. Any write, truncation, chmod, chown, rename or xattr change moves a
 * ctime, which user space cannot set back. newest_ctime_ns (may be NULL)
 * gets the newest ctime seen (timestamps are coarse: see verify_dir). */
int snap_tree_stat_digest(const char *root, char hex[65], uint64_t *newest_ctime_ns, silo_error *err);
/* Manifest of a payload tree: JSON array of entries sorted by path
 * ({"path","type","mode","uid","gid"[,"size","sha256"|"target"|"opaque"]}). */
int snap_manifest(const char *root, json_t **out, uint64_t *bytes, silo_error *err);

#endif
