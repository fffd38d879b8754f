/* SPDX-License-Identifier: Apache-2.0
 * lib/trust: minisign-compatible signatures cross-checked with the real
 * `minisign` binary in both directions, malformed keys/signatures, the keyring,
 * the signed-manifest boot check and bundle verification. Real files in a
 * private temp dir; nothing is mocked.
 */
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "harness.h"
#include "tree_test.h"
#include "image/image.h"
#include "trust/trust.h"

static char tmp[PATH_MAX];

static void setup(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/silo-trust-test.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	char d[PATH_MAX + 32];
	snprintf(d, sizeof d, "%s/keyring", tmp);
	setenv("SILO_KEYRING_DIR", d, 1);
	snprintf(d, sizeof d, "%s/cache", tmp);
	setenv("SILO_CACHE_DIR", d, 1);
}

static void teardown(void)
{
	rm_rf(tmp);
}

static char *P(const char *name)
{
	static char bufs[8][PATH_MAX + 64];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, PATH_MAX + 64, "%s/%s", tmp, name);
	return b;
}

static void put(const char *path, const char *s)
{
	silo_error err = {0};
	if (write_file_atomic(path, s, strlen(s), 0644, &err) < 0)
		abort();
}

static char *slurp(const char *path)
{
	char *t = NULL;
	size_t n;
	if (read_file(path, 1 << 20, &t, &n, NULL) < 0)
		return NULL;
	return t;
}

static bool have_minisign(void)
{
	return tree_sh("minisign -v >/dev/null 2>&1") == 0;
}

TEST(sign_verify_roundtrip_both_algorithms)
{
	setup();
	silo_error err = {0};
	trust_pubkey pk;
	REQUIRE(trust_keygen(P("k.pub"), P("k.key"), &pk, &err) == 0);
	struct stat st;
	REQUIRE(stat(P("k.key"), &st) == 0);
	CHECK_INT_EQ(st.st_mode & 0777, 0600);
	/* keygen never overwrites */
	silo_error e0 = {0};
	CHECK_INT_EQ(trust_keygen(P("k.pub"), P("k.key"), NULL, &e0), -1);
	CHECK_INT_EQ(e0.code, SILO_ERR_CONFLICT);
	trust_seckey sk;
	REQUIRE(trust_seckey_load(P("k.key"), NULL, &sk, &err) == 0);
	CHECK_STR_EQ(sk.keyid_hex, pk.keyid_hex);
	const char msg[] = "the manifest bytes";
	for (int legacy = 0; legacy < 2; legacy++) {
		char *sig = trust_sign_buf(&sk, msg, strlen(msg), "file:x", legacy, &err);
		REQUIRE(sig);
		trust_result r;
		CHECK_INT_EQ(trust_verify_buf(&pk, 1, msg, strlen(msg), sig, strlen(sig), &r, &err), 0);
		CHECK_STR_EQ(r.trusted_comment, "file:x");
		CHECK_INT_EQ(r.prehashed, !legacy);
		/* one changed byte of content */
		silo_error e1 = {0};
		CHECK_INT_EQ(trust_verify_buf(&pk, 1, "The manifest bytes", strlen(msg), sig, strlen(sig), &r, &e1), -1);
		CHECK_INT_EQ(e1.code, SILO_ERR_CHECKSUM_MISMATCH);
		CHECK_CONTAINS(e1.message, "does not match the content");
		/* altered trusted comment (same length): the global signature catches it */
		char *alt = xstrdup(sig);
		char *tc = strstr(alt, "file:x");
		tc[5] = 'y';
		silo_error e2 = {0};
		CHECK_INT_EQ(trust_verify_buf(&pk, 1, msg, strlen(msg), alt, strlen(alt), &r, &e2), -1);
		CHECK_INT_EQ(e2.code, SILO_ERR_CHECKSUM_MISMATCH);
		CHECK_CONTAINS(e2.message, "trusted comment");
		free(alt);
		free(sig);
	}
	/* a key that is not trusted */
	trust_pubkey other;
	REQUIRE(trust_keygen(P("o.pub"), P("o.key"), &other, &err) == 0);
	char *sig = trust_sign_buf(&sk, msg, strlen(msg), NULL, false, &err);
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_verify_buf(&other, 1, msg, strlen(msg), sig, strlen(sig), NULL, &e3), -1);
	CHECK_CONTAINS(e3.message, "which is not trusted");
	CHECK_CONTAINS(e3.message, pk.keyid_hex);
	/* same key id, different public key: the signature check fails */
	trust_pubkey forged = other;
	memcpy(forged.keyid, pk.keyid, sizeof forged.keyid);
	silo_error e4 = {0};
	CHECK_INT_EQ(trust_verify_buf(&forged, 1, msg, strlen(msg), sig, strlen(sig), NULL, &e4), -1);
	CHECK_CONTAINS(e4.message, "does not match");
	free(sig);
	teardown();
}

/* minisign signs (prehashed and legacy), we verify; we sign with minisign's key, minisign verifies */
TEST(cross_verify_with_minisign_binary)
{
	if (!have_minisign())
		SKIP("minisign not installed (apt-get install minisign)");
	setup();
	REQUIRE(tree_sh("cd %s && minisign -G -W -p m.pub -s m.key >/dev/null 2>&1", tmp) == 0);
	put(P("data"), "payload signed by minisign\n");
	REQUIRE(tree_sh("cd %s && minisign -S -W -s m.key -m data -t 'release 1' >/dev/null 2>&1", tmp) == 0);
	REQUIRE(tree_sh("cd %s && minisign -S -l -W -s m.key -m data -x data.legacy.minisig >/dev/null 2>&1", tmp) == 0);
	silo_error err = {0};
	trust_pubkey pk;
	REQUIRE(trust_pubkey_load(P("m.pub"), &pk, &err) == 0);
	char *pubtxt = slurp(P("m.pub"));
	CHECK_CONTAINS(pubtxt, pk.keyid_hex); /* minisign prints the same key id */
	free(pubtxt);
	trust_result r;
	CHECK_INT_EQ(trust_verify_file(&pk, 1, P("data"), NULL, &r, &err), 0);
	CHECK_INT_EQ(r.prehashed, 1);
	CHECK_STR_EQ(r.trusted_comment, "release 1");
	CHECK_INT_EQ(trust_verify_file(&pk, 1, P("data"), P("data.legacy.minisig"), &r, &err), 0);
	CHECK_INT_EQ(r.prehashed, 0);
	/* our signer with minisign's secret key; minisign -V verifies both formats */
	trust_seckey sk;
	REQUIRE(trust_seckey_load(P("m.key"), NULL, &sk, &err) == 0);
	CHECK_STR_EQ(sk.keyid_hex, pk.keyid_hex);
	put(P("ours"), "payload signed by silo\n");
	REQUIRE(trust_sign_file(&sk, P("ours"), NULL, NULL, false, &err) == 0);
	REQUIRE(trust_sign_file(&sk, P("ours"), P("ours.l.minisig"), "legacy one", true, &err) == 0);
	CHECK_INT_EQ(tree_sh("cd %s && minisign -V -q -p m.pub -m ours", tmp), 0);
	CHECK_INT_EQ(tree_sh("cd %s && minisign -V -q -p m.pub -m ours -x ours.l.minisig", tmp), 0);
	/* minisign -H (require prehashed) refuses the legacy one: the algorithms really differ */
	CHECK(tree_sh("cd %s && minisign -V -q -H -p m.pub -m ours -x ours.l.minisig 2>/dev/null", tmp) != 0);
	/* minisign rejects a file we did not sign */
	put(P("ours"), "payload signed by silo?\n");
	CHECK(tree_sh("cd %s && minisign -V -q -p m.pub -m ours 2>/dev/null", tmp) != 0);
	/* our keygen -> minisign signs with our secret key -> we and minisign verify */
	trust_pubkey ok;
	REQUIRE(trust_keygen(P("s.pub"), P("s.key"), &ok, &err) == 0);
	put(P("d2"), "x");
	REQUIRE(tree_sh("cd %s && minisign -S -W -s s.key -m d2 >/dev/null 2>&1", tmp) == 0);
	CHECK_INT_EQ(trust_verify_file(&ok, 1, P("d2"), NULL, &r, &err), 0);
	CHECK_INT_EQ(tree_sh("cd %s && minisign -V -q -p s.pub -m d2", tmp), 0);
	teardown();
}

TEST(minisign_password_protected_key)
{
	if (!have_minisign())
		SKIP("minisign not installed");
	setup();
	REQUIRE(tree_sh("cd %s && printf 'pw1\\npw1\\n' | minisign -G -p e.pub -s e.key >/dev/null 2>&1", tmp) == 0);
	silo_error e1 = {0};
	trust_seckey sk;
	CHECK_INT_EQ(trust_seckey_load(P("e.key"), NULL, &sk, &e1), -1);
	CHECK_CONTAINS(e1.message, "password-protected");
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_seckey_load(P("e.key"), "wrong", &sk, &e2), -1);
	CHECK_CONTAINS(e2.message, "wrong password");
	silo_error err = {0};
	REQUIRE(trust_seckey_load(P("e.key"), "pw1", &sk, &err) == 0);
	put(P("f"), "encrypted key works");
	REQUIRE(trust_sign_file(&sk, P("f"), NULL, NULL, false, &err) == 0);
	CHECK_INT_EQ(tree_sh("cd %s && minisign -V -q -p e.pub -m f", tmp), 0);
	teardown();
}

TEST(malformed_keys_and_signatures_are_named)
{
	setup();
	silo_error err = {0};
	trust_pubkey pk;
	REQUIRE(trust_keygen(P("k.pub"), P("k.key"), &pk, &err) == 0);
	trust_seckey sk;
	REQUIRE(trust_seckey_load(P("k.key"), NULL, &sk, &err) == 0);
	struct {
		const char *text, *want;
	} pubs[] = {
		{"", "expected an \"untrusted comment:\""},
		{"hello: x\nRWT8jShyKj0/1ly7b7Y0WYQzVoxwazqsUQLTGfu8VbWpskuR8npCjWPZ\n", "line 1"},
		{"untrusted comment: x\n!!!notbase64!!!\n", "line 2: not valid base64"},
		{"untrusted comment: x\nRWT8jShyKj0=\n", "decodes to 8 bytes, expected 42"},
		{"untrusted comment: x\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9w\n", "algorithm"},
		{"untrusted comment: x\n", "missing the base64 key"},
		{"a\nb\nc\n", "expected an"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(pubs); i++) {
		silo_error e = {0};
		CHECK_INT_EQ(trust_pubkey_parse(pubs[i].text, strlen(pubs[i].text), &pk, &e), -1);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(e.message, pubs[i].want);
	}
	/* NUL byte inside a key */
	silo_error en = {0};
	CHECK_INT_EQ(trust_pubkey_parse("untrusted comment: \0x\nRW\n", 24, &pk, &en), -1);
	char *good = trust_sign_buf(&sk, "m", 1, "tc", false, &err);
	REQUIRE(good);
	char *l2 = strchr(good, '\n') + 1;
	char *l3 = strchr(l2, '\n') + 1;
	char *l4 = strchr(l3, '\n') + 1;
	char bad[8][2048];
	snprintf(bad[0], sizeof bad[0], "%s", "untrusted comment: only one line\n");
	snprintf(bad[1], sizeof bad[1], "nope\n%s", l2);
	snprintf(bad[2], sizeof bad[2], "%.*snot a trusted line\n%s", (int)(l3 - good), good, l4);
	snprintf(bad[3], sizeof bad[3], "%.*s%s", (int)(l4 - good), good, "AAAA\n"); /* short global sig */
	snprintf(bad[4], sizeof bad[4], "%s%s", good, "extra line\n");
	snprintf(bad[5], sizeof bad[5], "untrusted comment: x\n%s", "RUQAAAAAAAAAAA==\n" "trusted comment: x\nAAAA\n");
	const char *want[] = {"expected 4 lines", "line 1", "line 3", "line 4", "found more", "line 2"};
	for (int i = 0; i < 6; i++) {
		silo_error e = {0};
		CHECK_INT_EQ(trust_verify_buf(&pk, 1, "m", 1, bad[i], strlen(bad[i]), NULL, &e), -1);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(e.message, want[i]);
	}
	/* a trusted comment over the limit */
	char *big = xmalloc(TRUST_COMMENT_MAX + 2);
	memset(big, 'a', TRUST_COMMENT_MAX + 1);
	big[TRUST_COMMENT_MAX + 1] = '\0';
	silo_error eb = {0};
	CHECK(trust_sign_buf(&sk, "m", 1, big, false, &eb) == NULL);
	CHECK_CONTAINS(eb.message, "trusted comment");
	silo_error en2 = {0};
	CHECK(trust_sign_buf(&sk, "m", 1, "two\nlines", false, &en2) == NULL);
	free(big);
	free(good);
	/* an oversized signature file is refused before parsing */
	char *huge = xmalloc(TRUST_SIG_FILE_MAX + 10);
	memset(huge, 'A', TRUST_SIG_FILE_MAX + 9);
	huge[TRUST_SIG_FILE_MAX + 9] = '\0';
	silo_error eh = {0};
	CHECK_INT_EQ(trust_verify_buf(&pk, 1, "m", 1, huge, strlen(huge), NULL, &eh), -1);
	CHECK_CONTAINS(eh.message, "limit");
	free(huge);
	/* secret key damaged -> checksum */
	char *sec = slurp(P("k.key"));
	char *b = strchr(sec, '\n') + 1;
	b[120] = b[120] == 'A' ? 'B' : 'A';
	put(P("bad.key"), sec);
	free(sec);
	silo_error es = {0};
	CHECK_INT_EQ(trust_seckey_load(P("bad.key"), NULL, &sk, &es), -1);
	CHECK_CONTAINS(es.message, "bad.key");
	teardown();
}

TEST(keyring_add_list_remove)
{
	setup();
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	CHECK_STR_EQ(dir, P("keyring"));
	silo_error err = {0};
	trust_pubkey *v;
	size_t n;
	CHECK_INT_EQ(trust_keyring_load(dir, &v, &n, &err), 0); /* missing dir = empty */
	CHECK_INT_EQ(n, 0);
	trust_pubkey a, b, added;
	REQUIRE(trust_keygen(P("a.pub"), P("a.key"), &a, &err) == 0);
	REQUIRE(trust_keygen(P("b.pub"), P("b.key"), &b, &err) == 0);
	CHECK_INT_EQ(trust_keyring_add(dir, P("a.pub"), &added, &err), 0);
	CHECK_STR_EQ(added.keyid_hex, a.keyid_hex);
	CHECK_INT_EQ(trust_keyring_add(dir, P("b.pub"), NULL, &err), 0);
	CHECK_INT_EQ(trust_keyring_load(dir, &v, &n, &err), 0);
	CHECK_INT_EQ(n, 2);
	free(v);
	silo_error e1 = {0};
	put(P("junk.pub"), "not a key\n");
	CHECK_INT_EQ(trust_keyring_add(dir, P("junk.pub"), NULL, &e1), -1);
	CHECK_CONTAINS(e1.message, "junk.pub");
	/* a broken file dropped into the keyring is reported, not skipped */
	char jp[PATH_MAX + 16];
	snprintf(jp, sizeof jp, "%s/zz.pub", dir);
	put(jp, "garbage");
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_keyring_load(dir, &v, &n, &e2), -1);
	CHECK_CONTAINS(e2.message, "zz.pub");
	unlink(jp);
	CHECK_INT_EQ(trust_keyring_remove(dir, a.keyid_hex, &err), 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_keyring_remove(dir, a.keyid_hex, &e3), -1);
	CHECK_CONTAINS(e3.message, "no key");
	silo_error e4 = {0};
	CHECK_INT_EQ(trust_keyring_remove(dir, "../../etc/passwd", &e4), -1);
	CHECK_CONTAINS(e4.message, "1-16 hex digits");
	CHECK_INT_EQ(trust_keyring_load(dir, &v, &n, &err), 0);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(v[0].keyid_hex, b.keyid_hex);
	free(v);
	teardown();
}

static int hook_calls;
static char hook_msg[SILO_ERROR_MSG_MAX];
static void hook(void *ud, const silo_error *err)
{
	hook_calls++;
	snprintf(hook_msg, sizeof hook_msg, "%s", err->message);
}

static void sha_of(const char *path, char hex[65], uint64_t *size)
{
	silo_error err = {0};
	if (image_sha256_file(path, hex, size, &err) < 0)
		abort();
}

/* Sign the private cache's manifest with a versioned signature (what silo trust sign makes). */
static int sign_manifest(const trust_seckey *sk, uint64_t version, int64_t expires, silo_error *err)
{
	char *c = trust_versioned_comment(P("cache/images/manifest.json"), version, expires);
	int rc = trust_sign_file(sk, P("cache/images/manifest.json"), NULL, c, false, err);
	free(c);
	return rc;
}

/* A fresh key pair k.pub/k.key in the private dir, trusted by the keyring; sk (if
 * given) gets its secret key. */
static void trust_new_key(trust_seckey *sk)
{
	char dir[PATH_MAX];
	silo_error err = {0};
	trust_keyring_dir(dir, sizeof dir);
	if (trust_keygen(P("k.pub"), P("k.key"), NULL, &err) < 0 || trust_keyring_add(dir, P("k.pub"), NULL, &err) < 0 ||
	    (sk && trust_seckey_load(P("k.key"), NULL, sk, &err) < 0)) {
		printf("# %s\n", err.message);
		abort();
	}
}

static int64_t in_a_day(void)
{
	return (int64_t)time(NULL) + 86400;
}

/* A private cache with kernel, initrd and root disk files and a manifest listing them. */
static void write_store(bool kernel_sum)
{
	char d[PATH_MAX + 32];
	snprintf(d, sizeof d, "%s/cache/images/x", tmp);
	mkdir_p(d, 0755);
	snprintf(d, sizeof d, "%s/cache/kernel/k1", tmp);
	mkdir_p(d, 0755);
	put(P("cache/kernel/k1/vmlinux"), "KERNEL bytes");
	symlink("k1", P("cache/kernel/current"));
	put(P("cache/images/x/rootfs.ext4"), "ROOT disk bytes");
	put(P("cache/images/x/loader.cpio.gz"), "LOADER bytes");
	char hk[65], hr[65], hi[65];
	uint64_t sk, sr, si;
	sha_of(P("cache/kernel/k1/vmlinux"), hk, &sk);
	sha_of(P("cache/images/x/rootfs.ext4"), hr, &sr);
	sha_of(P("cache/images/x/loader.cpio.gz"), hi, &si);
	char ks[200] = "";
	if (kernel_sum)
		snprintf(ks, sizeof ks, ",\"sha256\":\"%s\",\"size\":%llu", hk, (unsigned long long)sk);
	char *m = xasprintf("{\"version\":1,\"images\":[{\"name\":\"x\",\"kind\":\"ext4\",\"path\":\"%s\","
			    "\"sha256\":\"%s\",\"size\":%llu,\"initrd\":{\"path\":\"%s\",\"sha256\":\"%s\",\"size\":%llu},"
			    "\"kernel\":{\"key\":\"k1\",\"path\":\"%s\"%s}}]}\n",
			    P("cache/images/x/rootfs.ext4"), hr, (unsigned long long)sr, P("cache/images/x/loader.cpio.gz"),
			    hi, (unsigned long long)si, P("cache/kernel/k1/vmlinux"), ks);
	put(P("cache/images/manifest.json"), m);
	free(m);
}

TEST(boot_check_against_signed_manifest)
{
	setup();
	write_store(true);
	trust_set_violation_hook(hook, NULL);
	char K[PATH_MAX + 64], I[PATH_MAX + 64], R[PATH_MAX + 64];
	snprintf(K, sizeof K, "%s", P("cache/kernel/current/vmlinux"));
	snprintf(I, sizeof I, "%s", P("cache/images/x/loader.cpio.gz"));
	snprintf(R, sizeof R, "%s", P("cache/images/x/rootfs.ext4"));
	silo_error err = {0};
	bool checked = true;
	/* no keyring: nothing checked */
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	CHECK(!checked);
	trust_new_key(NULL);
	/* keyring, unsigned manifest */
	silo_error e1 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e1), -1);
	CHECK(checked);
	CHECK_INT_EQ(e1.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e1.message, "is not signed");
	CHECK_INT_EQ(hook_calls, 1);
	CHECK_CONTAINS(hook_msg, "supply chain");
	/* signed by a key that is not in the keyring */
	trust_seckey sk;
	REQUIRE(trust_keygen(P("o.pub"), P("o.key"), NULL, &err) == 0);
	REQUIRE(trust_seckey_load(P("o.key"), NULL, &sk, &err) == 0);
	REQUIRE(sign_manifest(&sk, 1, in_a_day(), &err) == 0);
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e2), -1);
	CHECK_CONTAINS(e2.message, "not trusted");
	/* signed by the trusted key: boots */
	REQUIRE(trust_seckey_load(P("k.key"), NULL, &sk, &err) == 0);
	REQUIRE(sign_manifest(&sk, 2, in_a_day(), &err) == 0);
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	CHECK(checked);
	/* an in-place rewrite of the root disk (same size, mtime restored) is caught */
	struct stat st;
	REQUIRE(stat(R, &st) == 0);
	struct timespec nap = {0, 20 * 1000 * 1000};
	nanosleep(&nap, NULL);
	int fd = open(R, O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, "EVIL", 4, 0) == 4);
	close(fd);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	utimensat(AT_FDCWD, R, ts, 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e3), -1);
	CHECK_INT_EQ(e3.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e3.message, "rootfs.ext4");
	CHECK_CONTAINS(e3.message, "signed manifest");
	/* tampering with the manifest to match invalidates the signature */
	write_store(true); /* rewrites files and manifest (new root disk sum) without re-signing... */
	put(R, "EVIL disk bytes");
	char h[65];
	uint64_t sz;
	sha_of(R, h, &sz);
	char *m = slurp(P("cache/images/manifest.json"));
	char hr[65];
	sha_of(P("cache/images/x/loader.cpio.gz"), hr, &sz); /* unchanged */
	(void)hr;
	char *at = strstr(m, "\"sha256\":\"") + 10;
	memcpy(at, h, 64);
	put(P("cache/images/manifest.json"), m);
	free(m);
	silo_error e4 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e4), -1);
	CHECK_CONTAINS(e4.message, "does not match the content");
	/* re-signed: fine again; a kernel that is not in the manifest is refused */
	REQUIRE(sign_manifest(&sk, 3, in_a_day(), &err) == 0);
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	put(P("other-vmlinux"), "KERNEL bytes");
	silo_error e5 = {0};
	CHECK_INT_EQ(trust_check_boot(P("other-vmlinux"), I, R, &checked, &e5), -1);
	CHECK_CONTAINS(e5.message, "other-vmlinux is not listed in the signed image manifest");
	/* a manifest without the kernel's sum: told how to fix it */
	write_store(false);
	REQUIRE(sign_manifest(&sk, 4, in_a_day(), &err) == 0);
	silo_error e6 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e6), -1);
	CHECK_CONTAINS(e6.message, "prepare-images.sh");
	CHECK_INT_EQ(trust_check_boot(NULL, I, R, &checked, &err), 0);
	trust_set_violation_hook(NULL, NULL);
	teardown();
}

/* Rollback: an older signed manifest (with its own valid signature) is put back
 * after a newer one was accepted; also a reused version, an expired signature and
 * one without a version. The record survives (it is a file beside the keys). */
TEST(manifest_rollback_and_expiry_refused)
{
	setup();
	write_store(true);
	silo_error err = {0};
	trust_seckey sk;
	trust_new_key(&sk);
	char K[PATH_MAX + 64], I[PATH_MAX + 64], R[PATH_MAX + 64];
	snprintf(K, sizeof K, "%s", P("cache/kernel/current/vmlinux"));
	snprintf(I, sizeof I, "%s", P("cache/images/x/loader.cpio.gz"));
	snprintf(R, sizeof R, "%s", P("cache/images/x/rootfs.ext4"));
	bool checked;
	/* an unversioned signature (plain minisign -S) is refused with a hint */
	REQUIRE(trust_sign_file(&sk, P("cache/images/manifest.json"), NULL, NULL, false, &err) == 0);
	silo_error e0 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e0), -1);
	CHECK_INT_EQ(e0.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e0.message, "has no version");
	/* v1 boots; keep its manifest and signature */
	REQUIRE(sign_manifest(&sk, 100, in_a_day(), &err) == 0);
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	char *m1 = slurp(P("cache/images/manifest.json")), *s1 = slurp(P("cache/images/manifest.json.minisig"));
	REQUIRE(m1 && s1);
	/* v2: a rebuilt image (new disk, new manifest), signed with a higher version, boots */
	put(R, "ROOT disk bytes, release 2");
	char h[65];
	uint64_t sz;
	sha_of(R, h, &sz);
	char *m2 = slurp(P("cache/images/manifest.json"));
	char *at = strstr(m2, "\"sha256\":\"") + 10;
	memcpy(at, h, 64);
	at = strstr(m2, "\"size\":") + 7;
	char num[32];
	snprintf(num, sizeof num, "%llu", (unsigned long long)sz);
	memcpy(at, num, strlen(num)); /* 15 -> 26: same width */
	put(P("cache/images/manifest.json"), m2);
	free(m2);
	REQUIRE(sign_manifest(&sk, 200, in_a_day(), &err) == 0);
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	char *rec = slurp(P("keyring/state/manifest-version"));
	CHECK(rec && !strncmp(rec, "200 ", 4));
	free(rec);
	/* the attack: put back v1 (manifest + its valid signature) and the old disk */
	put(P("cache/images/manifest.json"), m1);
	put(P("cache/images/manifest.json.minisig"), s1);
	put(R, "ROOT disk bytes");
	silo_error e1 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e1), -1);
	CHECK_INT_EQ(e1.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e1.message, "version 100 is older than version 200");
	CHECK_CONTAINS(e1.message, "rollback refused");
	/* ... also after a "restart": the record is on disk, nothing in memory */
	silo_error e1b = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e1b), -1);
	CHECK_CONTAINS(e1b.message, "rollback refused");
	/* the same version with other content is refused too */
	REQUIRE(sign_manifest(&sk, 200, in_a_day(), &err) == 0);
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e2), -1);
	CHECK_CONTAINS(e2.message, "version 200 was already accepted with other content");
	/* expired: a newer version whose signature ran out is refused, and not recorded */
	REQUIRE(sign_manifest(&sk, 300, (int64_t)time(NULL) - 1, &err) == 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &e3), -1);
	CHECK_CONTAINS(e3.message, "expired at");
	rec = slurp(P("keyring/state/manifest-version"));
	CHECK(rec && !strncmp(rec, "200 ", 4));
	free(rec);
	/* the operator re-signs the old release with a new version: accepted */
	REQUIRE(sign_manifest(&sk, 301, in_a_day(), &err) == 0);
	CHECK_INT_EQ(trust_check_boot(K, I, R, &checked, &err), 0);
	/* the version silo trust sign picks is above everything seen */
	CHECK(trust_next_version(P("cache/images/manifest.json.minisig")) > 301);
	CHECK(trust_next_version(NULL) >= (uint64_t)time(NULL));
	free(m1);
	free(s1);
	teardown();
}

TEST(trusted_comment_versions_and_expiry_syntax)
{
	trust_version v;
	silo_error err = {0};
	CHECK_INT_EQ(trust_comment_version("timestamp:1\tfile:x\thashed\tversion:7\texpires:99", &v, &err), 0);
	CHECK(v.version == 7 && v.expires == 99);
	CHECK_INT_EQ(trust_comment_version("version:8 expires:100", &v, &err), 0); /* minisign -t '...' */
	CHECK(v.version == 8 && v.expires == 100);
	CHECK_INT_EQ(trust_comment_version("timestamp:1\tfile:x", &v, &err), 0);
	CHECK(v.version == 0 && v.expires == 0);
	static const char *const bad[] = {"version:", "version:x", "version:0", "version:1 version:2",
					  "expires:-5", "version:99999999999999999999", "expires:1e9"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		silo_error e = {0};
		CHECK_INT_EQ(trust_comment_version(bad[i], &v, &e), -1);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
	}
	int64_t t;
	int64_t now = (int64_t)time(NULL);
	CHECK_INT_EQ(trust_parse_expiry("90d", &t, &err), 0);
	CHECK(t >= now + 90 * 86400 && t <= now + 90 * 86400 + 5);
	CHECK_INT_EQ(trust_parse_expiry("12h", &t, &err), 0);
	CHECK(t >= now + 12 * 3600);
	CHECK_INT_EQ(trust_parse_expiry("2999-01-31", &t, &err), 0);
	CHECK_INT_EQ(trust_parse_expiry("2999-01-31T12:00:00Z", &t, &err), 0);
	static const char *const badx[] = {"", "0d", "-1d", "1y", "2001-01-01", "99999999999d", "tomorrow"};
	for (size_t i = 0; i < ARRAY_SIZE(badx); i++) {
		silo_error e = {0};
		CHECK_INT_EQ(trust_parse_expiry(badx[i], &t, &e), -1);
		CHECK_CONTAINS(e.message, "expires");
	}
	char *c = trust_versioned_comment("/a/b/manifest.json", 42, 4242);
	CHECK_CONTAINS(c, "file:manifest.json");
	CHECK_INT_EQ(trust_comment_version(c, &v, &err), 0);
	CHECK(v.version == 42 && v.expires == 4242);
	free(c);
}

/* A small tree like the namespace base layer: dirs, files, a symlink. */
static void make_tree(const char *root)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/bin", root);
	mkdir_p(p, 0755);
	snprintf(p, sizeof p, "%s/etc", root);
	mkdir_p(p, 0755);
	snprintf(p, sizeof p, "%s/bin/busybox", root);
	put(p, "#!/bin/sh\necho busybox\n");
	chmod(p, 0755);
	snprintf(p, sizeof p, "%s/etc/passwd", root);
	put(p, "root:x:0:0:root:/root:/bin/sh\n");
	snprintf(p, sizeof p, "%s/bin/sh", root);
	symlink("/bin/busybox", p);
}

static void record_and_sign(const char *root, const trust_seckey *sk, uint64_t version)
{
	silo_error err = {0};
	trust_tree_info info;
	if (trust_tree_digest(root, &info, &err) < 0 ||
	    image_record_tree("namespace", root, info.sha256, info.entries, info.bytes, &err) < 0 ||
	    sign_manifest(sk, version, in_a_day(), &err) < 0) {
		printf("# %s\n", err.message);
		abort();
	}
}

static bool tree_ok(const char *root)
{
	silo_error e = {0};
	bool checked = false;
	int rc = trust_check_tree(root, &checked, &e);
	if (rc < 0 && e.code != SILO_ERR_CHECKSUM_MISMATCH)
		printf("# unexpected code %s: %s\n", silo_code_name(e.code), e.message);
	return rc == 0 && checked;
}

static ino_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* The namespace base layer under a keyring: every kind of tampering with the
 * tree after it was signed is caught, also when the verdict cache is warm. */
TEST(namespace_tree_tampering_refused)
{
	setup();
	char root[PATH_MAX + 64], p[PATH_MAX + 64];
	snprintf(root, sizeof root, "%s", P("cache/ns-rootfs/0123456789abcdef"));
	make_tree(root);
	silo_error err = {0};
	bool checked = true;
	/* no keyring: nothing checked */
	CHECK_INT_EQ(trust_check_tree(root, &checked, &err), 0);
	CHECK(!checked);
	char dir[PATH_MAX];
	trust_keyring_dir(dir, sizeof dir);
	trust_seckey sk;
	trust_new_key(&sk);
	/* keyring, tree not in any manifest */
	mkdir_p(P("cache/images"), 0755);
	put(P("cache/images/manifest.json"), "{\"version\":1,\"images\":[]}\n");
	REQUIRE(sign_manifest(&sk, 1, in_a_day(), &err) == 0);
	silo_error e0 = {0};
	CHECK_INT_EQ(trust_check_tree(root, &checked, &e0), -1);
	CHECK_INT_EQ(e0.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e0.message, "is not listed in the signed image manifest");
	CHECK_CONTAINS(e0.message, "supply chain");
	/* recorded and signed: accepted; the verdict is written beside the keys */
	record_and_sign(root, &sk, 2);
	CHECK(tree_ok(root));
	char vdir[PATH_MAX];
	snprintf(vdir, sizeof vdir, "%s/state/trees", dir);
	CHECK(path_exists(vdir));
	char vfile[PATH_MAX + 128] = "";
	{
		char cmd[PATH_MAX + 64];
		snprintf(cmd, sizeof cmd, "ls %s/*.verdict", vdir);
		FILE *f = popen(cmd, "r");
		REQUIRE(f && fgets(vfile, sizeof vfile, f));
		pclose(f);
		vfile[strcspn(vfile, "\n")] = '\0';
	}
	ino_t vino = ino_of(vfile);
	CHECK(tree_ok(root));
	CHECK(ino_of(vfile) == vino); /* unchanged tree: the verdict held, no walk, no rewrite */

	/* 1. content changed in place, same size, mtime restored */
	snprintf(p, sizeof p, "%s/etc/passwd", root);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	int fd = open(p, O_WRONLY);
	REQUIRE(fd >= 0 && pwrite(fd, "evil", 4, 0) == 4);
	close(fd);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	utimensat(AT_FDCWD, p, ts, 0);
	CHECK(!tree_ok(root));
	put(p, "root:x:0:0:root:/root:/bin/sh\n");
	CHECK(tree_ok(root));
	/* 2. a file added, 3. removed */
	snprintf(p, sizeof p, "%s/etc/shadow", root);
	put(p, "x");
	CHECK(!tree_ok(root));
	unlink(p);
	CHECK(tree_ok(root));
	snprintf(p, sizeof p, "%s/etc/passwd", root);
	unlink(p);
	CHECK(!tree_ok(root));
	put(p, "root:x:0:0:root:/root:/bin/sh\n");
	CHECK(tree_ok(root));
	/* 4. a mode changed (setuid on the shell's target) */
	snprintf(p, sizeof p, "%s/bin/busybox", root);
	chmod(p, 04755);
	CHECK(!tree_ok(root));
	chmod(p, 0755);
	CHECK(tree_ok(root));
	/* 5. a symlink swapped for one pointing elsewhere */
	snprintf(p, sizeof p, "%s/bin/sh", root);
	char q[PATH_MAX + 64];
	snprintf(q, sizeof q, "%s/bin/sh.new", root);
	REQUIRE(symlink("/tmp/evil", q) == 0 && rename(q, p) == 0);
	CHECK(!tree_ok(root));
	REQUIRE(symlink("/bin/busybox", q) == 0 && rename(q, p) == 0);
	CHECK(tree_ok(root));
	/* 6. a directory replaced by a symlink to a look-alike elsewhere */
	char other[PATH_MAX + 64];
	snprintf(other, sizeof other, "%s", P("lookalike"));
	make_tree(other);
	snprintf(p, sizeof p, "%s/etc", root);
	snprintf(q, sizeof q, "%s/etc.real", root);
	REQUIRE(rename(p, q) == 0);
	char oe[PATH_MAX + 64];
	snprintf(oe, sizeof oe, "%s/etc", other);
	REQUIRE(symlink(oe, p) == 0);
	CHECK(!tree_ok(root));
	unlink(p);
	REQUIRE(rename(q, p) == 0);
	CHECK(tree_ok(root));
	/* 7. an extended attribute added (file capabilities would be one) */
	snprintf(p, sizeof p, "%s/bin/busybox", root);
	if (setxattr(p, "user.silo-test", "1", 1, 0) == 0) {
		CHECK(!tree_ok(root));
		removexattr(p, "user.silo-test");
		CHECK(tree_ok(root));
	} else {
		printf("# user xattrs not supported on %s: xattr case skipped\n", tmp);
	}
	/* 8. the whole tree swapped for a look-alike with one change */
	snprintf(q, sizeof q, "%s.orig", root);
	REQUIRE(rename(root, q) == 0);
	snprintf(p, sizeof p, "cp -a %s %s && echo x >> %s/etc/passwd", q, root, root);
	REQUIRE(tree_sh("%s", p) == 0);
	CHECK(!tree_ok(root));
	rm_rf(root);
	REQUIRE(rename(q, root) == 0);
	CHECK(tree_ok(root));
	/* 9. a forged verdict in the cache directory changes nothing: verdicts live beside the keys */
	snprintf(p, sizeof p, "%s/bin/busybox", root);
	put(p, "#!/bin/sh\necho EVIL!!\n");
	CHECK(!tree_ok(root));
	/* a FIFO and an overlayfs whiteout (image layers hold both) are part of the digest;
	 * any other device node has no place in a signed tree */
	trust_tree_info info, before;
	silo_error e9 = {0};
	CHECK_INT_EQ(trust_tree_digest(P("lookalike"), &before, &e9), 0);
	snprintf(p, sizeof p, "%s/fifo", P("lookalike"));
	REQUIRE(mkfifo(p, 0600) == 0);
	CHECK_INT_EQ(trust_tree_digest(P("lookalike"), &info, &e9), 0);
	CHECK(strcmp(info.sha256, before.sha256) != 0);
	before = info;
	REQUIRE(chmod(p, 0644) == 0);
	CHECK_INT_EQ(trust_tree_digest(P("lookalike"), &info, &e9), 0);
	CHECK(strcmp(info.sha256, before.sha256) != 0);
	if (geteuid() == 0) {
		before = info;
		snprintf(p, sizeof p, "%s/wh", P("lookalike"));
		REQUIRE(mknod(p, S_IFCHR | 0, makedev(0, 0)) == 0);
		CHECK_INT_EQ(trust_tree_digest(P("lookalike"), &info, &e9), 0);
		CHECK(strcmp(info.sha256, before.sha256) != 0);
		snprintf(p, sizeof p, "%s/null", P("lookalike"));
		REQUIRE(mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0);
		CHECK_INT_EQ(trust_tree_digest(P("lookalike"), &info, &e9), -1);
		CHECK_CONTAINS(e9.message, "device");
	}
	teardown();
}

/* A minimal ustar header for the tar walker tests. */
static void tar_hdr(uint8_t *h, const char *name, char type, size_t size, const char *prefix)
{
	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0755u | 06000u);
	snprintf((char *)h + 108, 8, "%07o", 0u);
	snprintf((char *)h + 116, 8, "%07o", 0u);
	snprintf((char *)h + 124, 12, "%011zo", size);
	snprintf((char *)h + 136, 12, "%011o", 0u);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	if (prefix)
		snprintf((char *)h + 345, 155, "%s", prefix);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

typedef struct seen_entries {
	int n;
	char paths[8][256];
	uint32_t modes[8];
	size_t sizes[8];
} seen_entries;

static int collect(void *ud, const trust_bundle_entry *e, silo_error *err)
{
	(void)err;
	seen_entries *s = ud;
	if (s->n < 8) {
		snprintf(s->paths[s->n], 256, "%s%s", e->path, e->dir ? "/" : "");
		s->modes[s->n] = e->mode;
		s->sizes[s->n] = (size_t)e->size;
	}
	s->n++;
	return 0;
}

TEST(bundle_tar_walk_validates_every_entry)
{
	uint8_t buf[512 * 16];
	memset(buf, 0, sizeof buf);
	tar_hdr(buf, "./", '5', 0, NULL);
	tar_hdr(buf + 512, "bin/", '5', 0, NULL);
	tar_hdr(buf + 1024, "run.sh", '0', 5, "bin");
	memcpy(buf + 1536, "hello", 5);
	seen_entries s = {0};
	silo_error err = {0};
	CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 6, collect, &s, &err), 0);
	CHECK_INT_EQ(s.n, 2);
	CHECK_STR_EQ(s.paths[0], "bin/");
	CHECK_STR_EQ(s.paths[1], "bin/run.sh");
	CHECK_INT_EQ(s.modes[1], 0755); /* setuid/setgid dropped */
	CHECK_INT_EQ((int)s.sizes[1], 5);
	static const struct {
		const char *name;
		char type;
		const char *why;
	} bad[] = {
		{"../etc/passwd", '0', "\"..\""}, {"/etc/passwd", '0', "absolute"}, {"a/../../b", '0', "\"..\""},
		{"link", '2', "symlink"},          {"hard", '1', "hard link"},      {"dev", '3', "device"},
		{"fifo", '6', "FIFO"},             {"a\nb", '0', "control"},        {"x", 'Z', "unknown type"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(buf, 0, sizeof buf);
		tar_hdr(buf, bad[i].name, bad[i].type, 0, NULL);
		silo_error e = {0};
		CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 3, NULL, NULL, &e), -1);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(e.message, bad[i].why);
	}
	/* size past the end, truncated archive, bad checksum, not a tar */
	memset(buf, 0, sizeof buf);
	tar_hdr(buf, "big", '0', 1 << 20, NULL);
	silo_error e1 = {0};
	CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 4, NULL, NULL, &e1), -1);
	CHECK_CONTAINS(e1.message, "past the end");
	tar_hdr(buf, "f", '0', 1, NULL);
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 2, NULL, NULL, &e2), -1);
	CHECK_CONTAINS(e2.message, "truncated");
	buf[0] ^= 1;
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 4, NULL, NULL, &e3), -1);
	CHECK_CONTAINS(e3.message, "checksum");
	silo_error e4 = {0};
	CHECK_INT_EQ(trust_bundle_walk("hello world", 11, NULL, NULL, &e4), -1);
	/* a pax path overrides the header name (and is validated the same way) */
	memset(buf, 0, sizeof buf);
	const char *rec = "30 path=../../escaped/file.py\n";
	tar_hdr(buf, "PaxHeader", 'x', strlen(rec), NULL);
	memcpy(buf + 512, rec, strlen(rec));
	tar_hdr(buf + 1024, "innocent", '0', 0, NULL);
	silo_error e5 = {0};
	CHECK_INT_EQ(trust_bundle_walk(buf, 512 * 5, NULL, NULL, &e5), -1);
	CHECK_CONTAINS(e5.message, "escaped");
	/* real archives from GNU tar in its three formats, with a name longer than 100 bytes */
	setup();
	char longdir[160];
	memset(longdir, 'd', 121);
	longdir[60] = '/'; /* two components of 60: the path is longer than ustar's 100-byte name */
	longdir[121] = '\0';
	REQUIRE(tree_sh("mkdir -p %s/b/app/lib %s/b/app/%s && echo 'print(1)' > %s/b/app/main.py && echo x > %s/b/app/lib/m.py "
		   "&& echo y > %s/b/app/%s/f.txt",
		   tmp, tmp, longdir, tmp, tmp, tmp, longdir) == 0);
	static const char *const fmts[] = {"gnu", "pax", "ustar"};
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		REQUIRE(tree_sh("tar --format=%s -C %s/b -cf %s/b.tar app 2>/dev/null", fmts[i], tmp, tmp) == 0);
		char *t = NULL;
		size_t tl = 0;
		REQUIRE(read_file(P("b.tar"), 1 << 20, &t, &tl, &err) == 0);
		seen_entries s2 = {0};
		silo_error we = {0};
		CHECK_INT_EQ(trust_bundle_walk(t, tl, collect, &s2, &we), 0);
		if (we.message[0])
			printf("# %s: %s\n", fmts[i], we.message);
		CHECK_INT_EQ(s2.n, 7); /* app, app/lib, app/d..d, app/d..d/d..d, 3 files */
		bool found = false;
		for (int k = 0; k < s2.n && k < 8; k++)
			found |= strstr(s2.paths[k], "/f.txt") && strlen(s2.paths[k]) > 125;
		CHECK(found);
		free(t);
	}
	teardown();
}

TEST(bundles_verified_before_deployment)
{
	setup();
	silo_error err = {0};
	put(P("agent.tar"), "bundle contents v1");
	silo_error e0 = {0};
	int fd = 7;
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, &fd, NULL, &e0), -1);
	CHECK_INT_EQ(fd, -1);
	CHECK_INT_EQ(e0.code, SILO_ERR_PLUGIN_UNVERIFIED);
	CHECK_CONTAINS(e0.message, "no trusted keys");
	trust_new_key(NULL);
	silo_error e1 = {0};
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, NULL, NULL, &e1), -1);
	CHECK_INT_EQ(e1.code, SILO_ERR_PLUGIN_UNVERIFIED);
	CHECK_CONTAINS(e1.message, "agent.tar.minisig");
	trust_seckey sk;
	REQUIRE(trust_seckey_load(P("k.key"), NULL, &sk, &err) == 0);
	REQUIRE(trust_sign_file(&sk, P("agent.tar"), NULL, NULL, false, &err) == 0);
	trust_result r;
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, &fd, &r, &err), 0);
	REQUIRE(fd >= 0);
	char buf[64] = {0};
	CHECK_INT_EQ(read(fd, buf, sizeof buf), 18);
	CHECK_STR_EQ(buf, "bundle contents v1");
	/* the returned copy is sealed: the deployed bytes cannot change */
	CHECK(write(fd, "x", 1) < 0);
	close(fd);
	/* tampered after signing */
	put(P("agent.tar"), "bundle contents v2");
	silo_error e2 = {0};
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, &fd, NULL, &e2), -1);
	CHECK_INT_EQ(e2.code, SILO_ERR_PLUGIN_UNVERIFIED);
	CHECK_CONTAINS(e2.message, "does not match");
	CHECK_INT_EQ(fd, -1);
	/* signed by an untrusted key */
	trust_seckey osk;
	REQUIRE(trust_keygen(P("o.pub"), P("o.key"), NULL, &err) == 0);
	REQUIRE(trust_seckey_load(P("o.key"), NULL, &osk, &err) == 0);
	REQUIRE(trust_sign_file(&osk, P("agent.tar"), NULL, NULL, true, &err) == 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, NULL, NULL, &e3), -1);
	CHECK_INT_EQ(e3.code, SILO_ERR_PLUGIN_UNVERIFIED);
	CHECK_CONTAINS(e3.message, "not trusted");
	/* a garbage signature file */
	put(P("agent.tar.minisig"), "garbage\n");
	silo_error e4 = {0};
	CHECK_INT_EQ(trust_verify_bundle(P("agent.tar"), NULL, NULL, NULL, &e4), -1);
	CHECK_INT_EQ(e4.code, SILO_ERR_PLUGIN_UNVERIFIED);
	/* directories are not bundles */
	silo_error e5 = {0};
	REQUIRE(trust_sign_file(&sk, P("agent.tar"), P("d.minisig"), NULL, false, &err) == 0);
	CHECK_INT_EQ(trust_verify_bundle(tmp, P("d.minisig"), NULL, NULL, &e5), -1);
	CHECK_CONTAINS(e5.message, "not a regular file");
	teardown();
}

/* The providers run the check before anything starts: no VMM/QEMU process, CHECKSUM_MISMATCH. */
TEST(providers_refuse_to_boot_unsigned_files)
{
	setup();
	write_store(true);
	trust_new_key(NULL);
	static const char *const provs[] = {"kvm", "qemu"};
	for (size_t i = 0; i < ARRAY_SIZE(provs); i++) {
		const provider_ops *p = provider_find(provs[i]);
		REQUIRE(p);
		static sandbox sb;
		memset(&sb, 0, sizeof sb);
		snprintf(sb.id, sizeof sb.id, "trusttest");
		snprintf(sb.rundir, sizeof sb.rundir, "%s/rd-%s", tmp, provs[i]);
		mkdir_p(sb.rundir, 0755);
		vm_spec spec;
		memset(&spec, 0, sizeof spec);
		spec.image = (char *)"x";
		spec.memory_mb = 256;
		spec.vcpus = 1;
		silo_error e = {0};
		int rc = p->spawn(&sb, &spec, &e);
		if (rc < 0 && e.code == SILO_ERR_PROVIDER_UNAVAILABLE) {
			printf("# %s: %s (skipped)\n", provs[i], e.message);
			continue;
		}
		CHECK_INT_EQ(rc, -1);
		CHECK_INT_EQ(e.code, SILO_ERR_CHECKSUM_MISMATCH);
		CHECK_CONTAINS(e.message, "not signed");
		CHECK_STR_EQ(e.vm_id, "trusttest");
		CHECK_INT_EQ(sb.pid, 0);
	}
	teardown();
}

TEST_MAIN(providers_refuse_to_boot_unsigned_files, sign_verify_roundtrip_both_algorithms, cross_verify_with_minisign_binary, minisign_password_protected_key,
	  malformed_keys_and_signatures_are_named, keyring_add_list_remove, boot_check_against_signed_manifest,
	  manifest_rollback_and_expiry_refused, trusted_comment_versions_and_expiry_syntax,
	  namespace_tree_tampering_refused, bundle_tar_walk_validates_every_entry, bundles_verified_before_deployment)
