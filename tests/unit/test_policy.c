/* SPDX-License-Identifier: Apache-2.0
 * Policy and token engines (lib/policy): parsing with field-precise errors,
 * every rule's denial (naming the policy/token and the rule), the limits a
 * policy applies to open spec fields, path normalization, egress coverage,
 * and constant-time token lookup.
 */
#include "harness.h"

#include <sodium.h>

#include "common/util.h"
#include "policy/policy.h"
#include "policy/token.h"

static const char POLICIES[] =
	"default = \"standard\"\n"
	"\n"
	"[policies.standard]\n"
	"operations = [\"exec\", \"file_read\", \"file_write\"]\n"
	"paths = [\"/workspace\", \"/tmp/\"]\n"
	"max_memory_mb = 1024\n"
	"max_vcpus = 2\n"
	"max_pids = 128\n"
	"max_lifetime_s = 600\n"
	"\n"
	"[policies.readonly]\n"
	"operations = [\"file_read\"]\n"
	"\n"
	"[policies.net]\n"
	"operations = [\"exec\", \"network\"]\n"
	"egress = [\"10.0.0.0/8\", \"pypi.org:443\"]\n";

static void load(policy_set *s)
{
	silo_error err;
	int rc = policy_set_parse(POLICIES, sizeof POLICIES - 1, s, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	REQUIRE(rc == 0);
}

static void spec_init(vm_spec *s)
{
	silo_error err;
	REQUIRE(spec_default("namespace", s, &err) == 0);
	s->vcpus = 1;
	s->memory_mb = 256;
}

static const char *meta(const vm_spec *s, const char *k)
{
	for (size_t i = 0; i < s->n_metadata; i++)
		if (!strcmp(s->metadata[i].key, k))
			return s->metadata[i].value;
	return NULL;
}

TEST(parse_policies)
{
	policy_set s;
	load(&s);
	CHECK_INT_EQ(s.n, 3);
	silo_error err;
	const policy *d = policy_find(&s, NULL, &err);
	REQUIRE(d);
	CHECK_STR_EQ(d->name, "standard");
	CHECK_INT_EQ(d->n_paths, 2);
	CHECK_STR_EQ(d->paths[1], "/tmp");   /* normalized */
	CHECK_INT_EQ(d->max_pids, 128);
	CHECK(policy_find(&s, "net", &err) != NULL);
	CHECK(policy_find(&s, "nope", &err) == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "unknown policy \"nope\" (known: standard, readonly, net)");
	policy_set_free(&s);
}

static void parse_fails(const char *text, const char *want)
{
	policy_set s;
	silo_error err = {0};
	int rc = policy_set_parse(text, strlen(text), &s, &err);
	CHECK(rc < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, want);
}

TEST(parse_errors_name_the_field)
{
	parse_fails("[policies.a]\noperations = [\"exec\", \"fly\"]\n",
		    "2:23: policies.a.operations[1]: unknown operation \"fly\"");
	parse_fails("[policies.a]\nmax_vcpus = -1\n", "2:1: policies.a.max_vcpus: expected 0..1024, got -1");
	parse_fails("[policies.a]\nmax_vcpus = \"2\"\n", "policies.a.max_vcpus: expected an integer, got string");
	parse_fails("[policies.a]\npaths = [\"relative\"]\n", "policies.a.paths[0]: expected an absolute path");
	parse_fails("[policies.a]\npaths = [\"/a/../etc\"]\n", "without \"..\"");
	parse_fails("[policies.a]\ncolour = 1\n", "policies.a.colour: unknown key");
	parse_fails("[policies.a]\negress = [\"1.2.3.4\"]\n", "an egress allow-list needs \"network\"");
	parse_fails("[policies.a]\noperations = [\"network\"]\negress = [\"[::1]:80\"]\n", "IPv6 destinations are not supported");
	parse_fails("[policies.a]\noperations = [\"network\"]\negress = [\"a.*.com\"]\n", "first label");
	parse_fails("default = \"b\"\n[policies.a]\n", "1:1: default: no policy named \"b\"");
	parse_fails("[policies.a]\n", "default: no policy named \"default\"");
	parse_fails("x = 1\n", "1:1: x: unknown key");
	parse_fails("", "policies: define at least one");
	parse_fails("[policies.\"a b\"]\n", "a policy name is 1-64 of [A-Za-z0-9_-]");
	parse_fails("[policies\n", "policy file 1:");
}

TEST(builtin_allows_everything)
{
	policy_set s;
	policy_set_builtin(&s);
	silo_error err;
	const policy *p = policy_find(&s, "", &err);
	REQUIRE(p);
	CHECK_STR_EQ(p->name, "default");
	for (int op = 0; op < POLICY_OP__COUNT; op++)
		CHECK(policy_check_path(p, (policy_op)op, "/etc/shadow", &err) == 0);
	vm_spec sp;
	spec_init(&sp);
	sp.network = true;
	sp.vcpus = 64;
	CHECK(policy_apply_spec(p, &sp, &err) == 0);
	CHECK_INT_EQ(sp.timeout_s, 0);
	CHECK_STR_EQ(meta(&sp, "policy"), "default");
	spec_free(&sp);
	policy_set_free(&s);
}

TEST(operations_rule)
{
	policy_set s;
	load(&s);
	silo_error err;
	const policy *ro = policy_find(&s, "readonly", &err);
	CHECK(policy_check_op(ro, POLICY_OP_FILE_READ, &err) == 0);
	CHECK(policy_check_op(ro, POLICY_OP_EXEC, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
	CHECK_STR_EQ(err.message, "policy \"readonly\" rule operations: exec is not allowed (allowed: file_read)");
	CHECK(policy_check_path(ro, POLICY_OP_FILE_WRITE, "/x", &err) < 0);
	CHECK_CONTAINS(err.message, "rule operations: file_write is not allowed");
	/* No operations key: everything except network. */
	policy_set t;
	const char *txt = "[policies.default]\nmax_vcpus = 1\n";
	REQUIRE(policy_set_parse(txt, strlen(txt), &t, &err) == 0);
	CHECK(policy_check_op(&t.v[0], POLICY_OP_PAUSE, &err) == 0);
	CHECK(policy_check_op(&t.v[0], POLICY_OP_NETWORK, &err) < 0);
	policy_set_free(&t);
	policy_set_free(&s);
}

TEST(paths_rule)
{
	policy_set s;
	load(&s);
	silo_error err;
	const policy *p = policy_find(&s, "standard", &err);
	CHECK(policy_check_path(p, POLICY_OP_FILE_WRITE, "/workspace", &err) == 0);
	CHECK(policy_check_path(p, POLICY_OP_FILE_WRITE, "/workspace/a/b.txt", &err) == 0);
	CHECK(policy_check_path(p, POLICY_OP_FILE_READ, "//tmp/./x", &err) == 0);
	CHECK(policy_check_path(p, POLICY_OP_EXEC, "/tmp", &err) == 0);
	CHECK(policy_check_path(p, POLICY_OP_FILE_READ, "/workspace2/x", &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"standard\" rule paths: file_read of \"/workspace2/x\" is outside the "
				  "allowed paths (/workspace, /tmp)");
	CHECK(policy_check_path(p, POLICY_OP_EXEC, "/", &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"standard\" rule paths: exec with working directory \"/\" is outside the "
				  "allowed paths (/workspace, /tmp)");
	CHECK(policy_check_path(p, POLICY_OP_FILE_READ, "/workspace/../etc/passwd", &err) < 0);
	CHECK_CONTAINS(err.message, "rule paths: file_read path \"/workspace/../etc/passwd\" must be absolute and "
				    "without \"..\"");
	CHECK(policy_check_path(p, POLICY_OP_FILE_READ, "workspace/x", &err) < 0);
	CHECK(policy_check_path(p, POLICY_OP_FILE_READ, NULL, &err) < 0);
	policy_set_free(&s);
}

TEST(normalize)
{
	char b[64];
	CHECK(policy_normalize_path("/", b, sizeof b) && !strcmp(b, "/"));
	CHECK(policy_normalize_path("///", b, sizeof b) && !strcmp(b, "/"));
	CHECK(policy_normalize_path("/a//b/./c/", b, sizeof b) && !strcmp(b, "/a/b/c"));
	CHECK(policy_normalize_path("/a/..b/c", b, sizeof b) && !strcmp(b, "/a/..b/c"));
	CHECK(!policy_normalize_path("/a/../b", b, sizeof b));
	CHECK(!policy_normalize_path("/..", b, sizeof b));
	CHECK(!policy_normalize_path("a", b, sizeof b));
	CHECK(!policy_normalize_path("", b, sizeof b));
	CHECK(!policy_normalize_path("/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789", b,
				     sizeof b));
}

TEST(egress_coverage)
{
	CHECK(policy_egress_covers("pypi.org:443", "pypi.org:443"));
	CHECK(!policy_egress_covers("pypi.org:443", "pypi.org:80"));
	CHECK(policy_egress_covers("10.0.0.0/8", "10.1.2.3"));
	CHECK(policy_egress_covers("10.0.0.0/8", "10.128.0.0/9"));
	CHECK(!policy_egress_covers("10.0.0.0/8", "10.0.0.0/7"));
	CHECK(!policy_egress_covers("10.0.0.0/8", "11.0.0.1"));
	CHECK(policy_egress_covers("0.0.0.0/0", "192.168.1.1"));
	CHECK(!policy_egress_covers("10.0.0.0/8", "example.org"));
	CHECK(!policy_egress_covers("10.0.0.0/33", "10.0.0.1"));
	/* names, wildcards, "*" and ports (lib/net/egress.c) */
	CHECK(policy_egress_covers("*", "pypi.org:443"));
	CHECK(policy_egress_covers("*", "93.184.216.0/24"));
	CHECK(!policy_egress_covers("*", "169.254.169.254"));   /* "*" is public addresses only */
	CHECK(!policy_egress_covers("*", "10.1.0.0/16"));
	CHECK(policy_egress_covers("*.github.com", "api.github.com:443"));
	CHECK(!policy_egress_covers("*.github.com", "github.com"));
	CHECK(policy_egress_covers("pypi.org", "pypi.org:443"));
	CHECK(!policy_egress_covers("pypi.org:443", "pypi.org"));
}

TEST(spec_limits)
{
	policy_set s;
	load(&s);
	silo_error err;
	const policy *p = policy_find(&s, "standard", &err);
	vm_spec sp;
	spec_init(&sp);
	sp.vcpus = 3;
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
	CHECK_STR_EQ(err.message, "policy \"standard\" rule max_vcpus: the spec asks for 3 vCPUs, the policy allows 2");
	sp.vcpus = 2;
	sp.memory_mb = 2048;
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule max_memory_mb: the spec asks for 2048 MB, the policy allows 1024 MB");
	sp.memory_mb = 1024;
	sp.pids_max = 129;
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule max_pids: the spec asks for pids_max 129, the policy allows 128");
	sp.pids_max = 0;
	sp.timeout_s = 601;
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule max_lifetime_s: the spec asks for a lifetime of 601 s, the policy allows 600 s");
	sp.timeout_s = 0;
	sp.network = true;
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "policy \"standard\" rule operations: the spec enables networking (network.enabled)");
	sp.network = false;
	/* Within the limits: open fields get the policy's limits, the name is recorded. */
	CHECK(policy_apply_spec(p, &sp, &err) == 0);
	CHECK_INT_EQ(sp.pids_max, 128);
	CHECK_INT_EQ(sp.timeout_s, 600);
	CHECK_STR_EQ(meta(&sp, "policy"), "standard");
	/* Explicit smaller values are kept. */
	sp.pids_max = 10;
	sp.timeout_s = 5;
	CHECK(policy_apply_spec(p, &sp, &err) == 0);
	CHECK_INT_EQ(sp.pids_max, 10);
	CHECK_INT_EQ(sp.timeout_s, 5);
	spec_free(&sp);
	policy_set_free(&s);
}

/* Red-team pass 2: a scoped token asked for disk_mb = 1048576 (1 TiB) without a
 * policy file and got it: the host's disk (or memory, for a VM whose run
 * directory is on tmpfs) was the sandbox's to fill. */
TEST(disk_limit)
{
	policy_set b;
	policy_set_builtin(&b);
	silo_error err;
	const policy *p = policy_find(&b, NULL, &err);
	vm_spec sp;
	spec_init(&sp);
	sp.disk_mb = SPEC_DISK_MAX_MB;
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_TOKEN, &sp, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
	CHECK_CONTAINS(err.message, "policy \"default\" rule max_disk_mb: the spec asks for disk_mb 1048576, the policy "
				    "allows 2048 (the default disk for a scoped token without a policy file)");
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_FULL, &sp, &err) == 0);   /* full access: as before */
	sp.disk_mb = 2048;
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_TOKEN, &sp, &err) == 0);
	sp.disk_mb = 0;
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_TOKEN, &sp, &err) == 0);
	CHECK_INT_EQ(sp.disk_mb, 0);   /* the default is within the limit */
	policy_set_free(&b);

	static const char txt[] = "default = \"small\"\n[policies.small]\nmax_disk_mb = 64\n";
	policy_set s;
	REQUIRE(policy_set_parse(txt, sizeof txt - 1, &s, &err) == 0);
	p = policy_find(&s, NULL, &err);
	sp.disk_mb = 65;
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_FULL, &sp, &err) < 0);   /* a policy file binds everybody */
	CHECK_CONTAINS(err.message, "policy \"small\" rule max_disk_mb: the spec asks for disk_mb 65, the policy allows 64");
	sp.disk_mb = 0;
	CHECK(policy_apply_spec_as(p, POLICY_CALLER_TOKEN, &sp, &err) == 0);
	CHECK_INT_EQ(sp.disk_mb, 64);   /* an open field gets the limit */
	spec_free(&sp);
	policy_set_free(&s);
	static const char bad[] = "default = \"x\"\n[policies.x]\nmax_disk_mb = 8\n";
	CHECK(policy_set_parse(bad, sizeof bad - 1, &s, &err) < 0);
	CHECK_CONTAINS(err.message, "policies.x.max_disk_mb");
}

TEST(network_and_egress)
{
	policy_set s;
	load(&s);
	silo_error err;
	const policy *p = policy_find(&s, "net", &err);
	vm_spec sp;
	spec_init(&sp);
	sp.network = true;
	sp.egress[sp.n_egress++] = xstrdup("10.2.0.0/16");
	sp.egress[sp.n_egress++] = xstrdup("pypi.org:443");
	CHECK(policy_apply_spec(p, &sp, &err) == 0);
	sp.egress[sp.n_egress++] = xstrdup("evil.example:443");
	CHECK(policy_apply_spec(p, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"net\" rule egress: network.egress[2] \"evil.example:443\" is not in the "
				  "allow-list");
	spec_free(&sp);
	/* No egress in the spec: the policy's allow-list applies. */
	spec_init(&sp);
	sp.network = true;
	CHECK(policy_apply_spec(p, &sp, &err) == 0);
	CHECK_INT_EQ(sp.n_egress, 2);
	CHECK_STR_EQ(sp.egress[0], "10.0.0.0/8");
	spec_free(&sp);
	/* A policy without network refuses egress entries and tap devices too. */
	const policy *ro = policy_find(&s, "readonly", &err);
	spec_init(&sp);
	sp.tap = xstrdup("tap0");
	CHECK(policy_apply_spec(ro, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "(network.tap)");
	spec_free(&sp);
	policy_set_free(&s);
}

TEST(host_paths_rule)
{
	silo_error err;
	policy_set s;
	const char *txt = "[policies.default]\n[policies.roots]\nhost_paths = [\"/srv/roots/\", \"/var/lib/silo\"]\n";
	REQUIRE(policy_set_parse(txt, strlen(txt), &s, &err) == 0);
	const policy *none = policy_find(&s, "default", &err), *roots = policy_find(&s, "roots", &err);
	vm_spec sp;
	spec_init(&sp);
	CHECK(policy_apply_spec(none, &sp, &err) == 0);   /* names no host file */
	sp.rootfs = xstrdup("/srv/roots/a");
	CHECK(policy_apply_spec(none, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"default\" rule host_paths: boot.rootfs \"/srv/roots/a\" is outside the allowed "
				  "host paths (none)");
	CHECK(policy_apply_spec(roots, &sp, &err) == 0);
	sp.kernel = xstrdup("/etc/shadow");
	CHECK(policy_apply_spec(roots, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"roots\" rule host_paths: boot.kernel \"/etc/shadow\" is outside the allowed "
				  "host paths (/srv/roots, /var/lib/silo)");
	free(sp.kernel);
	sp.kernel = xstrdup("/var/lib/silo/k");
	sp.initrd = xstrdup("/srv/roots/../../etc/passwd");
	CHECK(policy_apply_spec(roots, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule host_paths: boot.initrd \"/srv/roots/../../etc/passwd\" must be an absolute "
				    "path without \"..\"");
	free(sp.initrd);
	sp.initrd = NULL;
	sp.drives[0].path = xstrdup("/srv/rootsX/disk");
	sp.n_drives = 1;
	CHECK(policy_apply_spec(roots, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule host_paths: drives[0].path \"/srv/rootsX/disk\" is outside");
	spec_free(&sp);
	/* The built-in policy lets specs name any host file (the behaviour without a policy file). */
	policy_set b;
	policy_set_builtin(&b);
	spec_init(&sp);
	sp.kernel = xstrdup("/anything");
	CHECK(policy_apply_spec(&b.v[0], &sp, &err) == 0);
	spec_free(&sp);
	policy_set_free(&b);
	policy_set_free(&s);
}

/* A scoped token never inherits the built-in policy's "any host file": every
 * host-path field and the tap device are refused by name, as given; only a
 * policy file's host_paths / host_taps grant them. */
TEST(host_resources_for_scoped_tokens)
{
	silo_error err;
	policy_set b;
	policy_set_builtin(&b);
	const policy *def = &b.v[0];
	static const char *const fields[] = {"boot.kernel", "boot.initrd", "boot.rootfs", "drives[0].path",
					     "drives[1].path"};
	for (size_t f = 0; f < ARRAY_SIZE(fields); f++) {
		vm_spec sp;
		spec_init(&sp);
		char **slot = f == 0 ? &sp.kernel : f == 1 ? &sp.initrd : f == 2 ? &sp.rootfs : &sp.drives[f - 3].path;
		if (f >= 3) {
			sp.n_drives = f - 2;
			for (size_t i = 0; i < sp.n_drives; i++)
				sp.drives[i].path = xstrdup("");   /* unset ones are skipped */
			free(*slot);
		}
		*slot = xstrdup("/etc/shadow");
		CHECK(policy_apply_spec(def, &sp, &err) == 0);   /* full access: today's behaviour */
		CHECK(policy_apply_spec_as(def, POLICY_CALLER_TOKEN, &sp, &err) < 0);
		CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
		char want[200];
		snprintf(want, sizeof want, "policy \"default\" rule host_paths: %s \"/etc/shadow\" names a host file; a "
			 "scoped token may name none", fields[f]);
		CHECK_CONTAINS(err.message, want);
		spec_free(&sp);
	}
	vm_spec sp;
	spec_init(&sp);
	sp.tap = xstrdup("tap0");
	CHECK(policy_apply_spec(def, &sp, &err) == 0);
	CHECK(policy_apply_spec_as(def, POLICY_CALLER_TOKEN, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule host_taps: network.tap \"tap0\" names a host device");
	spec_free(&sp);
	CHECK(!policy_host_paths_listed(def, POLICY_CALLER_FULL));
	CHECK(!policy_host_paths_listed(def, POLICY_CALLER_TOKEN));
	CHECK(policy_host_path_granted(def, POLICY_CALLER_FULL, "/etc/shadow"));
	CHECK(!policy_host_path_granted(def, POLICY_CALLER_TOKEN, "/etc/shadow"));

	/* A policy file grants the same prefixes and taps to every caller. */
	policy_set s;
	const char *txt = "[policies.default]\noperations = [\"exec\", \"network\"]\nhost_paths = [\"/srv/g\"]\n"
			  "host_taps = [\"silo-tap0\"]\n";
	REQUIRE(policy_set_parse(txt, strlen(txt), &s, &err) == 0);
	const policy *g = &s.v[0];
	CHECK(policy_host_paths_listed(g, POLICY_CALLER_TOKEN));
	CHECK(policy_host_path_granted(g, POLICY_CALLER_TOKEN, "/srv/g/disk.img"));
	CHECK(!policy_host_path_granted(g, POLICY_CALLER_TOKEN, "/srv/g/../../etc/shadow"));
	CHECK(!policy_host_path_granted(g, POLICY_CALLER_TOKEN, "/srv/gx"));
	spec_init(&sp);
	sp.n_drives = 1;
	sp.drives[0].path = xstrdup("/srv/g/disk.img");
	sp.tap = xstrdup("silo-tap0");
	CHECK(policy_apply_spec_as(g, POLICY_CALLER_TOKEN, &sp, &err) == 0);
	free(sp.tap);
	sp.tap = xstrdup("eth0");
	CHECK(policy_apply_spec_as(g, POLICY_CALLER_TOKEN, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "policy \"default\" rule host_taps: network.tap \"eth0\" is not one of the allowed host "
				  "tap devices (silo-tap0)");
	CHECK(policy_apply_spec_as(g, POLICY_CALLER_FULL, &sp, &err) < 0);   /* a policy binds everyone */
	free(sp.tap);
	sp.tap = NULL;
	free(sp.drives[0].path);
	sp.drives[0].path = xstrdup("/srv/g/../../etc/shadow");
	CHECK(policy_apply_spec_as(g, POLICY_CALLER_TOKEN, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "drives[0].path \"/srv/g/../../etc/shadow\" must be an absolute path without");
	spec_free(&sp);
	parse_fails("[policies.a]\nhost_taps = [\"bad name\"]\n", "policies.a.host_taps[0]: expected an interface name");
	policy_set_free(&s);
	policy_set_free(&b);
}

/* ---- tokens ---- */

static void sha_hex(const char *secret, char out[65])
{
	unsigned char h[32];
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

/* The three tokens of this file parsed into s (after sodium_init); each of full (secret-a),
 * ci (secret-b) and one (secret-c) that is not NULL gets that token. */
static void load_tokens(token_set *s, const api_token **full, const api_token **ci, const api_token **one)
{
	REQUIRE(sodium_init() >= 0);
	char a[65], b[65], c[65];
	sha_hex("secret-a-0123456789", a);
	sha_hex("secret-b-0123456789", b);
	sha_hex("secret-c-0123456789", c);
	char *txt = xasprintf("[[tokens]]\nname = \"full\"\nsha256 = \"%s\"\n\n"
			      "[[tokens]]\nname = \"ci\"\nsha256 = \"%s\"\n"
			      "operations = [\"create\", \"exec\", \"delete\", \"inspect\"]\n"
			      "providers = [\"namespace\"]\nname_prefixes = [\"ci-\", \"build-\"]\n"
			      "max_sandboxes = 2\npolicy = \"strict\"\n\n"
			      "[[tokens]]\nname = \"one\"\nsha256 = \"%s\"\nsandbox_ids = [\"sb-000000000001\"]\n",
			      a, b, c);
	silo_error err;
	int rc = token_set_parse(txt, strlen(txt), s, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	free(txt);
	REQUIRE(rc == 0);
	const api_token **want[] = {full, ci, one};
	for (int i = 0; i < 3; i++)
		if (want[i]) {
			char secret[32];
			snprintf(secret, sizeof secret, "secret-%c-0123456789", 'a' + i);
			REQUIRE((*want[i] = token_lookup(s, secret)));
		}
}

/* Secrets that name silod's files or variables are host access like a drive:
 * only host_paths / host_env grant them (the built-in policy allows any). */
TEST(secret_references_rule)
{
	policy_set s;
	silo_error err;
	const char *txt = "[policies.default]\n[policies.granted]\nhost_paths = [\"/run/agent-secrets\"]\n"
			  "host_env = [\"AGENT_*\", \"DB_PASSWORD\"]\n";
	REQUIRE(policy_set_parse(txt, strlen(txt), &s, &err) == 0);
	const policy *def = policy_find(&s, NULL, &err), *gr = policy_find(&s, "granted", &err);
	REQUIRE(def && gr);
	vm_spec sp;
	spec_init(&sp);
	spec_set_secret(&sp, "K", SPEC_SECRET_FILE, "/etc/shadow", NULL);
	CHECK_INT_EQ(policy_apply_spec(def, &sp, &err), -1);
	CHECK_STR_EQ(err.message, "policy \"default\" rule host_paths: sandbox.secrets.K.file \"/etc/shadow\" is outside "
				  "the allowed host paths (none)");
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), -1);
	spec_set_secret(&sp, "K", SPEC_SECRET_FILE, "/run/agent-secrets/openai", NULL);
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), 0);
	spec_set_secret(&sp, "E", SPEC_SECRET_ENV, "HOME", NULL);
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), -1);
	CHECK_STR_EQ(err.message, "policy \"granted\" rule host_env: sandbox.secrets.E.env \"HOME\" is not a variable of "
				  "silod the policy lets specs read (AGENT_*, DB_PASSWORD)");
	spec_set_secret(&sp, "E", SPEC_SECRET_ENV, "AGENT_TOKEN", NULL);
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), 0);
	spec_set_secret(&sp, "E", SPEC_SECRET_ENV, "DB_PASSWORD", NULL);
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), 0);
	spec_set_secret(&sp, "E", SPEC_SECRET_ENV, "DB_PASSWORD2", NULL);
	CHECK_INT_EQ(policy_apply_spec(gr, &sp, &err), -1);
	/* inline values name nothing of the host */
	spec_free(&sp);
	spec_init(&sp);
	spec_set_secret(&sp, "V", SPEC_SECRET_VALUE, NULL, "x");
	CHECK_INT_EQ(policy_apply_spec(def, &sp, &err), 0);
	spec_free(&sp);
	/* the built-in set (no policy file) allows any, for full-access callers */
	policy_set b;
	policy_set_builtin(&b);
	spec_init(&sp);
	spec_set_secret(&sp, "E", SPEC_SECRET_ENV, "HOME", NULL);
	spec_set_secret(&sp, "F", SPEC_SECRET_FILE, "/etc/hostname", NULL);
	CHECK_INT_EQ(policy_apply_spec(&b.v[0], &sp, &err), 0);
	spec_free(&sp);
	policy_set_free(&b);
	static const char *const bad[] = {"[policies.x]\nhost_env = [\"1ABC\"]\n", "[policies.x]\nhost_env = [\"A-B\"]\n",
					  "[policies.x]\nhost_env = [\"\"]\n"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		policy_set z;
		silo_error e = {0};
		CHECK_INT_EQ(policy_set_parse(bad[i], strlen(bad[i]), &z, &e), -1);
		CHECK_CONTAINS(e.message, "policies.x.host_env[0]");
	}
	policy_set_free(&s);
}

TEST(token_parse_and_lookup)
{
	token_set s;
	load_tokens(&s, NULL, NULL, NULL);
	CHECK_INT_EQ(s.n, 3);
	const api_token *t = token_lookup(&s, "secret-b-0123456789");
	REQUIRE(t);
	CHECK_STR_EQ(t->name, "ci");
	CHECK_INT_EQ(t->max_sandboxes, 2);
	CHECK_STR_EQ(t->policy, "strict");
	CHECK(token_lookup(&s, "secret-b-012345678") == NULL);
	CHECK(token_lookup(&s, "") == NULL);
	CHECK(token_lookup(&s, NULL) == NULL);
	CHECK(token_has_scope(t));
	CHECK(!token_has_scope(token_lookup(&s, "secret-a-0123456789")));
	token_set_free(&s);
	/* An empty file has no tokens. */
	silo_error err;
	CHECK(token_set_parse("", 0, &s, &err) == 0 && s.n == 0);
	token_set_free(&s);
}

static void tok_fails(const char *text, const char *want)
{
	token_set s;
	silo_error err = {0};
	CHECK(token_set_parse(text, strlen(text), &s, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, want);
}

TEST(token_parse_errors)
{
	const char *h = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	char buf[512];
	tok_fails("[[tokens]]\nname = \"x\"\n", "tokens[0]: sha256 is required");
	snprintf(buf, sizeof buf, "[[tokens]]\nsha256 = \"%s\"\n", h);
	tok_fails(buf, "tokens[0]: name is required");
	tok_fails("[[tokens]]\nname = \"x\"\nsha256 = \"abc\"\n", "3:1: tokens[0].sha256: expected the SHA-256");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\noperations = [\"nuke\"]\n", h);
	tok_fails(buf, "tokens[0].operations: unknown operation \"nuke\"");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\nproviders = []\n", h);
	tok_fails(buf, "tokens[0].providers: an empty list would allow nothing");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\nmax_sandboxes = 0\n", h);
	tok_fails(buf, "tokens[0].max_sandboxes: expected an integer 1..100000");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x y\"\nsha256 = \"%s\"\n", h);
	tok_fails(buf, "tokens[0].name: expected 1-64 of [A-Za-z0-9_-]");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\n[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\n", h, h);
	tok_fails(buf, "tokens[1]: the name \"x\" is used twice");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\n[[tokens]]\nname = \"y\"\nsha256 = \"%s\"\n", h, h);
	tok_fails(buf, "tokens[1]: the same secret as token \"x\"");
	snprintf(buf, sizeof buf, "[[tokens]]\nname = \"x\"\nsha256 = \"%s\"\nttl = 3\n", h);
	tok_fails(buf, "tokens[0].ttl: unknown key");
	tok_fails("token = 1\n", "1:1: token: unknown key (expected [[tokens]] tables)");
	tok_fails("tokens = 1\n", "tokens: expected [[tokens]] tables, got integer");
}

TEST(token_rules)
{
	token_set s;
	const api_token *full, *ci, *one;
	load_tokens(&s, &full, &ci, &one);
	silo_error err;
	/* operations */
	CHECK(token_check_op(ci, TOKEN_OP_EXEC, &err) == 0);
	CHECK(token_check_op(ci, TOKEN_OP_LIST, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
	CHECK_STR_EQ(err.message, "token \"ci\" rule operations: list is not allowed (allowed: create, delete, exec, "
				  "inspect)");
	for (int op = 0; op < TOKEN_OP__COUNT; op++)
		CHECK(token_check_op(full, (token_op)op, &err) == 0);
	/* sandbox scope */
	CHECK(token_check_sandbox(ci, TOKEN_OP_EXEC, "sb-1", "ci-web", "namespace", &err) == 0);
	CHECK(token_check_sandbox(ci, TOKEN_OP_EXEC, "sb-1", "build-x", "namespace", &err) == 0);
	CHECK(token_check_sandbox(ci, TOKEN_OP_EXEC, "sb-1", "prod-db", "namespace", &err) < 0);
	CHECK_STR_EQ(err.message, "token \"ci\" rule name_prefixes: sandbox sb-1 (name \"prod-db\") does not start with "
				  "ci-, build-");
	CHECK(token_check_sandbox(ci, TOKEN_OP_EXEC, "sb-1", "ci-web", "qemu", &err) < 0);
	CHECK_CONTAINS(err.message, "token \"ci\" rule providers: sandbox sb-1 runs on provider \"qemu\"");
	CHECK(token_check_sandbox(ci, TOKEN_OP_FILE_READ, "sb-1", "ci-web", "namespace", &err) < 0);
	CHECK_CONTAINS(err.message, "rule operations: file_read");
	CHECK(token_check_sandbox(one, TOKEN_OP_EXEC, "sb-000000000001", "any", "qemu", &err) == 0);
	CHECK(token_check_sandbox(one, TOKEN_OP_EXEC, "sb-000000000002", "any", "qemu", &err) < 0);
	CHECK_STR_EQ(err.message, "token \"one\" rule sandbox_ids: sandbox sb-000000000002 is not one of sb-000000000001");
	/* count */
	CHECK(token_check_count(ci, 1, &err) == 0);
	CHECK(token_check_count(ci, 2, &err) < 0);
	CHECK_CONTAINS(err.message, "token \"ci\" rule max_sandboxes: 2 live sandboxes were created with this token, "
				    "the maximum is 2");
	CHECK(token_check_count(full, 100000, &err) == 0);
	token_set_free(&s);
}

TEST(token_create)
{
	token_set s;
	const api_token *ci, *one;
	load_tokens(&s, NULL, &ci, &one);
	silo_error err;
	vm_spec sp;
	spec_init(&sp);
	snprintf(sp.name, sizeof sp.name, "ci-1");
	CHECK(token_apply_create(ci, &sp, &err) == 0);
	CHECK_STR_EQ(meta(&sp, "policy"), "strict");
	CHECK_STR_EQ(meta(&sp, "silo-token"), "ci");
	snprintf(sp.name, sizeof sp.name, "web");
	CHECK(token_apply_create(ci, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "token \"ci\" rule name_prefixes: the name \"web\" does not start with ci-, build-");
	snprintf(sp.name, sizeof sp.name, "ci-2");
	free(sp.provider);
	sp.provider = xstrdup("qemu");
	CHECK(token_apply_create(ci, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "token \"ci\" rule providers: provider \"qemu\" is not one of namespace");
	free(sp.provider);
	sp.provider = NULL;
	CHECK(token_apply_create(ci, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "rule providers: the spec names no provider; name one of namespace");
	sp.provider = xstrdup("namespace");
	for (size_t i = 0; i < sp.n_metadata; i++)
		if (!strcmp(sp.metadata[i].key, "policy")) {
			free(sp.metadata[i].value);
			sp.metadata[i].value = xstrdup("lax");
		}
	CHECK(token_apply_create(ci, &sp, &err) < 0);
	CHECK_STR_EQ(err.message, "token \"ci\" rule policy: metadata.policy \"lax\": this token creates only with "
				  "policy \"strict\"");
	CHECK(token_apply_create(one, &sp, &err) < 0);
	CHECK_CONTAINS(err.message, "token \"one\" rule sandbox_ids: the token is limited to existing sandboxes");
	spec_free(&sp);
	token_set_free(&s);
}

TEST_MAIN(parse_policies, parse_errors_name_the_field, builtin_allows_everything, operations_rule, paths_rule,
	  normalize, egress_coverage, spec_limits, disk_limit, network_and_egress, host_paths_rule, host_resources_for_scoped_tokens,
	  secret_references_rule, token_parse_and_lookup, token_parse_errors,
	  token_rules, token_create)
