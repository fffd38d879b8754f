/* SPDX-License-Identifier: Apache-2.0
 * hac.toml specs: both forms, field-precise errors, capacity checks, defaults,
 * and a seeded property test (SILO_TEST_SEED=N replays): thousands of
 * generated specs -> spec_format -> spec_parse -> spec_equal.
 */
#include "harness.h"
#include "prop_test.h"

#include <time.h>

#include "common/util.h"
#include "spec/spec.h"

static int load_example(const char *name, vm_spec *s, silo_error *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/examples/%s", getenv("SILO_SOURCE_ROOT"), name);
	return spec_load(path, s, err);
}

TEST(sectioned_example)
{
	vm_spec s;
	silo_error err;
	if (load_example("sectioned.toml", &s, &err) < 0)
		printf("# %s\n", err.message);
	REQUIRE(load_example("sectioned.toml", &s, &err) == 0);
	CHECK_STR_EQ(s.name, "py-agent");
	CHECK_STR_EQ(s.provider, "qemu");
	CHECK_INT_EQ(s.vcpus, 2);
	CHECK_INT_EQ(s.memory_mb, 1024);
	CHECK_STR_EQ(s.image, "python");
	CHECK_INT_EQ(s.n_drives, 0);   /* shipped without host files: it runs as is (test_examples.sh) */
	CHECK_STR_EQ(s.workdir, "/workspace");
	CHECK_STR_EQ(spec_get_env(&s, "PYTHONUNBUFFERED"), "1");
	CHECK_INT_EQ(s.n_metadata, 2);
	CHECK_STR_EQ(s.metadata[1].key, "cost-center");
	spec_free(&s);
}

TEST(vistara_example)
{
	vm_spec s;
	silo_error err;
	REQUIRE(load_example("vistara.toml", &s, &err) == 0);
	CHECK_STR_EQ(s.name, "edge-agent");
	CHECK_INT_EQ(s.vcpus, 2);
	CHECK_INT_EQ(s.memory_mb, 1024);
	CHECK(!s.kernel && s.n_drives == 0 && !s.network);   /* the prepared kernel and image, no network */
	spec_free(&s);
	/* the host-file fields of the form */
	static const char hw[] = "[spacecore]\nname = \"edge-agent\"\n[hardware]\ncores = 2\nmemory = \"1GB\"\n"
				 "kernel = \"/var/lib/silo/kernels/vmlinux\"\ndrive = \"/var/lib/silo/images/base.ext4\"\n"
				 "interface = \"tap0\"\n[metadata]\nowner = \"ops\"\n";
	REQUIRE(spec_parse(hw, strlen(hw), &s, &err) == 0);
	CHECK_STR_EQ(s.kernel, "/var/lib/silo/kernels/vmlinux");
	CHECK_INT_EQ(s.n_drives, 1);
	CHECK(s.drives[0].root);
	CHECK(s.network);
	CHECK_STR_EQ(s.tap, "tap0");
	/* formats to the sectioned form, which parses back equal */
	char *txt = spec_format(&s);
	vm_spec t;
	REQUIRE(spec_parse(txt, strlen(txt), &t, &err) == 0);
	CHECK(spec_equal(&s, &t));
	free(txt);
	spec_free(&s);
	spec_free(&t);
}

static void expect(const char *doc, const char *want)
{
	vm_spec s;
	silo_error err;
	silo_error_clear(&err);
	if (spec_parse(doc, strlen(doc), &s, &err) == 0) {
		printf("# accepted but should fail: %s\n", doc);
		spec_free(&s);
		test_failures_++;
		return;
	}
	if (err.code != SILO_ERR_INVALID_CONFIG || strcmp(err.message, want)) {
		printf("#  got: %s %s\n# want: %s\n", silo_code_name(err.code), err.message, want);
		test_failures_++;
	}
}

TEST(errors_name_the_field_and_format)
{
	expect("[vm]\nname = \"ok\"\n[resources]\nvcpus = \"4\"\n",
	       "4:9: resources.vcpus: expected integer 1-64, got string");
	expect("[vm]\nname = \"ok\"\n[resources]\nvcpus = 65\n", "4:9: resources.vcpus: expected integer 1-64, got 65");
	expect("[vm]\nname = \"bad name!\"\n", "2:8: vm.name: expected 1-64 characters of [A-Za-z0-9_-], got \"bad name!\"");
	expect("[vm]\nname = \"ok\"\nprovidr = \"kvm\"\n",
	       "3:1: vm.providr: unknown key (known keys: name, description, provider, isolation)");
	expect("[vm]\nname = \"ok\"\nisolation = \"strong\"\n",
	       "3:13: vm.isolation: expected \"vm\" or \"any\", got \"strong\"");
	expect("[vm]\nname = \"ok\"\n[sandbox]\ndisk_mb = 8\n", "4:11: sandbox.disk_mb: expected integer 16-1048576, got 8");
	expect("[vm]\nname = \"ok\"\nprovider = \"xen\"\n",
	       "3:12: vm.provider: expected one of \"kvm\", \"qemu\", \"namespace\", got \"xen\"");
	expect("[vm]\nname = \"ok\"\n[resources]\nmemory_mb = 64\n",
	       "resources.memory_mb: expected integer 128-65536 (16 with provider \"kvm\"), got 64");
	expect("[vmm]\nname = \"x\"\n",
	       "1:1: vmm: unknown section (expected vm, resources, boot, network, drives, sandbox, metadata; or spacecore, hardware)");
	expect("[resources]\nvcpus = 1\n", "vm.name: missing required key (1-64 of [A-Za-z0-9_-])");
	expect("[vm]\nname = \"ok\"\n[[drives]]\nread_only = true\n", "3:1: drives[0]: missing required key \"path\"");
	expect("[vm]\nname = \"ok\"\n[[drives]]\npath = \"a\"\nroot = true\n[[drives]]\npath = \"b\"\nroot = true\n",
	       "drives: at most one drive may have root = true");
	expect("[vm]\nname = \"ok\"\n[sandbox]\nworkdir = \"relative\"\n",
	       "sandbox.workdir: expected an absolute path, got \"relative\"");
	expect("[vm]\nname = \"ok\"\n[sandbox.env]\n\"1BAD\" = \"x\"\n",
	       "4:1: sandbox.env.1BAD: environment names are [A-Za-z_][A-Za-z0-9_]*");
	expect("[spacecore]\nname = \"ok\"\n[hardware]\nmemory = \"12XB\"\n",
	       "4:10: hardware.memory: unknown unit \"XB\" (use MB or GB)");
	expect("[spacecore]\nname = \"ok\"\n[vm]\nname = \"x\"\n",
	       "mixes the sectioned form ([vm], [resources], ...) with Vistara's ([spacecore], [hardware])");
	expect("[vm]\nname = \"ok\"\n[network]\nmac = \"zz\"\n", "network.mac: expected \"aa:bb:cc:dd:ee:ff\", got \"zz\"");
	expect("[vm]\nname = \"ok\"\ndescription = \"nul\\u0000inside\"\n",
	       "3:15: vm.description: string must not contain NUL characters");
	/* a \u0000 key is valid TOML; as a spec key it is refused with the field named */
	expect("[vm]\nname = \"ok\"\n[metadata]\n\"team\\u0000x\" = \"a\"\n",
	       "4:1: metadata: a key may not contain NUL (\\u0000)");
	expect("[vm]\nname = \"ok\"\n[sandbox.env]\n\"A\\u0000\" = \"x\"\n", "4:1: sandbox.env: a key may not contain NUL (\\u0000)");
	expect("[vm\nname = 1\n", "1:4: expected ']' to close the table header");
	/* key errors point at the key, value errors at the value, dotted keys included */
	expect("[vm]\nname = \"ok\"\n  resources.vcpus = 2\n",
	       "3:3: vm.resources: unknown key (known keys: name, description, provider, isolation)");
	expect("vm.name = \"ok\"\nresources = { vcpus = 2, memory_mb = true }\n",
	       "2:38: resources.memory_mb: expected integer MB or a string like \"512MB\" or \"2GB\", got boolean");
	expect("[vm]\nname = \"ok\"\n[network]\nenabled = 1\n", "4:11: network.enabled: expected boolean (true or false), got integer");
	expect("[vm]\nname = \"ok\"\n[[drives]]\npath = \"/a\"\nread_only = \"yes\"\n",
	       "5:13: drives[0].read_only: expected boolean (true or false), got string");
}

TEST(kvm_allows_small_memory)
{
	vm_spec s;
	silo_error err;
	const char *doc = "[vm]\nname = \"tiny\"\nprovider = \"kvm\"\n[resources]\nmemory_mb = 16\n";
	REQUIRE(spec_parse(doc, strlen(doc), &s, &err) == 0);
	CHECK_INT_EQ(s.memory_mb, 16);
	spec_free(&s);
}

TEST(capacity_checks)
{
	vm_spec s;
	silo_error err;
	REQUIRE(spec_default("namespace", &s, &err) == 0);
	host_capacity host = {.cpus = 2, .memory_mb = 4096};
	unsetenv("SILO_MEM_OVERCOMMIT");
	unsetenv("SILO_CPU_OVERCOMMIT");
	CHECK(spec_check_capacity(&s, &host, 0, 0, &err) == 0);
	s.vcpus = 4;
	CHECK(spec_check_capacity(&s, &host, 0, 0, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	CHECK_CONTAINS(err.message, "vcpus: 4 requested but the host has 2 cores");
	s.vcpus = 2;
	CHECK(spec_check_capacity(&s, &host, 0, 3700, &err) < 0);
	CHECK_CONTAINS(err.message, "memory_mb: 512 requested, 396 MB free");
	CHECK(spec_check_capacity(&s, &host, 31, 0, &err) < 0);
	CHECK_CONTAINS(err.message, "vcpus: 2 requested, 31 of 32 allocatable");
	setenv("SILO_MEM_OVERCOMMIT", "2", 1);
	CHECK(spec_check_capacity(&s, &host, 0, 3700, &err) == 0);
	/* the ratios given to the manager (silod --cpu-/--memory-overcommit) win over the environment */
	host.memory_overcommit = 1.0;
	CHECK(spec_check_capacity(&s, &host, 0, 3700, &err) < 0);
	host.cpu_overcommit = 500;
	CHECK(spec_check_capacity(&s, &host, 997, 0, &err) == 0);
	CHECK(spec_check_capacity(&s, &host, 999, 0, &err) < 0);
	CHECK_CONTAINS(err.message, "999 of 1000 allocatable");
	CHECK(host_memory_overcommit(&host) == 1.0);
	unsetenv("SILO_MEM_OVERCOMMIT");
	host_capacity real;
	REQUIRE(host_capacity_read(&real, &err) == 0);
	CHECK(real.cpus >= 1 && real.memory_mb >= 128);
	spec_free(&s);
}

TEST(defaults_per_provider)
{
	static const char *const provs[] = {"kvm", "qemu", "namespace"};
	for (size_t i = 0; i < 3; i++) {
		vm_spec s;
		silo_error err;
		REQUIRE(spec_default(provs[i], &s, &err) == 0);
		CHECK_INT_EQ(s.vcpus, 2);
		CHECK_INT_EQ(s.memory_mb, 512);
		CHECK_STR_EQ(s.provider, provs[i]);
		CHECK(spec_validate(&s, &err) == 0);
		char *txt = spec_format(&s);
		vm_spec t;
		CHECK(spec_parse(txt, strlen(txt), &t, &err) == 0 && spec_equal(&s, &t));
		free(txt);
		spec_free(&s);
		spec_free(&t);
	}
	vm_spec s;
	silo_error err;
	CHECK(spec_default("xen", &s, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
}

/* ---- property test ---- */

static char *gen_text(size_t max, bool hostile)
{
	static const char *const pieces[] = {"a", "Z", "0", "_", "-", " ", "\"", "\\", "'", "\n", "\t", "\x01",
					     "\x7f", "#", "=", "[", "]", "{", "}", ".", "\xc3\xa9", "\xf0\x9f\x98\x80",
					     "\"\"\"", "'''", "\\u0041", "\r\n"};
	size_t n = rnd() % (max + 1);
	char *s = xcalloc(1, n * 8 + 1);
	for (size_t i = 0; i < n; i++)
		strcat(s, hostile ? pieces[rnd() % ARRAY_SIZE(pieces)] : pieces[rnd() % 5]);
	return s;
}

static char *gen_ident(size_t min, size_t max)
{
	static const char cs[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	size_t n = min + rnd() % (max - min + 1);
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = cs[rnd() % (sizeof cs - 1)];
	s[n] = '\0';
	return s;
}

static void gen_spec(vm_spec *s)
{
	static const char *const provs[] = {"kvm", "qemu", "namespace"};
	memset(s, 0, sizeof *s);
	char *name = gen_ident(1, 64);
	snprintf(s->name, sizeof s->name, "%s", name);
	free(name);
	if (rnd() % 2)
		s->description = gen_text(40, true);
	if (rnd() % 4)
		s->provider = xstrdup(provs[rnd() % 3]);
	s->vcpus = 1 + (uint32_t)(rnd() % 64);
	s->memory_mb = 128 + (uint32_t)(rnd() % (65536 - 128 + 1));
	if (rnd() % 2) s->kernel = gen_text(30, true);
	if (rnd() % 3 == 0) s->initrd = gen_text(30, true);
	if (rnd() % 3 == 0) s->rootfs = gen_text(30, true);
	if (rnd() % 3 == 0) s->image = gen_ident(1, 20);
	if (rnd() % 3 == 0) s->cmdline = gen_text(60, true);
	if (rnd() % 3 == 0) s->boot_timeout_ms = (uint32_t)(rnd() % 600001);
	s->network = rnd() % 2;
	if (rnd() % 4 == 0) s->tap = gen_ident(1, 15);
	if (rnd() % 4 == 0) s->mac = xasprintf("%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(rnd() & 0xff), (unsigned)(rnd() & 0xff),
					       (unsigned)(rnd() & 0xff), (unsigned)(rnd() & 0xff), (unsigned)(rnd() & 0xff), (unsigned)(rnd() & 0xff));
	s->n_egress = rnd() % 4;
	for (size_t i = 0; i < s->n_egress; i++)
		s->egress[i] = xasprintf("host%zu.example:%u", i, 1u + (unsigned)(rnd() % 65535));
	s->n_drives = rnd() % 4;
	bool root_taken = false;
	for (size_t i = 0; i < s->n_drives; i++) {
		s->drives[i].id = xasprintf("d%zu-%u", i, (unsigned)(rnd() % 1000));
		char *p = gen_text(30, true);
		s->drives[i].path = xasprintf("/%s", p);
		free(p);
		s->drives[i].read_only = rnd() % 2;
		if (!root_taken && rnd() % 2)
			s->drives[i].root = root_taken = true;
	}
	if (rnd() % 2) {
		char *w = gen_text(20, true);
		s->workdir = xasprintf("/%s", w);
		free(w);
	}
	if (rnd() % 3 == 0) s->timeout_s = (uint32_t)(rnd() % 100000);
	if (rnd() % 3 == 0) s->pids_max = (uint32_t)(rnd() % 4194305);
	if (rnd() % 3 == 0) s->disk_mb = SPEC_DISK_MIN_MB + (uint32_t)(rnd() % 100000);
	if (rnd() % 4 == 0) s->isolation = xstrdup(rnd() % 2 ? "vm" : "any");
	size_t ne = rnd() % 5;
	for (size_t i = 0; i < ne; i++) {
		char *k = xasprintf("K%zu_%u", i, (unsigned)(rnd() % 100));
		char *v = gen_text(20, true);
		spec_set_env(s, k, v);
		free(k), free(v);
	}
	size_t ns = rnd() % 4;
	for (size_t i = 0; i < ns; i++) {
		char *k = xasprintf("S%zu_%u", i, (unsigned)(rnd() % 100));
		char *v = gen_text(24, true);
		unsigned kind = (unsigned)(rnd() % 3);
		if (kind == 0 && strcmp(v, SPEC_SECRET_REDACTED) != 0) {
			spec_set_secret(s, k, SPEC_SECRET_VALUE, NULL, v);
		} else if (kind == 1) {
			char *ref = xasprintf("/%s", v);
			spec_set_secret(s, k, SPEC_SECRET_FILE, ref, NULL);
			free(ref);
		} else {
			char *ref = xasprintf("E%u", (unsigned)(rnd() % 1000));
			spec_set_secret(s, k, SPEC_SECRET_ENV, ref, NULL);
			free(ref);
		}
		free(k), free(v);
	}
	s->n_metadata = rnd() % 5;
	for (size_t i = 0; i < s->n_metadata; i++) {
		char *k = gen_text(10, true);
		s->metadata[i].key = xasprintf("%zu%s", i, k); /* non-empty, unique */
		free(k);
		s->metadata[i].value = gen_text(20, true);
	}
}

/* [sandbox.secrets]: the three forms, their errors (never quoting a value),
 * redaction, reading files and variables, and the exec environment. */
TEST(secrets_parse_format_resolve)
{
	char dir[] = "/tmp/silo-spec-secrets.XXXXXX";
	REQUIRE(mkdtemp(dir));
	char file[64];
	snprintf(file, sizeof file, "%s/pw", dir);
	silo_error err = {0};
	REQUIRE(write_file_atomic(file, "file-value-42\n", 14, 0600, &err) == 0);
	setenv("SILO_SPEC_TEST_SECRET", "env-value-43", 1);
	char *doc = xasprintf("[vm]\nname = \"s\"\n[sandbox.env]\nPLAIN = \"p\"\n[sandbox.secrets]\n"
			      "INLINE = \"inline-value-41\"\nFROM_FILE = {file = \"%s\"}\n"
			      "FROM_ENV = {env = \"SILO_SPEC_TEST_SECRET\"}\nGONE = \"***\"\n",
			      file);
	vm_spec s;
	REQUIRE(spec_parse(doc, strlen(doc), &s, &err) == 0);
	free(doc);
	CHECK_INT_EQ(s.n_secrets, 4);
	CHECK_STR_EQ(s.secrets[0].value, "inline-value-41");
	CHECK(s.secrets[3].value == NULL); /* "***": the value is not there */
	char *txt = spec_format(&s);
	CHECK(!strstr(txt, "inline-value-41"));
	CHECK_CONTAINS(txt, "INLINE = \"***\"");
	CHECK_CONTAINS(txt, "FROM_ENV = {env = \"SILO_SPEC_TEST_SECRET\"}");
	free(txt);
	txt = spec_format_with_secrets(&s);
	CHECK_CONTAINS(txt, "inline-value-41");
	free(txt);
	/* a create needs every value; a restore tolerates a redacted one */
	silo_error e1 = {0};
	CHECK_INT_EQ(spec_resolve_secrets(&s, SPEC_SECRETS_STRICT, &e1), -1);
	CHECK_CONTAINS(e1.message, "sandbox.secrets.GONE: the value was redacted");
	CHECK_INT_EQ(spec_resolve_secrets(&s, 0, &err), 0);
	CHECK_STR_EQ(s.secrets[1].value, "file-value-42"); /* trailing newline dropped */
	CHECK_STR_EQ(s.secrets[2].value, "env-value-43");
	/* the exec environment: env, secrets, then the call's own; a missing value is CONFLICT */
	silo_error e2 = {0};
	CHECK(spec_exec_env(&s, NULL, &e2) == NULL);
	CHECK_INT_EQ(e2.code, SILO_ERR_CONFLICT);
	CHECK_CONTAINS(e2.message, "secret GONE is not available");
	char *extra[] = {"GONE=supplied", "PLAIN=override", NULL};
	char **env = spec_exec_env(&s, extra, &err);
	REQUIRE(env);
	char joined[512] = "";
	for (char **x = env; *x; x++)
		snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s;", *x);
	CHECK_STR_EQ(joined, "PLAIN=override;INLINE=inline-value-41;FROM_FILE=file-value-42;FROM_ENV=env-value-43;GONE=supplied;");
	spec_env_free(env);
	/* copies keep values (in memory), redaction drops them, equality sees them */
	vm_spec c;
	spec_copy(&c, &s);
	CHECK(spec_equal(&c, &s));
	spec_redact(&c);
	CHECK(!spec_equal(&c, &s));
	CHECK(c.secrets[0].value == NULL && c.secrets[1].ref != NULL);
	spec_free(&c);
	spec_free(&s);
	/* errors name the field and never the value */
	static const struct {
		const char *doc, *want;
	} bad[] = {
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\n1X = \"v\"\n", "secret names are"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = {file = \"rel/path\"}\n", "sandbox.secrets.K.file: expected an absolute host path"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = {env = \"A-B\"}\n", "sandbox.secrets.K.env: expected an environment variable name"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = {file = \"/a\", env = \"B\"}\n", "expected exactly one of file or env"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = {url = \"x\"}\n", "sandbox.secrets.K.url: unknown key"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = 5\n", "sandbox.secrets.K: expected a string"},
		{"[vm]\nname=\"s\"\n[sandbox.env]\nK = \"x\"\n[sandbox.secrets]\nK = \"hunter2-secret\"\n", "also given in sandbox.env"},
		{"[vm]\nname=\"s\"\n[sandbox.secrets]\nK = \"hunter2-\\u0000\"\n", "must not contain NUL"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		silo_error e = {0};
		vm_spec x;
		CHECK_INT_EQ(spec_parse(bad[i].doc, strlen(bad[i].doc), &x, &e), -1);
		CHECK_CONTAINS(e.message, bad[i].want);
		CHECK(!strstr(e.message, "hunter2"));
	}
	char *big = xmalloc(SPEC_SECRET_MAX + 64);
	memset(big, 'z', SPEC_SECRET_MAX + 63);
	big[SPEC_SECRET_MAX + 63] = '\0';
	memcpy(big, "hunter2", 7);
	char *bdoc = xasprintf("[vm]\nname=\"s\"\n[sandbox.secrets]\nK = \"%s\"\n", big);
	silo_error eb = {0};
	vm_spec x;
	CHECK_INT_EQ(spec_parse(bdoc, strlen(bdoc), &x, &eb), -1);
	CHECK_CONTAINS(eb.message, "at most 32768 bytes");
	CHECK(!strstr(eb.message, "hunter2"));
	free(bdoc);
	free(big);
	/* a missing file or variable names the secret */
	vm_spec m = {0};
	snprintf(m.name, sizeof m.name, "m");
	spec_set_secret(&m, "F", SPEC_SECRET_FILE, "/nonexistent/silo-secret", NULL);
	spec_set_secret(&m, "E", SPEC_SECRET_ENV, "SILO_SPEC_TEST_UNSET", NULL);
	silo_error e3 = {0};
	CHECK_INT_EQ(spec_resolve_secrets(&m, SPEC_SECRETS_KEEP_GOING, &e3), -1);
	CHECK_CONTAINS(e3.message, "sandbox.secrets.F");
	spec_free(&m);
	unsetenv("SILO_SPEC_TEST_SECRET");
	rm_rf(dir);
}

TEST(property_format_parse_round_trip)
{
	rnd_seed_env();
	int ok = 0, n = 5000;
	for (int i = 0; i < n; i++) {
		vm_spec s, t;
		silo_error err;
		gen_spec(&s);
		if (spec_validate(&s, &err) < 0) {
			printf("# generator produced an invalid spec: %s\n", err.message);
			spec_free(&s);
			continue;
		}
		/* the stored form never holds a secret's value: it parses back to the redacted spec,
		 * and does not depend on the values at all */
		char *txt = spec_format(&s);
		vm_spec r;
		spec_copy(&r, &s);
		spec_redact(&r);
		char *rtxt = spec_format(&r);
		/* the transport form (CLI -> silod, in memory) keeps them */
		char *wtxt = spec_format_with_secrets(&s);
		vm_spec w;
		bool wok = spec_parse(wtxt, strlen(wtxt), &w, &err) == 0 && spec_equal(&s, &w);
		if (wok)
			spec_free(&w);
		if (spec_parse(txt, strlen(txt), &t, &err) < 0) {
			printf("# iteration %d: %s\n---\n%s---\n", i, err.message, txt);
		} else if (!spec_equal(&r, &t) || strcmp(txt, rtxt) != 0 || !wok) {
			printf("# iteration %d: parsed spec differs (redacted %d, values kept %d)\n", i, spec_equal(&r, &t),
			       wok);
			spec_free(&t);
		} else {
			ok++;
			spec_free(&t);
		}
		free(wtxt);
		free(rtxt);
		free(txt);
		spec_free(&r);
		spec_free(&s);
	}
	CHECK_INT_EQ(ok, n);
}

TEST_MAIN(sectioned_example, vistara_example, errors_name_the_field_and_format, kvm_allows_small_memory,
	  capacity_checks, defaults_per_provider, secrets_parse_format_resolve, property_format_parse_round_trip)
