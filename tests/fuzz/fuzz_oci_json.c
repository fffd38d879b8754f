/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the image JSON parsers of `silo image import` (lib/oci/manifest.c): the
 * same input as an OCI index, an image manifest, an image config and a docker
 * save manifest.json. Invariants: no crash or leak; a refusal is INVALID_CONFIG
 * or NOT_SUPPORTED; whatever parses is within its documented bounds (valid
 * digests, 1..OCI_MAX_LAYERS layers, KEY=VALUE environment, relative archive
 * paths without "..").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "oci/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused(const silo_error *e)
{
	if (e->code != SILO_ERR_INVALID_CONFIG && e->code != SILO_ERR_NOT_SUPPORTED)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	silo_error e = {0};
	oci_desc *v;
	size_t n;
	if (oci_index_parse(t, size, &v, &n, &e) == 0) {
		if (n == 0 || n > OCI_MAX_MANIFESTS)
			abort();
		for (size_t i = 0; i < n; i++) {
			oci_doc_kind k;
			if (!oci_digest_valid(v[i].digest))
				abort();
			if (oci_desc_kind(&v[i], &k, &e) < 0)
				refused(&e);
		}
		free(v);
	} else {
		refused(&e);
	}
	oci_manifest m;
	if (oci_manifest_parse(t, size, &m, &e) == 0) {
		if (m.n_layers == 0 || m.n_layers > OCI_MAX_LAYERS || !oci_digest_valid(m.config.digest))
			abort();
		for (size_t i = 0; i < m.n_layers; i++) {
			oci_comp c;
			if (!oci_digest_valid(m.layers[i].digest) || oci_layer_media_comp(m.layers[i].media_type, &c) < 0)
				abort();
		}
		oci_manifest_free(&m);
	} else {
		refused(&e);
	}
	oci_config c;
	if (oci_config_parse(t, size, &c, &e) == 0) {
		if (c.n_diff_ids == 0 || c.n_diff_ids > OCI_MAX_LAYERS)
			abort();
		for (size_t i = 0; i < c.n_diff_ids; i++)
			if (!oci_digest_valid(c.diff_ids[i]))
				abort();
		for (char **p = c.env; p && *p; p++)
			if (!strchr(*p, '=') || **p == '=')
				abort();
		if (c.working_dir && c.working_dir[0] != '/')
			abort();
		oci_config_free(&c);
	} else {
		refused(&e);
	}
	docker_entry *d;
	if (docker_manifest_parse(t, size, &d, &n, &e) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!path_is_safe_relative(d[i].config) || d[i].n_layers == 0 || d[i].n_layers > OCI_MAX_LAYERS)
				abort();
			for (size_t j = 0; j < d[i].n_layers; j++)
				if (!path_is_safe_relative(d[i].layers[j]))
					abort();
		}
		docker_entries_free(d, n);
	} else {
		refused(&e);
	}
	return 0;
}
