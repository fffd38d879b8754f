/* SPDX-License-Identifier: Apache-2.0
 * Images from OCI: import an OCI image layout, an OCI or `docker save` archive or
 * a rootfs tarball into a content-addressed layer store, and give the providers
 * what they boot (docs/images.md, "Imported images").
 *
 * Store ($CACHE = silo_cache_dir()):
 *   $CACHE/oci/.lock                    flock: an import holds it shared for its
 *                                       whole run, gc exclusive
 *   $CACHE/oci/layers/sha256/<hex>/     one per layer, <hex> = its diff_id (SHA-256
 *       root/                           of the uncompressed tar): the unpacked tree
 *                                       in overlayfs lowerdir form
 *       layer.json                      what it is; a sandbox using the layer holds
 *                                       flock(LOCK_SH) on it, gc skips held layers
 *   $CACHE/oci/tmp/import-XXXXXX/       staging of a running import
 *   $CACHE/oci/loader/<key>/            loader initramfs builds (the CLI makes them
 *                                       with images/build-initramfs.sh; images link them)
 *   $CACHE/images/<name>/<id>/          an imported image: image.json (source,
 *       digests, ordered layers, sandbox defaults), config.json and manifest.json
 *       as imported, rootfs.ext4 (VM root disk), loader.cpio.gz (its loader)
 *   $CACHE/images/manifest.json         the image manifest (lib/image): an
 *       imported image is an "ext4" entry plus an "oci" member (image.json path,
 *       format, config digest, layers bottom-first as {diff_id, path})
 * Consistency across kill -9: layers are staged and renamed into place; the image
 * directory is renamed into place and only then does the manifest (written
 * atomically under its lock) name it. Until that write nothing of the import is
 * visible; what a crash leaves behind (staging, unreferenced layers and image
 * directories) is removed by oci_gc().
 */
#ifndef SILO_OCI_H
#define SILO_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define OCI_DEFAULT_MAX_BYTES (16ull << 30)    /* decompressed bytes per import */
#define OCI_DEFAULT_MAX_ENTRIES 1000000ull     /* archive entries per import */

typedef enum oci_format { OCI_FMT_AUTO, OCI_FMT_OCI, OCI_FMT_DOCKER, OCI_FMT_ROOTFS } oci_format;

int oci_format_parse(const char *s, oci_format *f);
const char *oci_format_name(oci_format f);

typedef struct oci_import_opts {
	const char *source;    /* directory or archive file, "-" = an archive on standard input */
	const char *name;      /* image name (image_name_valid) */
	const char *ref;       /* which image of a multi-image source, NULL: the only one */
	const char *loader;    /* loader initramfs for the ext4 (images/build-initramfs.sh --mode overlay) */
	oci_format format;
	uint64_t max_bytes;    /* 0: OCI_DEFAULT_MAX_BYTES */
	uint64_t max_entries;  /* 0: OCI_DEFAULT_MAX_ENTRIES */
	bool skip_devices;     /* drop device nodes instead of refusing the archive */
	bool force;            /* replace an imported image of the same name */
	/* Store the layers only and record them as the namespace layers of this
	 * built image (its "oci" member: {"format": "built", "layers": [...]}),
	 * e.g. the python image's root file system (images/build-image.sh);
	 * name and loader are then unused. */
	const char *layers_for;
} oci_import_opts;

typedef struct oci_import_result {
	oci_format format;
	size_t n_layers, new_layers;
	uint64_t bytes;              /* unpacked file bytes of all layers */
	uint64_t layers_disk_new;    /* allocated bytes the new layers added */
	uint64_t ext4_size, ext4_disk;
	uint64_t dropped_xattrs, dropped_devices;
	char dropped[256];
	double seconds, seconds_layers, seconds_ext4;
	char config_digest[72];
	char image_dir[4096];
} oci_import_result;

/* Import; the image is visible (image_lookup) only when this returns 0. Errors:
 * INVALID_CONFIG (bad or hostile input, naming the file/entry and the field),
 * CHECKSUM_MISMATCH (a digest or size does not match), RESOURCE_EXCEEDED (a limit),
 * NOT_SUPPORTED (a format, media type, platform or privilege this cannot handle),
 * CONFLICT (the name is taken), IO_ERROR. */
int oci_import(const oci_import_opts *o, oci_import_result *r, silo_error *err);

/* The overlay lower layers of an imported image, topmost first (the order of
 * lowerdir=), each a directory; duplicates of a layer keep only the topmost. */
int oci_image_lowerdirs(const char *name, char ***dirs, size_t *n, silo_error *err);
/* flock(LOCK_SH) every layer of dirs (as returned above) for a sandbox's lifetime:
 * gc leaves held layers alone. *fds gets n descriptors; close them to release. */
int oci_layers_hold(char *const *dirs, size_t n, int **fds, silo_error *err);
/* image.json of an imported image into *info (NULL when the image was built by
 * `silo image build`). */
int oci_image_info(const char *name, json_t **info, silo_error *err);

typedef struct oci_image_usage {
	char name[65];
	bool imported;
	size_t n_layers;
	uint64_t logical;   /* built: image files; imported: unpacked layer bytes */
	uint64_t disk;      /* allocated bytes only this image uses (its files, its own layers) */
	uint64_t shared;    /* allocated bytes of its layers that other images use too */
} oci_image_usage;

typedef struct oci_store_usage {
	size_t n_layers, unreferenced;
	uint64_t layers_disk, unreferenced_disk, images_disk;
} oci_store_usage;

/* Sizes for `silo image ls`, in manifest order. */
int oci_usage(oci_image_usage **out, size_t *n, oci_store_usage *total, silo_error *err);

typedef struct oci_gc_result {
	size_t layers_removed, layers_kept, layers_busy, staging_removed, image_dirs_removed, loaders_removed;
	uint64_t bytes_freed;
} oci_gc_result;

/* Remove layers no image references (unless a sandbox holds them), staging left
 * by interrupted imports, image directories the manifest does not name, and
 * cached loader builds no image links (but the newest).
 * Waits for running imports (the store lock). */
int oci_gc(oci_gc_result *r, silo_error *err);

/* ---- the loader initramfs and the image scripts (loader.c) ---- */
/* Directory with build-kernel.sh / build-image.sh: $SILO_IMAGES_DIR, the source
 * tree, or PREFIX/share/silo/images. */
int oci_images_dir(char *out, size_t len, silo_error *err);
/* Run a script and wait; quiet drops its stdout. */
int oci_run_script(char *const argv[], bool quiet, silo_error *err);
/* The loader initramfs for ext4 root disks, built if missing; path into out. */
int oci_loader(char *out, size_t len, silo_error *err);

#endif
