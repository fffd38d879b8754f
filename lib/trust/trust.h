/* SPDX-License-Identifier: Apache-2.0
 * Supply-chain trust: Ed25519 signatures (libsodium) in minisign's formats, a
 * keyring of trusted public keys, the signed image manifest checked before
 * every boot, and agent/plugin bundle verification (docs/security.md).
 *
 * Formats (compatible with the `minisign` tool, 0.8+):
 *   public key:  "untrusted comment: ...\n" base64("Ed" keyid[8] pk[32])
 *   secret key:  "untrusted comment: ...\n" base64("Ed" kdf[2] "B2" salt[32]
 *                opslimit[8] memlimit[8] keyid[8] sk[64] chk[32]); kdf "Sc"
 *                (scrypt, password-encrypted) or "\0\0" (unencrypted, -W)
 *   signature:   "untrusted comment: ...\n" base64(alg[2] keyid[8] sig[64]) "\n"
 *                "trusted comment: ...\n" base64(global_sig[64]) "\n"
 *                alg "Ed": sig over the message; "ED": sig over BLAKE2b-512(message);
 *                global_sig over sig[64] || trusted comment (always checked).
 */
#ifndef SILO_TRUST_H
#define SILO_TRUST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define TRUST_KEYID_LEN 8
#define TRUST_COMMENT_MAX 1024          /* minisign's COMMENTMAXBYTES */
#define TRUST_SIG_FILE_MAX 4096         /* a larger .minisig is rejected */
#define TRUST_KEY_FILE_MAX 4096
#define TRUST_KEYRING_MAX 256           /* keys read from a keyring directory */
#define TRUST_LEGACY_MAX (64u << 20)    /* "Ed" (non-prehashed) messages are read whole */

typedef struct trust_pubkey {
	uint8_t keyid[TRUST_KEYID_LEN];
	uint8_t pk[32];
	char keyid_hex[17];                 /* as minisign prints it: uppercase hex, no padding */
	char source[256];                   /* file it came from ("" if parsed from text) */
} trust_pubkey;

typedef struct trust_seckey {
	uint8_t keyid[TRUST_KEYID_LEN];
	uint8_t sk[64];
	char keyid_hex[17];
} trust_seckey;

typedef struct trust_sig {
	bool prehashed;                     /* "ED" */
	uint8_t keyid[TRUST_KEYID_LEN];
	uint8_t sig[64];
	char untrusted_comment[TRUST_COMMENT_MAX + 1];
	char trusted_comment[TRUST_COMMENT_MAX + 1];
	uint8_t global_sig[64];
	char keyid_hex[17];
} trust_sig;

typedef struct trust_result {
	char keyid_hex[17];                 /* the key that verified */
	char key_source[256];
	char trusted_comment[TRUST_COMMENT_MAX + 1];
	bool prehashed;
} trust_result;

/* ---- formats ---- */
/* Parse public key text (the two-line file, or just the base64 line). INVALID_CONFIG names the line. */
int trust_pubkey_parse(const char *text, size_t len, trust_pubkey *out, silo_error *err);
int trust_pubkey_load(const char *path, trust_pubkey *out, silo_error *err);
/* The two-line public key file; free() the result. */
char *trust_pubkey_format(const trust_pubkey *k);
/* Load a secret key; password may be NULL for an unencrypted key (an encrypted key
 * without a password is INVALID_CONFIG). A wrong password fails the checksum. */
int trust_seckey_load(const char *path, const char *password, trust_seckey *out, silo_error *err);
/* Generate an unencrypted key pair (minisign -G -W compatible); refuses to overwrite. */
int trust_keygen(const char *pub_path, const char *sec_path, trust_pubkey *pub_out, silo_error *err);
int trust_sig_parse(const char *text, size_t len, trust_sig *out, silo_error *err);

/* ---- sign / verify ---- */
/* Signature text for msg; legacy = "Ed" (else "ED", prehashed). trusted_comment
 * NULL = "timestamp:<now>". free() the result. */
char *trust_sign_buf(const trust_seckey *sk, const void *msg, size_t len, const char *trusted_comment,
		     bool legacy, silo_error *err);
/* Sign a file into sig_path (default path + ".minisig" when NULL). */
int trust_sign_file(const trust_seckey *sk, const char *path, const char *sig_path,
		    const char *trusted_comment, bool legacy, silo_error *err);
/* Verify against any of keys. CHECKSUM_MISMATCH when no key matches or a
 * signature is bad; INVALID_CONFIG for a malformed signature file. */
int trust_verify_buf(const trust_pubkey *keys, size_t nkeys, const void *msg, size_t len,
		     const char *sigtext, size_t siglen, trust_result *res, silo_error *err);
int trust_verify_file(const trust_pubkey *keys, size_t nkeys, const char *path, const char *sig_path,
		      trust_result *res, silo_error *err);

/* ---- keyring: a directory of minisign public keys (*.pub) ---- */
/* $SILO_KEYRING_DIR, else <silo_state_dir()>/keyring. */
void trust_keyring_dir(char *buf, size_t len);
/* Every *.pub in dir (a missing dir is an empty keyring); a malformed key file
 * is an error naming it. free() *keys. */
int trust_keyring_load(const char *dir, trust_pubkey **keys, size_t *n, silo_error *err);
/* The configured keyring: trust_keyring_dir() and its keys; n == 0 means no
 * keyring is configured. trust_keyring_open fills k (on failure k holds no keys);
 * release it with trust_keyring_close, or declare it cleanup_keyring. */
typedef struct trust_keyring {
	char dir[PATH_MAX];
	trust_pubkey *keys;
	size_t n;
} trust_keyring;
int trust_keyring_open(trust_keyring *k, silo_error *err);
void trust_keyring_close(trust_keyring *k);
#define cleanup_keyring __attribute__((cleanup(trust_keyring_close)))
/* Validate pub_path and install it as <dir>/<KEYID>.pub (0644). */
int trust_keyring_add(const char *dir, const char *pub_path, trust_pubkey *added, silo_error *err);
/* Remove <dir>/<KEYID>.pub. */
int trust_keyring_remove(const char *dir, const char *keyid_hex, silo_error *err);

/* ---- versioned signatures: the image manifest cannot be rolled back ---- */
/* A versioned signature carries two more fields in its trusted comment (which
 * the global signature covers): "version:N" (1..2^63-1, never reused, higher =
 * newer) and "expires:T" (unix seconds), separated from minisign's usual fields
 * by tabs or spaces, e.g.
 *   timestamp:1767225600<TAB>file:manifest.json<TAB>hashed<TAB>version:1767225600<TAB>expires:1775001600
 * With a keyring, the image manifest's signature must carry both; the highest
 * version accepted is recorded per keyring (trust_state_dir()) and older ones,
 * a reused version with other content, and expired signatures are refused. */
typedef struct trust_version {
	uint64_t version;                   /* 0 = absent */
	int64_t expires;                    /* unix seconds, 0 = absent */
} trust_version;
#define TRUST_DEFAULT_EXPIRY_S (90 * 86400)
/* Fields of a trusted comment; INVALID_CONFIG when one is malformed or repeated. */
int trust_comment_version(const char *comment, trust_version *out, silo_error *err);
/* The trusted comment of a versioned signature of `file`; free() it. */
char *trust_versioned_comment(const char *file, uint64_t version, int64_t expires);
/* The version `silo trust sign` picks: the largest of the time now (unix seconds),
 * one more than the version in sig_path (the signature being replaced, unverified:
 * only a number is taken from it) and one more than what this keyring has seen. */
uint64_t trust_next_version(const char *sig_path);
/* Parse "90d", "12h", "30m", "45s", "N" (seconds) or a UTC date "2027-01-31" /
 * "2027-01-31T12:00:00Z" into an absolute unix time (durations count from now). */
int trust_parse_expiry(const char *s, int64_t *out, silo_error *err);
/* Trust state kept beside the keys: <keyring>/state (the highest manifest version
 * seen, the verdicts of verified trees). Writable only by whoever may change the keys. */
void trust_state_dir(char *buf, size_t len);

/* ---- boot-time check of the signed image manifest ---- */
/* When the keyring has keys: the image manifest must carry a valid signature
 * (manifest.json.minisig) by a trusted key, and every file that is about to be
 * booted (kernel, initrd, root disk; NULL/"" = absent) must be listed in that
 * signed manifest with the SHA-256 and size it has now. CHECKSUM_MISMATCH names
 * the file. *checked is set to true when a keyring was configured (the check
 * ran), false when the keyring is empty (nothing checked). */
int trust_check_boot(const char *kernel, const char *initrd, const char *rootdisk, bool *checked,
		     silo_error *err);
/* The namespace provider's check of a directory tree it is about to use as a
 * read-only base layer (lib/trust/tree.c). With keys in the keyring, the signed
 * image manifest (same checks as above: signature, version, expiry) must list
 * the directory under "trees" with the tree digest it has now (trust_tree_digest).
 * The digest is recomputed only when the tree's metadata changed since the last
 * verification (a verdict in trust_state_dir(), see docs/security.md);
 * CHECKSUM_MISMATCH names the tree. *checked as for trust_check_boot. */
int trust_check_tree(const char *dir, bool *checked, silo_error *err);
/* The same for several directories at once (one manifest check): each must be a
 * tree of "trees" or a layer of an image ("oci"."layers" with its "tree" digest). */
int trust_check_trees(char *const *dirs, size_t n, bool *checked, silo_error *err);

/* Tree digest: SHA-256 over a canonical listing of every entry (path, type,
 * permission bits, owner, size, content SHA-256 of files, symlink targets,
 * extended attributes of files and directories, overlayfs whiteouts and FIFOs).
 * Other devices and sockets are refused (INVALID_CONFIG naming the entry). */
typedef struct trust_tree_info {
	char sha256[65];
	uint64_t entries;                   /* files, directories and symlinks, the root included */
	uint64_t bytes;                     /* total size of the regular files */
} trust_tree_info;
#define TRUST_TREE_MAX_ENTRIES 1000000
int trust_tree_digest(const char *dir, trust_tree_info *out, silo_error *err);

/* Hook called for every failed boot check (the manager installs one to emit a
 * supply-chain event and an audit record). NULL removes it. */
typedef void (*trust_violation_fn)(void *ud, const silo_error *err);
void trust_set_violation_hook(trust_violation_fn fn, void *ud);
/* Report a boot refusal found outside trust_check_boot (the VM providers' kernel
 * command line check) to the same hook. */
void trust_report_violation(const silo_error *err);
/* While flag is set, every refusal reported on this thread also sets *flag: how a
 * caller knows a failure was a supply-chain refusal without reading its message
 * (manager.c around sandbox_create). NULL stops it. */
void trust_watch_refusals(bool *flag);

/* ---- agent / plugin bundles ---- */
/* A bundle is a file with a detached signature (path + ".minisig" unless sig_path).
 * PLUGIN_UNVERIFIED when the keyring is empty, the signature is missing,
 * malformed, bad, or not from a trusted key. */
/* With fd_out, the verified bytes are returned as a sealed, read-only memfd (the
 * deployment code reads exactly what was verified, however the file changes
 * later); close it. Bundles are bounded by TRUST_BUNDLE_MAX. */
#define TRUST_BUNDLE_MAX (512ull << 20)
int trust_verify_bundle(const char *path, const char *sig_path, int *fd_out, trust_result *res,
			silo_error *err);
/* The same check of bytes already in memory against signature text (what = the
 * name used in errors). PLUGIN_UNVERIFIED as above. */
int trust_verify_bundle_buf(const char *what, const void *data, size_t len, const char *sig, size_t siglen,
			    trust_result *res, silo_error *err);

/* A bundle's contents: an uncompressed POSIX tar (ustar, pax or GNU long names)
 * of regular files and directories. Every entry is validated before fn sees it:
 * a relative path without "..", "." or empty components, no control characters,
 * at most TRUST_BUNDLE_PATH_MAX bytes; permission bits only (setuid, setgid and
 * sticky dropped); header checksums; sizes within the archive. Symlinks, hard
 * links, devices and FIFOs are refused. Errors are INVALID_CONFIG naming the
 * entry and its offset. fn may be NULL (validate only). */
#define TRUST_BUNDLE_PATH_MAX 1024
#define TRUST_BUNDLE_ENTRIES_MAX 100000
typedef struct trust_bundle_entry {
	const char *path;                   /* normalized, relative */
	bool dir;
	uint32_t mode;                      /* 0777 bits */
	const uint8_t *data;                /* regular files: the content, in the archive */
	uint64_t size;
} trust_bundle_entry;
typedef int (*trust_bundle_fn)(void *ud, const trust_bundle_entry *e, silo_error *err);
int trust_bundle_walk(const void *tar, size_t len, trust_bundle_fn fn, void *ud, silo_error *err);

#endif
