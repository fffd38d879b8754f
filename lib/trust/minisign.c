/* SPDX-License-Identifier: Apache-2.0
 * minisign-compatible Ed25519 keys and signatures (libsodium), and the keyring.
 * Formats: lib/trust/trust.h. Every byte of a key or signature file is
 * untrusted input: sizes are bounded and each malformed line is named.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "trust/trust.h"

#define PK_BIN_LEN (2 + TRUST_KEYID_LEN + 32)
#define SIG_BIN_LEN (2 + TRUST_KEYID_LEN + 64)
#define SK_BIN_LEN (2 + 2 + 2 + 32 + 8 + 8 + TRUST_KEYID_LEN + 64 + 32)
#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "

static bool sodium_ready(silo_error *err)
{
	if (sodium_init() < 0) {
		silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium initialization failed");
		return false;
	}
	return true;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void keyid_hex(const uint8_t id[TRUST_KEYID_LEN], char out[17])
{
	snprintf(out, 17, "%" PRIX64, le64(id)); /* as minisign prints it: no zero padding */
}

/* Split text into at most max lines (without "\n" / "\r\n"); returns the count or
 * -1 when there are more lines or a NUL byte. Lines point into a copy (*buf). */
static int split_lines(const char *text, size_t len, char **buf, char **lines, int max)
{
	if (memchr(text, '\0', len))
		return -1;
	*buf = xstrndup(text, len);
	int n = 0;
	char *p = *buf;
	while (*p) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		size_t l = strlen(p);
		if (l && p[l - 1] == '\r')
			p[l - 1] = '\0';
		if (n == max)
			return -1;
		lines[n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	/* trailing empty lines are not lines */
	while (n > 0 && !lines[n - 1][0])
		n--;
	return n;
}

static int b64_decode(const char *b64, uint8_t *out, size_t want, const char *what, silo_error *err)
{
	size_t got = 0;
	uint8_t tmp[256];
	if (strlen(b64) > 4 * sizeof tmp / 3)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %zu base64 characters (expected %zu bytes)",
				 what, strlen(b64), want);
	if (sodium_base642bin(tmp, sizeof tmp, b64, strlen(b64), NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: not valid base64", what);
	if (got != want) {
		sodium_memzero(tmp, sizeof tmp);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: decodes to %zu bytes, expected %zu", what, got,
				 want);
	}
	memcpy(out, tmp, want);
	sodium_memzero(tmp, sizeof tmp);
	return 0;
}

static char *b64_encode(const uint8_t *bin, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = xmalloc(n);
	sodium_bin2base64(s, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* ---------------------------------------------------------------- public keys */

int trust_pubkey_parse(const char *text, size_t len, trust_pubkey *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (!sodium_ready(err))
		return -1;
	if (len > TRUST_KEY_FILE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "public key: %zu bytes (limit %d)", len,
				 TRUST_KEY_FILE_MAX);
	cleanup_free char *buf = NULL;
	char *lines[2];
	int n = split_lines(text, len, &buf, lines, 2);
	if (n < 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "public key: expected an \"untrusted comment:\" line and a base64 line");
	const char *b64 = lines[0];
	if (n == 2) {
		if (strncmp(lines[0], UNTRUSTED_PREFIX, strlen(UNTRUSTED_PREFIX)) != 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "public key: line 1: expected \"untrusted comment: ...\"");
		b64 = lines[1];
	} else if (!strncmp(lines[0], "untrusted comment", 17)) {
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "public key: line 2: missing the base64 key");
	}
	uint8_t bin[PK_BIN_LEN];
	if (b64_decode(b64, bin, sizeof bin, n == 2 ? "public key: line 2" : "public key: line 1", err) < 0)
		return -1;
	if (bin[0] != 'E' || bin[1] != 'd')
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "public key: algorithm 0x%02x%02x, expected \"Ed\" (Ed25519)", bin[0], bin[1]);
	memcpy(out->keyid, bin + 2, TRUST_KEYID_LEN);
	memcpy(out->pk, bin + 2 + TRUST_KEYID_LEN, 32);
	keyid_hex(out->keyid, out->keyid_hex);
	return 0;
}

int trust_pubkey_load(const char *path, trust_pubkey *out, silo_error *err)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (read_file(path, TRUST_KEY_FILE_MAX, &text, &len, err) < 0) {
		silo_error_prefix(err, "public key %s", path);
		return -1;
	}
	if (trust_pubkey_parse(text, len, out, err) < 0) {
		silo_error_prefix(err, "%s", path);
		return -1;
	}
	snprintf(out->source, sizeof out->source, "%s", path);
	return 0;
}

char *trust_pubkey_format(const trust_pubkey *k)
{
	uint8_t bin[PK_BIN_LEN] = {'E', 'd'};
	memcpy(bin + 2, k->keyid, TRUST_KEYID_LEN);
	memcpy(bin + 2 + TRUST_KEYID_LEN, k->pk, 32);
	cleanup_free char *b64 = b64_encode(bin, sizeof bin);
	return xasprintf(UNTRUSTED_PREFIX "minisign public key %s\n%s\n", k->keyid_hex, b64);
}

/* ---------------------------------------------------------------- secret keys */

static void sk_checksum(const uint8_t *alg, const uint8_t *keynum_sk /* keyid[8] sk[64] */, uint8_t chk[32])
{
	crypto_generichash_state hs;
	crypto_generichash_init(&hs, NULL, 0, 32);
	crypto_generichash_update(&hs, alg, 2);
	crypto_generichash_update(&hs, keynum_sk, TRUST_KEYID_LEN + 64);
	crypto_generichash_final(&hs, chk, 32);
}

int trust_seckey_load(const char *path, const char *password, trust_seckey *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (!sodium_ready(err))
		return -1;
	char *text = NULL;
	size_t len = 0;
	if (read_file(path, TRUST_KEY_FILE_MAX, &text, &len, err) < 0) {
		silo_error_prefix(err, "secret key %s", path);
		return -1;
	}
	char *buf = NULL, *lines[2];
	int n = split_lines(text, len, &buf, lines, 2);
	int rc = -1;
	uint8_t bin[SK_BIN_LEN];
	if (n != 2 || strncmp(lines[0], UNTRUSTED_PREFIX, strlen(UNTRUSTED_PREFIX)) != 0) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "secret key %s: expected an \"untrusted comment:\" line and a base64 line", path);
		goto out;
	}
	if (b64_decode(lines[1], bin, sizeof bin, "line 2", err) < 0) {
		silo_error_prefix(err, "secret key %s", path);
		goto out;
	}
	const uint8_t *alg = bin, *kdf = bin + 2, *chkalg = bin + 4, *salt = bin + 6;
	uint64_t ops = le64(bin + 38), mem = le64(bin + 46);
	uint8_t *keynum = bin + 54; /* keyid[8] sk[64] chk[32] */
	if (alg[0] != 'E' || alg[1] != 'd' || chkalg[0] != 'B' || chkalg[1] != '2') {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "secret key %s: algorithms \"%c%c\"/\"%c%c\", expected \"Ed\" and \"B2\"", path,
			  alg[0] ? alg[0] : '?', alg[1] ? alg[1] : '?', chkalg[0] ? chkalg[0] : '?',
			  chkalg[1] ? chkalg[1] : '?');
		goto out;
	}
	if (kdf[0] == 'S' && kdf[1] == 'c') {
		if (!password) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "secret key %s is password-protected: set SILO_TRUST_PASSWORD or use --password-file",
				  path);
			goto out;
		}
		if (ops > (1ull << 32) || mem > (1ull << 31)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "secret key %s: scrypt limits ops=%" PRIu64 " mem=%" PRIu64 " are out of range", path,
				  ops, mem);
			goto out;
		}
		uint8_t stream[TRUST_KEYID_LEN + 64 + 32];
		if (crypto_pwhash_scryptsalsa208sha256(stream, sizeof stream, password, strlen(password), salt,
						       ops, (size_t)mem) != 0) {
			silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, ENOMEM, "secret key %s: scrypt failed (memory)",
				  path);
			goto out;
		}
		for (size_t i = 0; i < sizeof stream; i++)
			keynum[i] ^= stream[i];
		sodium_memzero(stream, sizeof stream);
	} else if (kdf[0] || kdf[1]) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "secret key %s: key derivation 0x%02x%02x, expected \"Sc\" (scrypt) or none", path, kdf[0],
			  kdf[1]);
		goto out;
	}
	/* minisign only fills the checksum of encrypted keys (an unencrypted -W key has
	 * 32 zero bytes there); the secret key's public half must match its seed in any case */
	uint8_t chk[32], zero[32] = {0}, pk[32], sk2[64];
	sk_checksum(alg, keynum, chk);
	const uint8_t *have = keynum + TRUST_KEYID_LEN + 64;
	bool chk_ok = sodium_memcmp(chk, have, 32) == 0 || (!kdf[0] && sodium_memcmp(have, zero, 32) == 0);
	crypto_sign_seed_keypair(pk, sk2, keynum + TRUST_KEYID_LEN);
	bool pair_ok = sodium_memcmp(pk, keynum + TRUST_KEYID_LEN + 32, 32) == 0;
	sodium_memzero(sk2, sizeof sk2);
	if (!chk_ok || !pair_ok) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "secret key %s: checksum mismatch (%s)", path,
			  kdf[0] ? "wrong password?" : "damaged file");
		goto out;
	}
	memcpy(out->keyid, keynum, TRUST_KEYID_LEN);
	memcpy(out->sk, keynum + TRUST_KEYID_LEN, 64);
	keyid_hex(out->keyid, out->keyid_hex);
	rc = 0;
out:
	sodium_memzero(bin, sizeof bin);
	if (buf) {
		sodium_memzero(buf, strlen(buf));
		free(buf);
	}
	sodium_memzero(text, len);
	free(text);
	return rc;
}

static int write_new_file(const char *path, const char *data, mode_t mode, silo_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return silo_fail(err, errno == EEXIST ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, errno,
				 "%s%s", path, errno == EEXIST ? ": exists, not overwriting" : "");
	int rc = write_all(fd, data, strlen(data));
	int e = errno;
	if (close(fd) < 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc < 0) {
		unlink(path);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "write %s", path);
	}
	return 0;
}

int trust_keygen(const char *pub_path, const char *sec_path, trust_pubkey *pub_out, silo_error *err)
{
	if (!sodium_ready(err))
		return -1;
	uint8_t bin[SK_BIN_LEN];
	memset(bin, 0, sizeof bin);
	bin[0] = 'E', bin[1] = 'd', bin[4] = 'B', bin[5] = '2';
	uint8_t *keynum = bin + 54;
	uint8_t pk[32];
	randombytes_buf(keynum, TRUST_KEYID_LEN);
	crypto_sign_keypair(pk, keynum + TRUST_KEYID_LEN);
	sk_checksum(bin, keynum, keynum + TRUST_KEYID_LEN + 64);
	trust_pubkey pub;
	memset(&pub, 0, sizeof pub);
	memcpy(pub.keyid, keynum, TRUST_KEYID_LEN);
	memcpy(pub.pk, pk, 32);
	keyid_hex(pub.keyid, pub.keyid_hex);
	char *b64 = b64_encode(bin, sizeof bin);
	sodium_memzero(bin, sizeof bin);
	char *sec = xasprintf(UNTRUSTED_PREFIX "silo (minisign-compatible) secret key %s, unencrypted\n%s\n",
			      pub.keyid_hex, b64);
	sodium_memzero(b64, strlen(b64));
	free(b64);
	cleanup_free char *pubtxt = trust_pubkey_format(&pub);
	int rc = write_new_file(sec_path, sec, 0600, err);
	sodium_memzero(sec, strlen(sec));
	free(sec);
	if (rc < 0)
		return -1;
	if (write_new_file(pub_path, pubtxt, 0644, err) < 0) {
		unlink(sec_path);
		return -1;
	}
	if (pub_out)
		*pub_out = pub;
	return 0;
}

/* ---------------------------------------------------------------- signatures */

int trust_sig_parse(const char *text, size_t len, trust_sig *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (!sodium_ready(err))
		return -1;
	if (len > TRUST_SIG_FILE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signature: %zu bytes (limit %d)", len,
				 TRUST_SIG_FILE_MAX);
	cleanup_free char *buf = NULL;
	char *l[4];
	int n = split_lines(text, len, &buf, l, 4);
	if (n != 4)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "signature: expected 4 lines (untrusted comment, signature, trusted comment, "
				 "global signature)%s", n < 0 ? ", found more or a NUL byte" : "");
	if (strncmp(l[0], UNTRUSTED_PREFIX, strlen(UNTRUSTED_PREFIX)) != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signature: line 1: expected \"untrusted comment: ...\"");
	if (strncmp(l[2], TRUSTED_PREFIX, strlen(TRUSTED_PREFIX)) != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signature: line 3: expected \"trusted comment: ...\"");
	const char *uc = l[0] + strlen(UNTRUSTED_PREFIX), *tc = l[2] + strlen(TRUSTED_PREFIX);
	if (strlen(uc) > TRUST_COMMENT_MAX || strlen(tc) > TRUST_COMMENT_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signature: line %d: comment longer than %d bytes",
				 strlen(uc) > TRUST_COMMENT_MAX ? 1 : 3, TRUST_COMMENT_MAX);
	uint8_t bin[SIG_BIN_LEN];
	if (b64_decode(l[1], bin, sizeof bin, "signature: line 2", err) < 0)
		return -1;
	if (bin[0] == 'E' && bin[1] == 'd')
		out->prehashed = false;
	else if (bin[0] == 'E' && bin[1] == 'D')
		out->prehashed = true;
	else
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "signature: line 2: algorithm 0x%02x%02x, expected \"Ed\" or \"ED\"", bin[0], bin[1]);
	memcpy(out->keyid, bin + 2, TRUST_KEYID_LEN);
	memcpy(out->sig, bin + 2 + TRUST_KEYID_LEN, 64);
	if (b64_decode(l[3], out->global_sig, 64, "signature: line 4", err) < 0)
		return -1;
	snprintf(out->untrusted_comment, sizeof out->untrusted_comment, "%s", uc);
	snprintf(out->trusted_comment, sizeof out->trusted_comment, "%s", tc);
	keyid_hex(out->keyid, out->keyid_hex);
	return 0;
}

static bool comment_ok(const char *s)
{
	if (strlen(s) > TRUST_COMMENT_MAX)
		return false;
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			return false;
	return true;
}

/* Signature text from the message (or its BLAKE2b-512 when prehashed). */
static char *sign_digest(const trust_seckey *sk, const uint8_t *m, size_t mlen, bool prehashed,
			 const char *trusted_comment, silo_error *err)
{
	char tcbuf[64];
	if (!trusted_comment) {
		snprintf(tcbuf, sizeof tcbuf, "timestamp:%lld%s", (long long)time(NULL), prehashed ? "\thashed" : "");
		trusted_comment = tcbuf;
	}
	if (!comment_ok(trusted_comment)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "trusted comment: at most %d bytes and no newline",
			  TRUST_COMMENT_MAX);
		return NULL;
	}
	uint8_t bin[SIG_BIN_LEN] = {'E', prehashed ? 'D' : 'd'};
	memcpy(bin + 2, sk->keyid, TRUST_KEYID_LEN);
	crypto_sign_detached(bin + 2 + TRUST_KEYID_LEN, NULL, m, mlen, sk->sk);
	size_t tlen = strlen(trusted_comment);
	cleanup_free uint8_t *g = xmalloc(64 + tlen);
	memcpy(g, bin + 2 + TRUST_KEYID_LEN, 64);
	memcpy(g + 64, trusted_comment, tlen);
	uint8_t gsig[64];
	crypto_sign_detached(gsig, NULL, g, 64 + tlen, sk->sk);
	cleanup_free char *s1 = b64_encode(bin, sizeof bin);
	cleanup_free char *s2 = b64_encode(gsig, sizeof gsig);
	return xasprintf(UNTRUSTED_PREFIX "signature from silo secret key %s\n%s\n" TRUSTED_PREFIX "%s\n%s\n",
			 sk->keyid_hex, s1, trusted_comment, s2);
}

char *trust_sign_buf(const trust_seckey *sk, const void *msg, size_t len, const char *trusted_comment,
		     bool legacy, silo_error *err)
{
	if (!sodium_ready(err))
		return NULL;
	if (legacy)
		return sign_digest(sk, msg, len, false, trusted_comment, err);
	uint8_t h[crypto_generichash_BYTES_MAX];
	crypto_generichash(h, sizeof h, msg, len, NULL, 0);
	return sign_digest(sk, h, sizeof h, true, trusted_comment, err);
}

static int b2_chunk(void *ud, const void *buf, size_t n, silo_error *err)
{
	(void)err;
	crypto_generichash_update(ud, buf, (unsigned long long)n);
	return 0;
}

static int blake2b_file(const char *path, uint8_t h[64], silo_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", path);
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 64);
	if (read_chunks(fd, path, 1 << 16, b2_chunk, &st, err) < 0)
		return -1;
	crypto_generichash_final(&st, h, 64);
	return 0;
}

int trust_sign_file(const trust_seckey *sk, const char *path, const char *sig_path,
		    const char *trusted_comment, bool legacy, silo_error *err)
{
	if (!sodium_ready(err))
		return -1;
	char tcbuf[TRUST_COMMENT_MAX + 1];
	if (!trusted_comment) {
		const char *base = strrchr(path, '/');
		snprintf(tcbuf, sizeof tcbuf, "timestamp:%lld\tfile:%s%s", (long long)time(NULL),
			 base ? base + 1 : path, legacy ? "" : "\thashed");
		trusted_comment = tcbuf;
	}
	char *sig = NULL;
	if (legacy) {
		cleanup_free char *m = NULL;
		size_t len = 0;
		if (read_file(path, TRUST_LEGACY_MAX, &m, &len, err) < 0)
			return -1;
		sig = sign_digest(sk, (uint8_t *)m, len, false, trusted_comment, err);
	} else {
		uint8_t h[64];
		if (blake2b_file(path, h, err) < 0)
			return -1;
		sig = sign_digest(sk, h, sizeof h, true, trusted_comment, err);
	}
	if (!sig)
		return -1;
	cleanup_free char *def = sig_path ? NULL : xasprintf("%s.minisig", path);
	int rc = write_file_atomic(sig_path ? sig_path : def, sig, strlen(sig), 0644, err);
	free(sig);
	return rc;
}

static int verify_digest(const trust_pubkey *keys, size_t nkeys, const trust_sig *s, const uint8_t *m,
			 size_t mlen, trust_result *res, silo_error *err)
{
	const trust_pubkey *k = NULL;
	for (size_t i = 0; i < nkeys && !k; i++)
		if (!memcmp(keys[i].keyid, s->keyid, TRUST_KEYID_LEN))
			k = &keys[i];
	if (!k)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "signature is by key %s, which is not trusted (%zu trusted key%s)", s->keyid_hex, nkeys,
				 nkeys == 1 ? "" : "s");
	if (crypto_sign_verify_detached(s->sig, m, mlen, k->pk) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "signature by key %s does not match the content", k->keyid_hex);
	size_t tlen = strlen(s->trusted_comment);
	cleanup_free uint8_t *g = xmalloc(64 + tlen);
	memcpy(g, s->sig, 64);
	memcpy(g + 64, s->trusted_comment, tlen);
	if (crypto_sign_verify_detached(s->global_sig, g, 64 + tlen, k->pk) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "trusted comment signature by key %s is invalid (the trusted comment was altered)",
				 k->keyid_hex);
	if (res) {
		memset(res, 0, sizeof *res);
		snprintf(res->keyid_hex, sizeof res->keyid_hex, "%s", k->keyid_hex);
		snprintf(res->key_source, sizeof res->key_source, "%s", k->source);
		snprintf(res->trusted_comment, sizeof res->trusted_comment, "%s", s->trusted_comment);
		res->prehashed = s->prehashed;
	}
	return 0;
}

int trust_verify_buf(const trust_pubkey *keys, size_t nkeys, const void *msg, size_t len, const char *sigtext,
		     size_t siglen, trust_result *res, silo_error *err)
{
	trust_sig s;
	if (trust_sig_parse(sigtext, siglen, &s, err) < 0)
		return -1;
	if (!s.prehashed)
		return verify_digest(keys, nkeys, &s, msg, len, res, err);
	uint8_t h[64];
	crypto_generichash(h, sizeof h, msg, len, NULL, 0);
	return verify_digest(keys, nkeys, &s, h, sizeof h, res, err);
}

int trust_verify_file(const trust_pubkey *keys, size_t nkeys, const char *path, const char *sig_path,
		      trust_result *res, silo_error *err)
{
	cleanup_free char *def = sig_path ? NULL : xasprintf("%s.minisig", path);
	const char *sp = sig_path ? sig_path : def;
	cleanup_free char *sigtext = NULL;
	size_t siglen = 0;
	if (read_file(sp, TRUST_SIG_FILE_MAX, &sigtext, &siglen, err) < 0) {
		silo_error_prefix(err, "signature %s", sp);
		return -1;
	}
	trust_sig s;
	if (trust_sig_parse(sigtext, siglen, &s, err) < 0) {
		silo_error_prefix(err, "%s", sp);
		return -1;
	}
	int rc;
	if (s.prehashed) {
		uint8_t h[64];
		if (blake2b_file(path, h, err) < 0)
			return -1;
		rc = verify_digest(keys, nkeys, &s, h, sizeof h, res, err);
	} else {
		cleanup_free char *m = NULL;
		size_t len = 0;
		if (read_file(path, TRUST_LEGACY_MAX, &m, &len, err) < 0) {
			if (err && err->sys_errno == EFBIG)
				silo_error_prefix(err, "legacy (\"Ed\") signature needs the whole file in memory");
			return -1;
		}
		rc = verify_digest(keys, nkeys, &s, (uint8_t *)m, len, res, err);
	}
	if (rc < 0)
		silo_error_prefix(err, "%s", path);
	return rc;
}

/* ---------------------------------------------------------------- keyring */

void trust_keyring_dir(char *buf, size_t len)
{
	const char *e = getenv("SILO_KEYRING_DIR");
	if (e && *e)
		snprintf(buf, len, "%s", e);
	else
		snprintf(buf, len, "%s/keyring", silo_state_dir());
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(((const trust_pubkey *)a)->keyid_hex, ((const trust_pubkey *)b)->keyid_hex);
}

int trust_keyring_load(const char *dir, trust_pubkey **keys, size_t *n, silo_error *err)
{
	*keys = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "keyring %s", dir);
	}
	trust_pubkey *v = NULL;
	size_t cnt = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".pub") != 0)
			continue;
		if (cnt == TRUST_KEYRING_MAX) {
			closedir(d);
			free(v);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "keyring %s: more than %d keys", dir,
					 TRUST_KEYRING_MAX);
		}
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		v = xrealloc(v, (cnt + 1) * sizeof *v);
		if (trust_pubkey_load(path, &v[cnt], err) < 0) {
			closedir(d);
			free(v);
			silo_error_prefix(err, "keyring");
			return -1;
		}
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof *v, cmp_key);
	*keys = v;
	*n = cnt;
	return 0;
}

int trust_keyring_open(trust_keyring *k, silo_error *err)
{
	k->keys = NULL;
	k->n = 0;
	trust_keyring_dir(k->dir, sizeof k->dir);
	return trust_keyring_load(k->dir, &k->keys, &k->n, err);
}

void trust_keyring_close(trust_keyring *k)
{
	free(k->keys);
	k->keys = NULL;
	k->n = 0;
}

int trust_keyring_add(const char *dir, const char *pub_path, trust_pubkey *added, silo_error *err)
{
	trust_pubkey k;
	if (trust_pubkey_load(pub_path, &k, err) < 0)
		return -1;
	if (mkdir_p(dir, 0755) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", dir);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s.pub", dir, k.keyid_hex);
	cleanup_free char *txt = trust_pubkey_format(&k);
	if (write_file_atomic(path, txt, strlen(txt), 0644, err) < 0)
		return -1;
	snprintf(k.source, sizeof k.source, "%s", path);
	if (added)
		*added = k;
	return 0;
}

int trust_keyring_remove(const char *dir, const char *keyid_hex, silo_error *err)
{
	size_t kl = strlen(keyid_hex);
	if (kl < 1 || kl > 16 || strspn(keyid_hex, "0123456789ABCDEFabcdef") != kl)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "key id \"%s\": expected 1-16 hex digits", keyid_hex);
	char up[17], path[PATH_MAX];
	for (size_t i = 0; i <= kl; i++)
		up[i] = (char)(keyid_hex[i] >= 'a' && keyid_hex[i] <= 'f' ? keyid_hex[i] - 32 : keyid_hex[i]);
	snprintf(path, sizeof path, "%s/%s.pub", dir, up);
	if (unlink(path) < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_INVALID_CONFIG : SILO_ERR_IO_ERROR, errno,
				 "keyring %s: no key %s", dir, up);
	return 0;
}
