/* SPDX-License-Identifier: Apache-2.0
 * `silo trust`: keyring and minisign-compatible signatures (docs/security.md).
 *   silo trust keygen -p PUB -s SEC
 *   silo trust add-key PUB | list [--json] | rm-key KEYID
 *   silo trust sign [-s SEC] [-t COMMENT] [-l] [-x SIG] [FILE]  (default: the image manifest)
 *   silo trust verify [-x SIG] [-p PUB] [FILE]            (default: the image manifest)
 *   silo trust verify-bundle [-x SIG] FILE
 *   silo trust check-boot [--image NAME]                  the check run before every boot
 * The keyring is $SILO_KEYRING_DIR, else <state dir>/keyring.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	       "       silo trust sign [-s SEC] [-t COMMENT] [-l] [-x SIG] [FILE]\n"
	       "                                              write FILE.minisig (default FILE: image manifest)\n"
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

static int t_sign(int argc, char **argv)
{
	static const struct option lo[] = {{"password-file", required_argument, NULL, 'P'},
					   {"help", no_argument, NULL, 'h'}, {0}};
	const char *sec = getenv("SILO_TRUST_KEY"), *comment = NULL, *pwfile = NULL, *out = NULL;
	bool legacy = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:t:lx:h", lo, NULL)) != -1) {
		switch (c) {
		case 's': sec = optarg; break;
		case 't': comment = optarg; break;
		case 'l': legacy = true; break;
		case 'x': out = optarg; break;
		case 'P': pwfile = optarg; break;
		default: return usage(), c == 'h' ? 0 : 2;
		}
	}
	char defsec[PATH_MAX], mpath[PATH_MAX];
	if (!sec || !*sec) {
		const char *home = getenv("HOME");
		snprintf(defsec, sizeof defsec, "%s/.minisign/minisign.key", home ? home : "");
		sec = defsec;
	}
	image_manifest_path(mpath, sizeof mpath);
	const char *file = optind < argc ? argv[optind] : mpath;
	silo_error err = {0};
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
	printf("signed %s with key %s -> %s%s\n", file, kid, out ? out : file, out ? "" : ".minisig");
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
	return 0;
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
	const char *v = argv[1];
	argc--, argv++;
	if (!strcmp(v, "keygen"))
		return t_keygen(argc, argv);
	if (!strcmp(v, "add-key"))
		return t_add(argc, argv);
	if (!strcmp(v, "rm-key"))
		return t_rm(argc, argv);
	if (!strcmp(v, "list") || !strcmp(v, "ls"))
		return t_list(argc, argv);
	if (!strcmp(v, "sign"))
		return t_sign(argc, argv);
	if (!strcmp(v, "verify"))
		return t_verify(argc, argv, false);
	if (!strcmp(v, "verify-bundle"))
		return t_verify(argc, argv, true);
	if (!strcmp(v, "check-boot"))
		return t_check_boot(argc, argv);
	fprintf(stderr, "silo trust: unknown command '%s' (see silo trust --help)\n", v);
	return 2;
}
