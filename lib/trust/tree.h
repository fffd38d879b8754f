/* SPDX-License-Identifier: Apache-2.0
 * Inside lib/trust: tree digests with a cached verdict (tree.c).
 */
#ifndef SILO_TRUST_TREE_H
#define SILO_TRUST_TREE_H

#include "trust/trust.h"

/* The digest of the tree at root (an absolute, resolved path), recomputed only
 * when the metadata of one of its directories or regular files differs from
 * the verdict recorded at the last full walk (trust_state_dir()/trees). */
int tree_verified_digest(const char *root, trust_tree_info *out, silo_error *err);
/* <trust_state_dir()>/<sub>/<sha256 hex of key><ext>: where a cached verdict
 * about key (a resolved path) lives, beside the keys. */
void trust_state_entry(const char *sub, const char *key, const char *ext, char *buf, size_t len);

#endif
