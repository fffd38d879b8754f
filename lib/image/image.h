/* SPDX-License-Identifier: Apache-2.0
 * Guest image store: named guest images and the guest kernel they pair with.
 *
 * Layout (docs/images.md):
 *   $CACHE/kernel/current -> <key>/{vmlinux,bzImage,config,info.json}
 *   $CACHE/images/manifest.json                 the manifest (JSON, below)
 *   $CACHE/images/<name>/...                    image files
 * where $CACHE = silo_cache_dir(). Images are built by images/build-image.sh
 * (`silo image build NAME`); this module reads, verifies and removes them.
 *
 * manifest.json: {"version":1,"images":[{"name":"python","kind":"ext4",
 *   "path":"/abs/rootfs.ext4","sha256":"<64 hex>","size":N,"created":"RFC3339",
 *   "initrd":{"path":"/abs/initrd.cpio.gz","sha256":"..","size":N},   (ext4 only)
 *   "kernel":{"key":"<16 hex>","path":"/abs/vmlinux","sha256":"..","size":N}}, ...]}
 *   (kernel sha256/size are optional; the signed-manifest boot check needs them)
 *   "trees":[{"name":"namespace","path":"/abs/dir","sha256":"<tree digest>",
 *   "entries":N,"size":N,"created":"RFC3339"}, ...]   (optional)
 * kind "initramfs": path is the initramfs (agent as /init); no root disk.
 * kind "ext4": path is a root disk image mounted read-only under a tmpfs overlay
 *   by the loader initramfs in "initrd" (kernel arg silo.root=/dev/vda).
 * trees: directories the namespace provider uses as its read-only base layer
 *   (its busybox + agent layer, or a boot.rootfs directory), with the tree
 *   digest of lib/trust (trust_tree_digest): a signed manifest covers them too.
 */
#ifndef SILO_IMAGE_H
#define SILO_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define IMAGE_NAME_MAX 64
#define IMAGE_MANIFEST_MAX (1u << 20)   /* bytes; a larger manifest is rejected */
#define IMAGE_MAX_ENTRIES 256

typedef enum image_kind { IMAGE_KIND_INITRAMFS = 1, IMAGE_KIND_EXT4 = 2 } image_kind;

typedef struct image_file {
	char *path;          /* absolute; NULL when absent */
	char sha256[65];     /* lowercase hex */
	uint64_t size;
} image_file;

typedef struct image_entry {
	char name[IMAGE_NAME_MAX + 1];
	image_kind kind;
	image_file file;     /* the image itself */
	image_file initrd;   /* loader initramfs (kind ext4), path NULL otherwise */
	char created[40];
	char kernel_key[33];
	char *kernel_path;   /* vmlinux it was built against; may be NULL */
	char kernel_sha256[65]; /* "" when the manifest does not record it */
	uint64_t kernel_size;
} image_entry;

typedef struct image_tree {
	char name[IMAGE_NAME_MAX + 1];
	char *path;          /* absolute directory */
	char sha256[65];     /* tree digest, lowercase hex */
	uint64_t entries;
	uint64_t size;       /* bytes of regular files */
	char created[40];
} image_tree;

const char *image_kind_name(image_kind k);
/* $CACHE/images/manifest.json into buf. */
void image_manifest_path(char *buf, size_t len);
/* Validate and parse manifest text. Errors are INVALID_CONFIG naming the entry and field. */
int image_manifest_parse(const char *text, size_t len, image_entry **out, size_t *n,
			 silo_error *err);
/* The same, also returning the "trees" (t/nt may be NULL to skip them). */
int image_manifest_parse_all(const char *text, size_t len, image_entry **out, size_t *n, image_tree **t,
			     size_t *nt, silo_error *err);
void image_trees_free(image_tree *t, size_t n);
/* Trees listed in the manifest (a missing manifest is an empty list). */
int image_list_trees(image_tree **out, size_t *n, silo_error *err);
/* Record (or replace) tree `name` in the manifest, under the manifest lock.
 * The name is shared with images: a tree may not take an image's name. */
int image_record_tree(const char *name, const char *path, const char *sha256, uint64_t entries, uint64_t size,
		      silo_error *err);
/* Read the manifest (a missing manifest is an empty list). */
int image_list(image_entry **out, size_t *n, silo_error *err);
void image_entries_free(image_entry *e, size_t n);
void image_entry_free(image_entry *e);       /* frees members */
/* Look up by name; INVALID_CONFIG "image: no image named ..." when absent. */
int image_lookup(const char *name, image_entry *out, silo_error *err);
/* Check size and SHA-256 of every file of the entry (libsodium). A successful
 * check is remembered in "<file>.verified" (sha256, size, mtime, inode) so a
 * later check of an unchanged file is a stat. CHECKSUM_MISMATCH on mismatch.
 * A corruption check only: the stamp is in the cache, whose writer could forge
 * it; with a keyring the boot check (lib/trust/boot.c) keeps its own. */
int image_verify(const image_entry *e, silo_error *err);
/* SHA-256 of a file as 64 hex chars + NUL. */
int image_sha256_file(const char *path, char hex[65], uint64_t *size, silo_error *err);
/* Remove the image files and its manifest entry (under the manifest lock). A
 * tree's entry is removed, its directory left in place. */
int image_remove(const char *name, silo_error *err);
/* The manifest as a JSON document (validated by image_manifest_parse first), with
 * the members this header does not model (e.g. "oci"); a missing manifest is
 * {"version":1,"images":[]}. */
struct json_t;
int image_manifest_json(struct json_t **out, silo_error *err);
/* Read-modify-write the manifest under its lock (used by `silo image import`):
 * edit gets the parsed document ({"version":1,"images":[]} when there is none yet)
 * and changes it in place; the result must still pass image_manifest_parse and is
 * written atomically. When edit fails nothing is written. */
int image_manifest_edit(int (*edit)(struct json_t *root, void *ud, silo_error *err), void *ud,
			silo_error *err);
/* Valid image name: 1-64 of [a-z0-9_-], starting with a letter or digit. */
bool image_name_valid(const char *name);

/* Guest kernel: $SILO_KERNEL if set, else $CACHE/kernel/current/vmlinux.
 * PROVIDER_UNAVAILABLE with a hint when absent. */
int guest_kernel_path(char *buf, size_t len, silo_error *err);

#endif
