/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the minisign parsers: the input is a signature file, a public key file
 * and (split at the first 0xff byte) a message verified against a fixed key.
 * Invariants: no crash or leak; a signature that parses re-parses the same; its
 * trusted comment's version fields parse to non-negative values or are refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *cut = memchr(data, 0xff, size);
	size_t slen = cut ? (size_t)(cut - data) : size;
	const char *msg = cut ? (const char *)cut + 1 : "";
	size_t mlen = cut ? size - slen - 1 : 0;
	silo_error err = {0};
	trust_sig s;
	if (trust_sig_parse((const char *)data, slen, &s, &err) == 0) {
		if (strlen(s.trusted_comment) > TRUST_COMMENT_MAX || strlen(s.untrusted_comment) > TRUST_COMMENT_MAX)
			abort();
		/* the version fields a manifest signature carries: parsed or refused, never half */
		trust_version v;
		silo_error e2 = {0};
		if (trust_comment_version(s.trusted_comment, &v, &e2) == 0) {
			if ((int64_t)v.version < 0 || v.expires < 0)
				abort();
		} else if (e2.code != SILO_ERR_INVALID_CONFIG) {
			abort();
		}
	}
	trust_pubkey pk;
	(void)trust_pubkey_parse((const char *)data, slen, &pk, &err);
	/* a fixed, valid key: RWQ + zeros is a well-formed "Ed" key */
	static const char key[] = "untrusted comment: k\nRWQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
	if (trust_pubkey_parse(key, strlen(key), &pk, &err) == 0)
		(void)trust_verify_buf(&pk, 1, msg, mlen, (const char *)data, slen, NULL, &err);
	return 0;
}
