/* SPDX-License-Identifier: Apache-2.0
 * Parsers for the JSON documents of an image (all untrusted): the OCI image
 * layout's index.json, OCI / Docker schema 2 manifests, the image config, and
 * the manifest.json of a `docker save` archive. Each takes at most OCI_JSON_MAX
 * bytes, rejects duplicate keys, and validates every field it returns:
 *   digest      "sha256:" + 64 lowercase hex (other algorithms: NOT_SUPPORTED)
 *   size        a non-negative integer
 *   layers      1..OCI_MAX_LAYERS, media types the importer can decode
 *   config      os "linux" when present; Env entries KEY=VALUE (at most 4096,
 *               32 KiB each); Entrypoint/Cmd at most 4096 arguments of 128 KiB;
 *               WorkingDir empty or absolute; User printable, at most 256 bytes;
 *               rootfs.diff_ids as many digests as layers (checked by the caller)
 *   archive paths (docker) relative, without "..", at most 512 bytes
 * Errors are INVALID_CONFIG naming the document and the field ("manifest:
 * layers[2].digest: expected sha256:<64 hex>").
 */
#ifndef SILO_OCI_MANIFEST_H
#define SILO_OCI_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "oci/stream.h"

#define OCI_JSON_MAX (4u << 20)
#define OCI_MAX_LAYERS 128
#define OCI_MAX_MANIFESTS 1024
#define OCI_DIGEST_LEN 71   /* "sha256:" + 64 */

typedef struct oci_desc {
	char media_type[128];
	char digest[OCI_DIGEST_LEN + 1];
	uint64_t size;
	char ref[256];               /* annotation org.opencontainers.image.ref.name, or "" */
	char os[32], arch[32], variant[32];   /* platform, index entries only */
} oci_desc;

typedef struct oci_manifest {
	oci_desc config;
	oci_desc *layers;
	size_t n_layers;
} oci_manifest;

typedef struct oci_config {
	char os[32], arch[32], variant[32];
	char **env, **entrypoint, **cmd;   /* NULL-terminated, NULL when absent */
	char *working_dir, *user;          /* NULL when absent */
	char (*diff_ids)[OCI_DIGEST_LEN + 1];
	size_t n_diff_ids;
} oci_config;

typedef struct docker_entry {
	char *config;                /* path of the config inside the archive */
	char **repo_tags;            /* NULL-terminated, never NULL */
	char **layers;
	size_t n_layers;
} docker_entry;

typedef enum oci_doc_kind { OCI_DOC_INDEX = 1, OCI_DOC_MANIFEST } oci_doc_kind;

bool oci_digest_valid(const char *d);
/* Compression a layer media type implies; -1 for a type the importer cannot read. */
int oci_layer_media_comp(const char *media_type, oci_comp *c);
/* What a descriptor in an index points to (by media type). */
int oci_desc_kind(const oci_desc *d, oci_doc_kind *k, silo_error *err);

int oci_index_parse(const char *text, size_t len, oci_desc **out, size_t *n, silo_error *err);
int oci_manifest_parse(const char *text, size_t len, oci_manifest *m, silo_error *err);
void oci_manifest_free(oci_manifest *m);
int oci_config_parse(const char *text, size_t len, oci_config *c, silo_error *err);
void oci_config_free(oci_config *c);
int docker_manifest_parse(const char *text, size_t len, docker_entry **out, size_t *n, silo_error *err);
void docker_entries_free(docker_entry *v, size_t n);

#endif
