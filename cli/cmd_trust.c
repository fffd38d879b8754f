/* SPDX-License-Identifier: Apache-2.0
 * `silo trust`: keyring and minisign-compatible signatures (docs/security.md).
 *   silo trust keygen -p PUB -s SEC
 *   silo trust add-key PUB | list [--json] | rm-key KEYID
 *   silo trust sign [-s SEC] [-t COMMENT] [-l] [-x SIG] [--version N] [--expires D] [--manifest] [FILE]
 *                                                         (default: the image manifest, versioned)
 *   silo trust verify [-x SIG] [-p PUB] [FILE]            (default: the image manifest)
 *   silo trust verify-bundle [-x SIG] FILE
 *   silo trust check-boot [--image NAME]                  the check run before every boot
 * The keyring is $SILO_KEYRING_DIR, else <state dir>/keyring.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/util.h"
#include "image/image.h"
#include "trust/trust.h"

static void usage(void)
{
	printf("usage: silo trust keygen -p PUB -s SEC        new unencrypted key pair (minisign format)\n"
	       "       silo trust add-key PUB                 trust a public key (minisign .pub)\n"
	       "       silo trust list [--json]               trusted keys\n"
	       "       silo trust rm-key KEYID                stop trusting a key\n"
	       "       silo trust sign [-s SEC] [-t COMMENT] [-l] [-x SIG] [--version N] [--expires D]\n"
	       "                       [--manifest] [FILE]    write FILE.minisig (default FILE: image manifest)\n"
	       "                                              the manifest's signature carries a version (default:\n"
	       "                                              max(now, previous+1)) and an expiry (default 90d;\n"
	       "                                              D: 90d, 12h, 30m, 45s or 2027-01-31[T12:00:00Z])\n"
	       "       silo trust verify [-x SIG] [-p PUB] [FILE]\n"
	       "                                              check FILE.minisig against the keyring (or PUB)\n"
	       "       silo trust verify-bundle [-x SIG] FILE check an agent/plugin bundle before deployment\n"
	       "       silo trust check-boot [--image NAME]   the signed-manifest check run before every boot\n"
	       "keyring: $SILO_KEYRING_DIR, else <state dir>/keyring. SEC: -s, $SILO_TRUST_KEY, else\n"
	       "~/.minisign/minisign.key; its password: $SILO_TRUST_PASSWORD or --password-file F.\n");
}

static int fail(silo_error *err)
{
	return cli_error(err, false);
}

static char *read_password(const char *file, silo_error *err, bool *failed)
{
	*failed = false;
	if (file) {
		char *p = NULL;
		size_t n = 0;
		if (read_file(file, 4096, &p, &n, err) < 0) {
			*failed = true;
			return NULL;
		}
		p[strcspn(p, "\r\n")] = '\0';
		return p;
	}
	const char *e = getenv("SILO_TRUST_PASSWORD");
	return e ? xstrdup(e) : NULL;
}

static int t_keygen(int argc, char **argv)
{
	const char *pub = NULL, *sec = NULL;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "p:s:h")) != -1) {
		if (c == 'p')
			pub = optarg;
		else if (c == 's')
			sec = optarg;
		else
			return usage(), c == 'h' ? 0 : 2;
	}
	if (!pub || !sec)
		return fprintf(stderr, "silo trust keygen: -p PUB and -s SEC are required\n"), 2;
	silo_error err = {0};
	trust_pubkey k;
	if (trust_keygen(pub, sec, &k, &err) < 0)
		return fail(&err);
	printf("key %s: public %s, secret %s (unencrypted: keep it private)\n", k.keyid_hex, pub, sec);
	return 0;
}

static int t_add(int argc, char **argv)
{
	if (argc != 2)
		return fprintf(stderr, "usage: silo trust add-key PUB\n"), 2;
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	silo_error err = {0};
	trust_pubkey k;
	if (trust_keyring_add(dir, argv[1], &k, &err) < 0)
		return fail(&err);
	printf("trusted key %s (%s)\n", k.keyid_hex, k.source);
	return 0;
}

static int t_rm(int argc, char **argv)
{
	if (argc != 2)
		return fprintf(stderr, "usage: silo trust rm-key KEYID\n"), 2;
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	silo_error err = {0};
	if (trust_keyring_remove(dir, argv[1], &err) < 0)
		return fail(&err);
	printf("removed key %s\n", argv[1]);
	return 0;
}

static int t_list(int argc, char **argv)
{
	bool json = argc > 1 && !strcmp(argv[1], "--json");
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	silo_error err = {0};
	trust_pubkey *keys;
	size_t n;
	if (trust_keyring_load(dir, &keys, &n, &err) < 0)
		return cli_error(&err, json);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s,s:s}", "key_id", keys[i].keyid_hex, "path",
							   keys[i].source));
		char *s = json_dumps(a, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(a);
	} else {
		printf("keyring %s: %zu key%s\n", dir, n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n; i++)
			printf("%s  %s\n", keys[i].keyid_hex, keys[i].source);
	}
	free(keys);
	return 0;
}

/* Is file the image manifest (so its signature must be versioned)? */
static bool is_manifest(const char *file)
{
	char mpath[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	image_manifest_path(mpath, sizeof mpath);
	if (!strcmp(file, mpath))
		return true;
	return realpath(file, a) && realpath(mpath, b) && !strcmp(a, b);
}

static int t_sign(int argc, char **argv)
{
	enum { O_PW = 256, O_VERSION, O_EXPIRES, O_MANIFEST };
	static const struct option lo[] = {{"password-file", required_argument, NULL, O_PW},
					   {"version", required_argument, NULL, O_VERSION},
					   {"expires", required_argument, NULL, O_EXPIRES},
					   {"manifest", no_argument, NULL, O_MANIFEST},
					   {"help", no_argument, NULL, 'h'}, {0}};
	const char *sec = getenv("SILO_TRUST_KEY"), *comment = NULL, *pwfile = NULL, *out = NULL;
	const char *version_arg = NULL, *expires_arg = NULL;
	bool legacy = false, manifest = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:t:lx:h", lo, NULL)) != -1) {
		switch (c) {
		case 's': sec = optarg; break;
		case 't': comment = optarg; break;
		case 'l': legacy = true; break;
		case 'x': out = optarg; break;
		case O_PW: pwfile = optarg; break;
		case O_VERSION: version_arg = optarg; break;
		case O_EXPIRES: expires_arg = optarg; break;
		case O_MANIFEST: manifest = true; break;
		default: return usage(), c == 'h' ? 0 : 2;
		}
	}
	char mpath[PATH_MAX];
	image_manifest_path(mpath, sizeof mpath);
	const char *file = optind < argc ? argv[optind] : mpath;
	silo_error err = {0};
	manifest = manifest || is_manifest(file);
	bool versioned = manifest || version_arg || expires_arg;
	if (versioned && comment) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0,
			  "-t: a versioned signature (the image manifest, --version, --expires) writes its own trusted "
			  "comment");
		return fail(&err);
	}
	uint64_t version = 0;
	int64_t expires = 0;
	cleanup_free char *vcomment = NULL;
	if (versioned) {
		if (version_arg) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(version_arg, &end, 10);
			if (!*version_arg || *end || errno || !v || v > INT64_MAX || version_arg[0] == '-') {
				silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--version: expected an integer 1..2^63-1, got \"%s\"",
					  version_arg);
				return fail(&err);
			}
			version = v;
		} else {
			char sp[PATH_MAX + 16];
			snprintf(sp, sizeof sp, "%s.minisig", file);
			version = trust_next_version(out ? out : sp);
		}
		if (expires_arg) {
			if (trust_parse_expiry(expires_arg, &expires, &err) < 0)
				return fail(&err);
		} else {
			expires = (int64_t)time(NULL) + TRUST_DEFAULT_EXPIRY_S;
		}
		vcomment = trust_versioned_comment(file, version, expires);
		comment = vcomment;
	}
	char defsec[PATH_MAX];
	if (!sec || !*sec) {
		const char *home = getenv("HOME");
		snprintf(defsec, sizeof defsec, "%s/.minisign/minisign.key", home ? home : "");
		sec = defsec;
	}
	bool pwfail;
	char *pw = read_password(pwfile, &err, &pwfail);
	if (pwfail)
		return fail(&err);
	trust_seckey sk;
	int rc = trust_seckey_load(sec, pw, &sk, &err);
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (rc < 0)
		return fail(&err);
	char kid[17];
	memcpy(kid, sk.keyid_hex, sizeof kid);
	rc = trust_sign_file(&sk, file, out, comment, legacy, &err);
	explicit_bzero(&sk, sizeof sk);
	if (rc < 0)
		return fail(&err);
	printf("signed %s with key %s -> %s%s", file, kid, out ? out : file, out ? "" : ".minisig");
	if (versioned) {
		char when[40];
		format_time_ms((uint64_t)expires * 1000, when, sizeof when);
		printf(" (version %" PRIu64 ", expires %s)", version, when);
	}
	printf("\n");
	return 0;
}

static int t_verify(int argc, char **argv, bool bundle)
{
	const char *sig = NULL, *pub = NULL;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, bundle ? "x:h" : "x:p:h")) != -1) {
		if (c == 'x')
			sig = optarg;
		else if (c == 'p')
			pub = optarg;
		else
			return usage(), c == 'h' ? 0 : 2;
	}
	char mpath[PATH_MAX];
	image_manifest_path(mpath, sizeof mpath);
	if (bundle && optind >= argc)
		return fprintf(stderr, "usage: silo trust verify-bundle [-x SIG] FILE\n"), 2;
	const char *file = optind < argc ? argv[optind] : mpath;
	silo_error err = {0};
	trust_result res;
	if (bundle) {
		if (trust_verify_bundle(file, sig, NULL, &res, &err) < 0)
			return fail(&err);
	} else {
		trust_pubkey *keys = NULL;
		size_t n = 0;
		if (pub) {
			keys = xcalloc(1, sizeof *keys);
			if (trust_pubkey_load(pub, keys, &err) < 0) {
				free(keys);
				return fail(&err);
			}
			n = 1;
		} else {
			char dir[PATH_MAX];
			trust_keyring_dir(dir, sizeof dir);
			if (trust_keyring_load(dir, &keys, &n, &err) < 0)
				return fail(&err);
			if (!n) {
				free(keys);
				silo_fail(&err, SILO_ERR_CHECKSUM_MISMATCH, 0,
					  "no trusted keys in the keyring %s (silo trust add-key KEY.pub, or -p KEY.pub)", dir);
				return fail(&err);
			}
		}
		int rc = trust_verify_file(keys, n, file, sig, &res, &err);
		free(keys);
		if (rc < 0)
			return fail(&err);
	}
	printf("%s: signature OK (key %s, %s)\ntrusted comment: %s\n", file, res.keyid_hex,
	       res.prehashed ? "prehashed ED" : "legacy Ed", res.trusted_comment);
	trust_version tv;
	if (trust_comment_version(res.trusted_comment, &tv, NULL) == 0 && tv.version) {
		char when[40] = "never";
		if (tv.expires)
			format_time_ms((uint64_t)tv.expires * 1000, when, sizeof when);
		printf("version %" PRIu64 ", expires %s%s\n", tv.version, when,
		       tv.expires && tv.expires <= (int64_t)time(NULL) ? " (EXPIRED)" : "");
	}
	return 0;
}

static int t_verify_sig(int argc, char **argv)
{
	return t_verify(argc, argv, false);
}

static int t_verify_bundle(int argc, char **argv)
{
	return t_verify(argc, argv, true);
}

static int t_check_boot(int argc, char **argv)
{
	const char *img = "base";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--image") && i + 1 < argc)
			img = argv[++i];
		else
			return fprintf(stderr, "usage: silo trust check-boot [--image NAME]\n"), 2;
	}
	silo_error err = {0};
	char kernel[PATH_MAX];
	if (guest_kernel_path(kernel, sizeof kernel, &err) < 0)
		return fail(&err);
	image_entry e;
	if (image_lookup(img, &e, &err) < 0) {
		image_entry_free(&e);
		return fail(&err);
	}
	bool ext4 = e.kind == IMAGE_KIND_EXT4, checked = false;
	int rc = trust_check_boot(kernel, ext4 ? e.initrd.path : e.file.path, ext4 ? e.file.path : NULL, &checked,
				  &err);
	image_entry_free(&e);
	if (rc < 0)
		return fail(&err);
	printf(checked ? "image %s: kernel and image match the signed manifest\n"
		       : "image %s: no keyring configured, nothing checked\n", img);
	return 0;
}

int cmd_trust(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return usage(), argc < 2 ? 2 : 0;
	static const cli_sub subs[] = {
		{"keygen", t_keygen}, {"add-key", t_add},   {"rm-key", t_rm},
		{"list", t_list},     {"ls", t_list},       {"sign", t_sign},
		{"verify", t_verify_sig}, {"verify-bundle", t_verify_bundle}, {"check-boot", t_check_boot},
	};
	int rc = cli_sub_run(subs, ARRAY_SIZE(subs), NULL, argc, argv);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "silo trust: unknown command '%s' (see silo trust --help)\n", argv[1]);
	return 2;
}
