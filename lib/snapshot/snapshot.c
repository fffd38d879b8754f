/* SPDX-License-Identifier: Apache-2.0
 * The snapshot store (see snapshot.h, docs/snapshots.md).
 *
 * Header (snapshot.json): {"format":"silo-snapshot","version":1,"id","kind",
 * "provider","source","created_ms","expires_ms","tags":[..],"spec":"<hac.toml>",
 * "spec_sha256","bytes","entries":[manifest],"sha256"} where "sha256" is the
 * SHA-256 of the compact, key-sorted JSON of every other field: a flipped byte
 * anywhere in the header is caught, and every payload byte is covered by the
 * manifest. Mutations (commit, tags, delete, gc) take an exclusive flock on
 * snapshots/.lock.
 */
#include "snapshot/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"

#define TMP_PREFIX ".tmp-"
#define DEL_PREFIX ".del-"
#define HOLD_PREFIX ".hold-"
#define ABANDONED_MS (24ull * 3600 * 1000)

struct snap_writer {
	char id[SILO_ID_MAX];
	char kind[16];
	char tmp[PATH_MAX];
	char payload[PATH_MAX + 16];
};

void snap_root(char *out, size_t len)
{
	snprintf(out, len, "%s/snapshots", silo_state_dir());
}

uint64_t snap_max_bytes(void)
{
	const char *e = getenv("SILO_SNAPSHOT_MAX_MB");
	if (e && *e) {
		char *end;
		unsigned long long v = strtoull(e, &end, 10);
		if (!*end && v > 0)
			return (uint64_t)v << 20;
	}
	return 8192ull << 20;
}

static bool name_ok(const char *s)
{
	if (!s || !*s || strlen(s) >= SNAP_TAG_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return false;
	return true;
}

static int lock_store(silo_error *err)
{
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	return lock_file_in(root, 0700, ".lock", 0600, err);
}

static void unlock_store(int fd)
{
	if (fd >= 0)
		close(fd);
}

#define SNAP_DIR_MAX (PATH_MAX + 72)

/* The snapshot id_or_tag names: its id, the store root and its directory. */
static int locate(const char *id_or_tag, char id[SILO_ID_MAX], char root[PATH_MAX], char dir[SNAP_DIR_MAX],
		  silo_error *err)
{
	if (snap_resolve(id_or_tag, id, err) < 0)
		return -1;
	snap_root(root, PATH_MAX);
	snprintf(dir, SNAP_DIR_MAX, "%s/%s", root, id);
	return 0;
}

/* locate() under the store lock: its fd for unlock_store, or -1. */
static int locate_locked(const char *id_or_tag, char id[SILO_ID_MAX], char root[PATH_MAX], char dir[SNAP_DIR_MAX],
			 silo_error *err)
{
	if (locate(id_or_tag, id, root, dir, err) < 0)
		return -1;
	return lock_store(err);
}

void snap_info_free(snap_info *s)
{
	if (!s)
		return;
	strv_free(s->tags);
	free(s->spec_toml);
	if (s->have_spec)
		spec_free(&s->spec);
	memset(s, 0, sizeof *s);
}

json_t *snap_info_json(const snap_info *s)
{
	char t[40];
	json_t *tags = json_array();
	for (char **p = s->tags; p && *p; p++)
		json_array_append_new(tags, json_string(*p));
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:o,s:I,s:I,s:s,s:s}", "id", s->id, "kind", s->kind,
			      "provider", s->provider, "source", s->source, "created_ms", (json_int_t)s->created_ms,
			      "created", format_time_ms(s->created_ms, t, sizeof t), "tags", tags, "bytes",
			      (json_int_t)s->bytes, "entries", (json_int_t)s->entries, "spec_sha256", s->spec_sha256,
			      "name", s->have_spec ? s->spec.name : "");
	if (s->expires_ms)
		json_object_set_new(o, "expires_ms", json_integer((json_int_t)s->expires_ms));
	char who[SILO_ID_MAX];
	if (snap_in_use(s->id, who, sizeof who))
		json_object_set_new(o, "in_use_by", json_string(who));
	return o;
}

/* ---- writing ---- */

int snap_begin(const char *kind, snap_writer **out, silo_error *err)
{
	*out = NULL;
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	if (mkdir_p(root, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", root);
	snap_writer *w = xcalloc(1, sizeof *w);
	snprintf(w->kind, sizeof w->kind, "%s", kind && *kind ? kind : "snapshot");
	for (int tries = 0;; tries++) {
		random_id("snap-", w->id, sizeof w->id);
		snprintf(w->tmp, sizeof w->tmp, "%s/" TMP_PREFIX "%s", root, w->id);
		char final[PATH_MAX + 72];
		snprintf(final, sizeof final, "%s/%s", root, w->id);
		if (!path_exists(final) && mkdir(w->tmp, 0700) == 0)
			break;
		if (tries > 8) {
			int e = errno;
			free(w);
			return silo_fail(err, SILO_ERR_IO_ERROR, e, "mkdir in %s", root);
		}
	}
	char pidf[PATH_MAX + 8], pid[24];
	snprintf(pidf, sizeof pidf, "%s/pid", w->tmp);
	snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (write_file_atomic(pidf, pid, strlen(pid), 0600, err) < 0) {
		rm_rf(w->tmp);
		free(w);
		return -1;
	}
	snprintf(w->payload, sizeof w->payload, "%s/payload", w->tmp);
	if (mkdir(w->payload, 0755) < 0) {
		int e = errno;
		rm_rf(w->tmp);
		free(w);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "mkdir %s", w->payload);
	}
	*out = w;
	return 0;
}

const char *snap_writer_id(const snap_writer *w)
{
	return w->id;
}

const char *snap_writer_payload(const snap_writer *w)
{
	return w->payload;
}

void snap_abort(snap_writer *w)
{
	if (!w)
		return;
	rm_rf(w->tmp);
	free(w);
}

static void hex_sha256(const void *buf, size_t len, char hex[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, buf, len);
	sodium_bin2hex(hex, 65, d, sizeof d);
}

/* SHA-256 of the canonical JSON of h without its "sha256" member. */
static void header_digest(json_t *h, char hex[65])
{
	json_t *c = json_copy(h);
	json_object_del(c, "sha256");
	char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(c);
	hex_sha256(s, strlen(s), hex);
	free(s);
}

static int write_header(const char *dir, json_t *h, silo_error *err)
{
	char hex[65], p[PATH_MAX + 32];
	header_digest(h, hex);
	json_object_set_new(h, "sha256", json_string(hex));
	char *s = json_dumps(h, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	snprintf(p, sizeof p, "%s/" SNAP_HEADER, dir);
	int rc = write_file_atomic(p, s, strlen(s), 0600, err);
	free(s);
	return rc;
}

/* tmp + rename without fsync: for files whose loss only costs time (the
 * verification cache, a run directory's snapshot reference, which does not
 * outlive a host crash anyway). */
static int write_nosync(const char *path, const char *buf, size_t len, silo_error *err)
{
	char tmp[PATH_MAX + 32];
	snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", tmp);
	int rc = write_all(fd, buf, len);
	int e = errno;
	close(fd);
	if (rc < 0 || rename(tmp, path) < 0) {
		e = rc < 0 ? e : errno;
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "write %s", path);
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int check_tags(char *const *tags, silo_error *err)
{
	size_t n = 0;
	for (char *const *t = tags; t && *t; t++, n++)
		if (!name_ok(*t) || !strncmp(*t, "snap-", 5))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "tag \"%.80s\": 1-63 of [A-Za-z0-9_.-], not starting with '.', '-' or \"snap-\"",
					 *t);
	if (n > SNAP_MAX_TAGS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "tags: at most %d", SNAP_MAX_TAGS);
	return 0;
}

int snap_commit(snap_writer *w, const snap_meta *meta, snap_info *out, silo_error *err)
{
	if (check_tags(meta->tags, err) < 0) {
		snap_abort(w);
		return -1;
	}
	json_t *man = NULL;
	uint64_t bytes = 0;
	if (snap_manifest(w->payload, &man, &bytes, err) < 0) {
		silo_error_prefix(err, "snapshot %s", w->id);
		snap_abort(w);
		return -1;
	}
	char *toml = spec_format(meta->spec);
	char spec_hex[65];
	hex_sha256(toml, strlen(toml), spec_hex);
	json_t *tags = json_array();
	for (char *const *t = meta->tags; t && *t; t++)
		json_array_append_new(tags, json_string(*t));
	uint64_t now = now_realtime_ms();
	json_t *h = json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:s,s:s,s:I,s:o}", "format", SNAP_FORMAT,
			      "version", SNAP_FORMAT_VERSION, "id", w->id, "kind", w->kind, "provider",
			      meta->provider, "source", meta->source ? meta->source : "", "created_ms",
			      (json_int_t)now, "expires_ms", (json_int_t)(meta->ttl_ms ? now + meta->ttl_ms : 0),
			      "tags", tags, "spec", toml, "spec_sha256", spec_hex, "bytes", (json_int_t)bytes,
			      "entries", man);
	free(toml);
	int rc = write_header(w->tmp, h, err);
	json_decref(h);
	char pidf[PATH_MAX + 8];
	snprintf(pidf, sizeof pidf, "%s/pid", w->tmp);
	unlink(pidf);
	if (rc < 0) {
		snap_abort(w);
		return -1;
	}
	char root[PATH_MAX], final[PATH_MAX + 72], holdname[64] = "";
	snap_root(root, sizeof root);
	snprintf(final, sizeof final, "%s/%s", root, w->id);
	if (meta->hold_out) {
		/* created inside the temporary directory, it moves in with it */
		char rnd[16], hp[PATH_MAX + 128];
		random_id("", rnd, sizeof rnd);
		snprintf(holdname, sizeof holdname, HOLD_PREFIX "%d-%s", (int)getpid(), rnd);
		snprintf(hp, sizeof hp, "%s/%s", w->tmp, holdname);
		int hfd = open(hp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (hfd < 0) {
			int e = errno;
			snap_abort(w);
			return silo_fail(err, SILO_ERR_IO_ERROR, e, "create %s", hp);
		}
		close(hfd);
		snprintf(meta->hold_out, meta->hold_len, "%s/%s", final, holdname);
	}
	int lk = lock_store(err);
	if (lk < 0) {
		snap_abort(w);
		return -1;
	}
	if (rename(w->tmp, final) < 0) {
		int e = errno;
		unlock_store(lk);
		snap_abort(w);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "rename into %s", final);
	}
	fsync_dir(root);
	unlock_store(lk);
	char id[SILO_ID_MAX];
	snprintf(id, sizeof id, "%s", w->id);
	free(w);
	if (out)
		return snap_open(id, false, out, err);
	return 0;
}

/* ---- reading ---- */

static int load_header(const char *dir, const char *id, json_t **out, silo_error *err)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/" SNAP_HEADER, dir);
	cleanup_free char *txt = NULL;
	size_t len = 0;
	silo_error e = {0};
	if (read_file(p, SNAP_HEADER_MAX, &txt, &len, &e) < 0) {
		if (e.sys_errno == ENOENT)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, ENOENT, "snapshot %s: %s is missing", id, p);
		return silo_fail(err, e.sys_errno == EFBIG ? SILO_ERR_CHECKSUM_MISMATCH : SILO_ERR_IO_ERROR,
				 e.sys_errno, "snapshot %s: %s: %s", id, p, e.message);
	}
	json_error_t je;
	json_t *h = json_loadb(txt, len, JSON_REJECT_DUPLICATES, &je);
	if (!h || !json_is_object(h)) {
		json_decref(h);
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "snapshot %s: %s is corrupt (line %d column %d: %s)", id, p, je.line, je.column,
				 je.text);
	}
	const char *fmt = json_string_value(json_object_get(h, "format"));
	json_t *ver = json_object_get(h, "version");
	if (!fmt || strcmp(fmt, SNAP_FORMAT) != 0) {
		json_decref(h);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot %s: %s: format: expected \"%s\"", id, p,
				 SNAP_FORMAT);
	}
	if (!json_is_integer(ver) || json_integer_value(ver) != SNAP_FORMAT_VERSION) {
		json_int_t v = json_integer_value(ver);
		json_decref(h);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "snapshot %s: %s: version %lld is not supported (this silo reads version %d)", id, p,
				 (long long)v, SNAP_FORMAT_VERSION);
	}
	const char *sha = json_string_value(json_object_get(h, "sha256"));
	char hex[65];
	header_digest(h, hex);
	if (!sha || strcmp(sha, hex) != 0) {
		json_decref(h);
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "snapshot %s: %s: header SHA-256 mismatch (the file was modified or is corrupt)", id, p);
	}
	*out = h;
	return 0;
}

static int fill_info(const char *dir, const char *id, json_t *h, snap_info *s, silo_error *err)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/" SNAP_HEADER, dir);
	memset(s, 0, sizeof *s);
	const char *hid = json_string_value(json_object_get(h, "id"));
	const char *kind = json_string_value(json_object_get(h, "kind"));
	const char *prov = json_string_value(json_object_get(h, "provider"));
	const char *src = json_string_value(json_object_get(h, "source"));
	const char *spec = json_string_value(json_object_get(h, "spec"));
	const char *ssha = json_string_value(json_object_get(h, "spec_sha256"));
	json_t *tags = json_object_get(h, "tags"), *entries = json_object_get(h, "entries");
	const char *bad = !hid || strcmp(hid, id) != 0 ? "id"
			  : !kind || strlen(kind) >= sizeof s->kind ? "kind"
			  : !prov || strlen(prov) >= sizeof s->provider ? "provider"
			  : !src || strlen(src) >= sizeof s->source ? "source"
			  : !spec ? "spec"
			  : !ssha || strlen(ssha) != 64 ? "spec_sha256"
			  : !json_is_array(tags) ? "tags"
			  : !json_is_array(entries) ? "entries"
			  : !json_is_integer(json_object_get(h, "created_ms")) ? "created_ms"
			  : !json_is_integer(json_object_get(h, "expires_ms")) ? "expires_ms"
			  : !json_is_integer(json_object_get(h, "bytes")) ? "bytes"
									  : NULL;
	if (bad)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot %s: %s: field \"%s\" is missing or invalid",
				 id, p, bad);
	char hex[65];
	hex_sha256(spec, strlen(spec), hex);
	if (strcmp(hex, ssha) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot %s: %s: spec SHA-256 mismatch", id, p);
	snprintf(s->id, sizeof s->id, "%s", id);
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	snprintf(s->payload, sizeof s->payload, "%s/payload", dir);
	snprintf(s->kind, sizeof s->kind, "%s", kind);
	snprintf(s->provider, sizeof s->provider, "%s", prov);
	snprintf(s->source, sizeof s->source, "%s", src);
	snprintf(s->spec_sha256, sizeof s->spec_sha256, "%s", ssha);
	s->created_ms = (uint64_t)json_integer_value(json_object_get(h, "created_ms"));
	s->expires_ms = (uint64_t)json_integer_value(json_object_get(h, "expires_ms"));
	s->bytes = (uint64_t)json_integer_value(json_object_get(h, "bytes"));
	s->entries = json_array_size(entries);
	size_t i;
	json_t *t;
	s->tags = xcalloc(json_array_size(tags) + 1, sizeof *s->tags);
	json_array_foreach(tags, i, t)
	{
		const char *v = json_string_value(t);
		if (!v || !name_ok(v)) {
			snap_info_free(s);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot %s: %s: tags[%zu] is invalid", id, p,
					 i);
		}
		s->tags[i] = xstrdup(v);
	}
	s->spec_toml = xstrdup(spec);
	silo_error e = {0};
	if (spec_parse(spec, strlen(spec), &s->spec, &e) < 0) {
		char id2[SILO_ID_MAX];
		snprintf(id2, sizeof id2, "%s", id);
		snap_info_free(s);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot %s: %s: spec: %s", id2, p, e.message);
	}
	s->have_spec = true;
	return 0;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Compare the manifest recorded in the header with the tree on disk. */
static int compare_manifest(const char *id, json_t *want, json_t *have, silo_error *err)
{
	size_t nw = json_array_size(want), nh = json_array_size(have);
	for (size_t i = 0; i < nw || i < nh; i++) {
		json_t *w = json_array_get(want, i), *h = json_array_get(have, i);
		if (!h)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, ENOENT,
					 "snapshot %s: payload/%s is missing", id, jstr(w, "path"));
		if (!w)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s is not in the manifest", id, jstr(h, "path"));
		const char *wp = jstr(w, "path"), *hp = jstr(h, "path");
		if (strcmp(wp, hp) != 0)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s is missing or payload/%s was added", id, wp, hp);
		if (strcmp(jstr(w, "type"), jstr(h, "type")) != 0)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s: the manifest says %s, found %s", id, wp, jstr(w, "type"),
					 jstr(h, "type"));
		json_int_t ws = json_integer_value(json_object_get(w, "size")),
			   hs = json_integer_value(json_object_get(h, "size"));
		if (ws != hs)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s: %lld bytes, the manifest says %lld", id, wp,
					 (long long)hs, (long long)ws);
		if (strcmp(jstr(w, "sha256"), jstr(h, "sha256")) != 0)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot %s: payload/%s: SHA-256 mismatch",
					 id, wp);
		if (strcmp(jstr(w, "target"), jstr(h, "target")) != 0)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s: symlink target changed", id, wp);
		if (!json_equal(w, h))
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					 "snapshot %s: payload/%s: mode, owner or attributes changed", id, wp);
	}
	return 0;
}

/* Full verification hashes every payload byte. Its success is remembered in
 * <dir>/.verified as "<header sha256> <metadata digest of payload/>" (the
 * trust model of verified images, docs/images.md): while neither the header
 * nor any payload entry's metadata (ctime included) changed, the bytes have
 * not either, and a stat walk is enough. */
#define VERIFIED_FILE ".verified"
/* Timestamps are coarse (a clock tick): a write within the same tick as the
 * newest ctime could leave it unchanged. Like git's "racily clean" entries,
 * a tree changed less than this long ago is not cached: it is hashed again. */
#define RACY_NS (2ull * 1000000000ull)

static int verify_dir(const char *dir, const char *id, json_t *h, silo_error *err)
{
	char payload[PATH_MAX + 16], cache[PATH_MAX + 16], line[160], before[65];
	snprintf(payload, sizeof payload, "%s/payload", dir);
	snprintf(cache, sizeof cache, "%s/" VERIFIED_FILE, dir);
	const char *hsha = json_string_value(json_object_get(h, "sha256"));
	uint64_t newest = 0;
	bool have_digest = snap_tree_stat_digest(payload, before, &newest, NULL) == 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	bool racy = newest + RACY_NS > now_ns;
	if (have_digest && hsha) {
		snprintf(line, sizeof line, "%s %s\n", hsha, before);
		char *txt = NULL;
		size_t n;
		bool hit = read_file(cache, sizeof line, &txt, &n, NULL) == 0 && !strcmp(txt, line);
		free(txt);
		if (hit)
			return 0;
	}
	json_t *have = NULL;
	if (snap_manifest(payload, &have, NULL, err) < 0) {
		silo_error_prefix(err, "snapshot %s", id);
		return -1;
	}
	int rc = compare_manifest(id, json_object_get(h, "entries"), have, err);
	json_decref(have);
	if (rc == 0 && have_digest && hsha && !racy) {
		/* digest taken before the hashing: a change during it invalidates */
		snprintf(line, sizeof line, "%s %s\n", hsha, before);
		write_nosync(cache, line, strlen(line), NULL);
	} else if (rc < 0) {
		unlink(cache);
	}
	return rc;
}

int snap_resolve(const char *id_or_tag, char id[SILO_ID_MAX], silo_error *err)
{
	if (!name_ok(id_or_tag))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "snapshot \"%.80s\": an id or tag is 1-63 of [A-Za-z0-9_.-]", id_or_tag ? id_or_tag : "");
	char root[PATH_MAX], p[PATH_MAX + 128];
	snap_root(root, sizeof root);
	snprintf(p, sizeof p, "%s/%s/" SNAP_HEADER, root, id_or_tag);
	if (path_exists(p)) {
		snprintf(id, SILO_ID_MAX, "%s", id_or_tag);
		return 0;
	}
	/* a tag: the newest snapshot carrying it */
	DIR *d = opendir(root);
	uint64_t best = 0;
	bool found = false;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || strlen(de->d_name) >= SILO_ID_MAX)
				continue;
			char dir[PATH_MAX + 72];
			snprintf(dir, sizeof dir, "%s/%s", root, de->d_name);
			json_t *h = NULL;
			silo_error e;
			if (load_header(dir, de->d_name, &h, &e) < 0)
				continue;
			size_t i;
			json_t *t;
			uint64_t created = (uint64_t)json_integer_value(json_object_get(h, "created_ms"));
			json_array_foreach(json_object_get(h, "tags"), i, t)
			{
				const char *v = json_string_value(t);
				if (v && !strcmp(v, id_or_tag) && (!found || created > best)) {
					found = true;
					best = created;
					snprintf(id, SILO_ID_MAX, "%s", de->d_name);
				}
			}
			json_decref(h);
		}
		closedir(d);
	}
	if (!found)
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, ENOENT, "no snapshot with id or tag \"%s\"", id_or_tag);
	return 0;
}

int snap_open(const char *id_or_tag, bool verify, snap_info *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	char id[SILO_ID_MAX], root[PATH_MAX], dir[SNAP_DIR_MAX];
	if (locate(id_or_tag, id, root, dir, err) < 0)
		return -1;
	json_t *h = NULL;
	if (load_header(dir, id, &h, err) < 0)
		return -1;
	int rc = fill_info(dir, id, h, out, err);
	if (rc == 0 && verify && (rc = verify_dir(dir, id, h, err)) < 0)
		snap_info_free(out);
	json_decref(h);
	return rc;
}

int snap_verify(const snap_info *s, silo_error *err)
{
	json_t *h = NULL;
	if (load_header(s->dir, s->id, &h, err) < 0)
		return -1;
	int rc = verify_dir(s->dir, s->id, h, err);
	json_decref(h);
	return rc;
}

static int cmp_created(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t cx = json_integer_value(json_object_get(x, "created_ms"));
	json_int_t cy = json_integer_value(json_object_get(y, "created_ms"));
	return cx < cy ? 1 : cx > cy ? -1 : strcmp(jstr(x, "id"), jstr(y, "id"));
}

int snap_list_json(json_t **out, silo_error *err)
{
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	size_t n = 0, cap = 16;
	json_t **v = xcalloc(cap, sizeof *v);
	DIR *d = opendir(root);
	if (!d && errno != ENOENT) {
		free(v);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "opendir %s", root);
	}
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= SILO_ID_MAX)
			continue;
		snap_info s;
		silo_error e = {0};
		json_t *o;
		if (snap_open(de->d_name, false, &s, &e) == 0) {
			o = snap_info_json(&s);
			snap_info_free(&s);
		} else {
			o = json_pack("{s:s,s:I,s:{s:s,s:s}}", "id", de->d_name, "created_ms", (json_int_t)0, "error",
				      "code", silo_code_name(e.code), "message", e.message);
		}
		if (n == cap)
			v = xrealloc(v, (cap *= 2) * sizeof *v);
		v[n++] = o;
	}
	if (d)
		closedir(d);
	qsort(v, n, sizeof *v, cmp_created);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
	*out = arr;
	return 0;
}

/* ---- maintenance ---- */

int snap_set_tags(const char *id_or_tag, char *const *add, char *const *remove, silo_error *err)
{
	if (check_tags(add, err) < 0)
		return -1;
	char id[SILO_ID_MAX], root[PATH_MAX], dir[SNAP_DIR_MAX];
	int lk = locate_locked(id_or_tag, id, root, dir, err);
	if (lk < 0)
		return -1;
	json_t *h = NULL;
	int rc = -1;
	if (load_header(dir, id, &h, err) < 0)
		goto out;
	json_t *tags = json_object_get(h, "tags"), *nt = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t)
	{
		bool drop = false;
		for (char *const *r = remove; r && *r; r++)
			drop |= !strcmp(*r, json_string_value(t) ? json_string_value(t) : "");
		if (!drop)
			json_array_append(nt, t);
	}
	for (char *const *a = add; a && *a; a++) {
		bool have = false;
		json_array_foreach(nt, i, t) have |= !strcmp(*a, json_string_value(t) ? json_string_value(t) : "");
		if (!have)
			json_array_append_new(nt, json_string(*a));
	}
	if (json_array_size(nt) > SNAP_MAX_TAGS) {
		json_decref(nt);
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "tags: at most %d", SNAP_MAX_TAGS);
		goto out;
	}
	json_object_set_new(h, "tags", nt);
	rc = write_header(dir, h, err);
out:
	json_decref(h);
	unlock_store(lk);
	return rc;
}

static bool pid_running(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static bool held(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool h = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, HOLD_PREFIX, strlen(HOLD_PREFIX)) != 0)
			continue;
		int pid = atoi(de->d_name + strlen(HOLD_PREFIX));
		if (pid_running(pid)) {
			h = true;
		} else {
			char p[PATH_MAX + 300];
			snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
	return h;
}

bool snap_in_use(const char *id, char *who, size_t len)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/sandboxes", silo_runtime_dir());
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool used = false;
	struct dirent *de;
	while (!used && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[PATH_MAX + 300];
		snprintf(p, sizeof p, "%s/%s/" SNAP_REF_FILE, dir, de->d_name);
		char *txt = NULL;
		size_t n;
		if (read_file(p, 128, &txt, &n, NULL) == 0) {
			txt[strcspn(txt, "\n")] = '\0';
			if (!strcmp(txt, id)) {
				used = true;
				if (who)
					snprintf(who, len, "%.*s", (int)(len > 0 ? len - 1 : 0), de->d_name);
			}
			free(txt);
		}
	}
	closedir(d);
	return used;
}

int snap_mark_use(const char *rundir, const char *id, silo_error *err)
{
	char p[PATH_MAX + 32], line[SILO_ID_MAX + 2];
	snprintf(p, sizeof p, "%s/" SNAP_REF_FILE, rundir);
	snprintf(line, sizeof line, "%s\n", id);
	return write_nosync(p, line, strlen(line), err);
}

int snap_hold(const char *id, char *hold, size_t len, silo_error *err)
{
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	char rnd[16];
	random_id("", rnd, sizeof rnd);
	snprintf(hold, len, "%s/%s/" HOLD_PREFIX "%d-%s", root, id, (int)getpid(), rnd);
	int fd = open(hold, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		hold[0] = '\0';
		return silo_fail(err, errno == ENOENT ? SILO_ERR_VM_NOT_FOUND : SILO_ERR_IO_ERROR, errno,
				 "snapshot %s", id);
	}
	close(fd);
	return 0;
}

void snap_release(const char *hold)
{
	if (hold && *hold)
		unlink(hold);
}

/* Move a snapshot out of sight (atomic), then remove it. Under the lock. */
static int remove_locked(const char *root, const char *id, silo_error *err)
{
	char dir[PATH_MAX + 72], del[PATH_MAX + 100], rnd[16];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	random_id("", rnd, sizeof rnd);
	snprintf(del, sizeof del, "%s/" DEL_PREFIX "%s-%s", root, id, rnd);
	if (rename(dir, del) < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_VM_NOT_FOUND : SILO_ERR_IO_ERROR, errno,
				 "snapshot %s", id);
	if (rm_rf(del) < 0)
		return silo_fail(err, SILO_ERR_CLEANUP_FAILED, errno, "snapshot %s: removing %s", id, del);
	return 0;
}

int snap_delete(const char *id_or_tag, bool force, silo_error *err)
{
	char id[SILO_ID_MAX], root[PATH_MAX], who[SILO_ID_MAX], dir[SNAP_DIR_MAX];
	int lk = locate_locked(id_or_tag, id, root, dir, err);
	if (lk < 0)
		return -1;
	int rc;
	if (!force && snap_in_use(id, who, sizeof who))
		rc = silo_fail(err, SILO_ERR_CONFLICT, 0,
			       "snapshot %s is the base layer of live sandbox %s (delete it first, or force)", id, who);
	else if (!force && held(dir))
		rc = silo_fail(err, SILO_ERR_CONFLICT, 0, "snapshot %s is being restored", id);
	else
		rc = remove_locked(root, id, err);
	unlock_store(lk);
	return rc;
}

int snap_gc(uint64_t max_age_ms, json_t **removed, silo_error *err)
{
	if (removed)
		*removed = json_array();
	int lk = lock_store(err);
	if (lk < 0)
		return -1;
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	DIR *d = opendir(root);
	if (!d) {
		unlock_store(lk);
		return 0;
	}
	uint64_t now = now_realtime_ms();
	char **victims = NULL;
	size_t nv = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".lock"))
			continue;
		char dir[PATH_MAX + 300];
		snprintf(dir, sizeof dir, "%s/%s", root, n);
		if (!strncmp(n, TMP_PREFIX, strlen(TMP_PREFIX))) {
			/* a writer that died (its pid file names a dead process) or is a day old */
			char p[PATH_MAX + 320], *txt = NULL;
			size_t l;
			snprintf(p, sizeof p, "%s/pid", dir);
			int pid = 0;
			if (read_file(p, 32, &txt, &l, NULL) == 0)
				pid = atoi(txt);
			free(txt);
			struct stat st;
			bool old = stat(dir, &st) == 0 && now > (uint64_t)st.st_mtim.tv_sec * 1000 + ABANDONED_MS;
			if (!pid_running(pid) || old)
				rm_rf(dir);
			continue;
		}
		if (!strncmp(n, DEL_PREFIX, strlen(DEL_PREFIX))) {
			rm_rf(dir);
			continue;
		}
		if (n[0] == '.' || strlen(n) >= SILO_ID_MAX)
			continue;
		json_t *h = NULL;
		silo_error e;
		if (load_header(dir, n, &h, &e) < 0)
			continue;   /* corrupt ones stay until deleted explicitly: evidence */
		uint64_t created = (uint64_t)json_integer_value(json_object_get(h, "created_ms"));
		uint64_t expires = (uint64_t)json_integer_value(json_object_get(h, "expires_ms"));
		bool untagged = json_array_size(json_object_get(h, "tags")) == 0;
		bool fork = !strcmp(jstr(h, "kind"), "fork");
		json_decref(h);
		bool expired = expires && expires <= now;
		/* fork snapshots exist only to back their forks; untagged ones age out
		 * only when asked (max_age_ms) */
		bool aged = fork || (untagged && max_age_ms != UINT64_MAX && now >= created + max_age_ms);
		if (!expired && !aged)
			continue;
		if (snap_in_use(n, NULL, 0) || held(dir))
			continue;
		victims = xrealloc(victims, (nv + 1) * sizeof *victims);
		victims[nv++] = xstrdup(n);
	}
	closedir(d);
	int rc = 0;
	for (size_t i = 0; i < nv; i++) {
		silo_error e = {0};
		if (remove_locked(root, victims[i], &e) < 0) {
			if (rc == 0)
				*err = e;
			rc = -1;
		} else if (removed) {
			json_array_append_new(*removed, json_string(victims[i]));
		}
		free(victims[i]);
	}
	free(victims);
	unlock_store(lk);
	return rc;
}
