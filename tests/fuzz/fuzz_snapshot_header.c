/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the snapshot header reader (snap_open with verification). The input is
 * written as snapshot.json of a snapshot whose payload holds one small file.
 * When the input is a JSON object its "sha256" field is recomputed first, so
 * the fuzzer gets past the header digest into field validation, the spec
 * parser and the manifest comparison. Every refusal must be one of the codes
 * the store documents, never a crash.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "snapshot/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID "snap-00000000f022"

static char header_path[PATH_MAX];
static char tmpdir[64];

static void remove_tmp(void)
{
	rm_rf(tmpdir);
}

static void init(void)
{
	if (header_path[0])
		return;
	char tmp[] = "/tmp/silo-fuzz-snap.XXXXXX";
	if (!mkdtemp(tmp))
		abort();
	snprintf(tmpdir, sizeof tmpdir, "%s", tmp);
	atexit(remove_tmp);
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/state", tmp);
	setenv("SILO_STATE_DIR", p, 1);
	snprintf(p, sizeof p, "%s/run", tmp);
	setenv("SILO_RUNTIME_DIR", p, 1);
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	snprintf(p, sizeof p, "%s/" ID "/payload/layer", root);
	if (mkdir_p(p, 0755) < 0)
		abort();
	snprintf(p, sizeof p, "%s/" ID "/payload/layer/f", root);
	if (write_file_atomic(p, "hello\n", 6, 0644, NULL) < 0)
		abort();
	snprintf(header_path, sizeof header_path, "%s/" ID "/" SNAP_HEADER, root);
}

static char *with_digest(const uint8_t *data, size_t size, size_t *len)
{
	json_t *h = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(h)) {
		json_decref(h);
		return NULL;
	}
	json_t *c = json_copy(h);
	json_object_del(c, "sha256");
	char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(c);
	if (!s) {
		json_decref(h);
		return NULL;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	char hex[65];
	crypto_hash_sha256(d, (const unsigned char *)s, strlen(s));
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	free(s);
	json_object_set_new(h, "sha256", json_string(hex));
	char *out = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	if (out)
		*len = strlen(out);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	size_t len = size;
	char *fixed = with_digest(data, size, &len);
	const void *buf = fixed ? (const void *)fixed : (const void *)data;
	if (write_file_atomic(header_path, buf, fixed ? len : size, 0600, NULL) < 0)
		abort();
	free(fixed);
	snap_info s;
	silo_error e = {0};
	if (snap_open(ID, true, &s, &e) == 0) {
		/* accepted: the info must be consistent */
		if (strcmp(s.id, ID) != 0 || !s.have_spec)
			abort();
		json_t *j = snap_info_json(&s);
		json_decref(j);
		snap_info_free(&s);
		return 0;
	}
	if (e.code != SILO_ERR_CHECKSUM_MISMATCH && e.code != SILO_ERR_INVALID_CONFIG &&
	    e.code != SILO_ERR_VM_NOT_FOUND && e.code != SILO_ERR_IO_ERROR)
		abort();
	return 0;
}
