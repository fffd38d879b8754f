/* SPDX-License-Identifier: Apache-2.0
 * Internal to lib/oci: the layer store and the root-disk builder (store.c),
 * shared by import.c. Layout and locking: oci.h.
 */
#ifndef SILO_OCI_STORE_H
#define SILO_OCI_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* $CACHE/oci/<rel> into buf. */
void oci_path(char *buf, size_t len, const char *rel);
/* Create the store directories (0700: nothing in an image is meant for host users). */
int oci_store_prepare(silo_error *err);
/* flock $CACHE/oci/.lock shared (imports) or exclusive (gc); returns the fd. */
int oci_store_lock(bool exclusive, silo_error *err);
/* $CACHE/oci/layers/sha256/<hex> and its root/ into buf. */
void oci_layer_dir(char *buf, size_t len, const char *hex);
void oci_layer_root(char *buf, size_t len, const char *hex);
/* A complete layer is in the store (its layer.json exists). */
bool oci_layer_present(const char *hex);
/* layer.json of a stored layer (NULL when absent or unreadable). */
json_t *oci_layer_json(const char *hex);
/* Build an ext4 image at out from the layer trees roots (bottom first), merged
 * with overlay semantics in a hard-linked scratch tree under stage; single_plain
 * (one layer without whiteouts or opaque directories) uses the layer as is. */
int oci_build_ext4(char *const *roots, size_t n, bool single_plain, const char *stage, const char *out,
		   uint64_t *size, silo_error *err);
/* The entry named name, or NULL. */
json_t *oci_manifest_find(json_t *root, const char *name);
/* Allocated bytes (st_blocks) of a file, 0 when absent. */
uint64_t oci_file_disk(const char *path);

#endif
