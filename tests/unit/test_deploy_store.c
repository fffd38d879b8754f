/* SPDX-License-Identifier: Apache-2.0
 * Deployment store against a real SQLite file (next to a real registry in the
 * same file), and the --set overrides of lib/core/deploy.c.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/deploy.h"
#include "harness.h"
#include "db_test.h"
#include "tmp_test.h"
#include "registry/deploy_store.h"
#include "registry/registry.h"
#include "spec/spec.h"

static char *tmpdb(void)
{
	return tmp_path("silo-dstore", "registry.db");
}

static void fill(dstore_row *r, const char *name, const char *team)
{
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", name);
	snprintf(r->team, sizeof r->team, "%s", team);
	snprintf(r->restart, sizeof r->restart, "on-failure");
	snprintf(r->state, sizeof r->state, "starting");
	r->spec_toml = (char *)"[vm]\nname = \"x\"\n";
	r->overrides_json = (char *)"[\"vcpus=2\"]";
	r->vcpus = 2;
	r->memory_mb = 256;
	r->created_ms = r->updated_ms = 1000;
}

TEST(rows_round_trip_beside_the_registry)
{
	char *p = tmpdb();
	silo_error e;
	registry *reg;
	REQUIRE(registry_open(p, &reg, &e) == 0);   /* same file, both schemas */
	dstore *s;
	REQUIRE(dstore_open(p, &s, &e) == 0);
	dstore_row a, b;
	fill(&a, "web", "alpha");
	fill(&b, "api", "beta");
	REQUIRE(dstore_insert(s, &a, &e) == 0);
	REQUIRE(dstore_insert(s, &b, &e) == 0);
	CHECK(dstore_insert(s, &a, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_CONFLICT);
	CHECK_CONTAINS(e.message, "deployment 'web' already exists");
	snprintf(a.state, sizeof a.state, "running");
	snprintf(a.sandbox_id, sizeof a.sandbox_id, "sb-000000000001");
	a.restarts = 3;
	REQUIRE(dstore_put(s, &a, &e) == 0);
	dstore_row *v;
	size_t n;
	REQUIRE(dstore_list(s, &v, &n, &e) == 0);
	REQUIRE(n == 2);
	CHECK_STR_EQ(v[0].name, "api");   /* sorted by name */
	CHECK_STR_EQ(v[1].name, "web");
	CHECK_STR_EQ(v[1].state, "running");
	CHECK_STR_EQ(v[1].sandbox_id, "sb-000000000001");
	CHECK_INT_EQ(v[1].restarts, 3);
	CHECK_STR_EQ(v[1].spec_toml, "[vm]\nname = \"x\"\n");
	CHECK_STR_EQ(v[1].overrides_json, "[\"vcpus=2\"]");
	CHECK_INT_EQ(v[1].memory_mb, 256);
	dstore_rows_free(v, n);
	REQUIRE(dstore_delete(s, "api", &e) == 0);
	dstore_close(s);
	/* Reopen: persisted, schema not re-applied. */
	REQUIRE(dstore_open(p, &s, &e) == 0);
	REQUIRE(dstore_list(s, &v, &n, &e) == 0);
	CHECK(n == 1 && !strcmp(v[0].name, "web"));
	dstore_rows_free(v, n);
	dstore_close(s);
	registry_close(reg);
	cleanup_tmp(p);
}

TEST(usage_accumulates_and_alerts_fire_once)
{
	char *p = tmpdb();
	silo_error e;
	dstore *s;
	REQUIRE(dstore_open(p, &s, &e) == 0);
	dstore_usage u[2] = {{.team = "alpha", .agent = "web", .vcpu_ms = 1000, .mib_ms = 256000},
			     {.team = "alpha", .agent = "api", .vcpu_ms = 5, .mib_ms = 7}};
	REQUIRE(dstore_usage_add(s, u, 2, &e) == 0);
	REQUIRE(dstore_usage_add(s, u, 1, &e) == 0);
	dstore_usage *v;
	size_t n;
	REQUIRE(dstore_usage_list(s, &v, &n, &e) == 0);
	REQUIRE(n == 2);
	CHECK_STR_EQ(v[1].agent, "web");
	CHECK_INT_EQ(v[1].vcpu_ms, 2000);
	CHECK_INT_EQ(v[1].mib_ms, 512000);
	CHECK_INT_EQ(v[0].vcpu_ms, 5);
	free(v);
	bool first;
	REQUIRE(dstore_alert_once(s, "alpha", 80, 10.0, &first, &e) == 0);
	CHECK(first);
	REQUIRE(dstore_alert_once(s, "alpha", 80, 10.0, &first, &e) == 0);
	CHECK(!first);
	REQUIRE(dstore_alert_once(s, "alpha", 100, 10.0, &first, &e) == 0);
	CHECK(first);
	REQUIRE(dstore_alert_once(s, "alpha", 80, 20.0, &first, &e) == 0);   /* raised budget: re-armed */
	CHECK(first);
	dstore_close(s);
	cleanup_tmp(p);
}

TEST(newer_schema_is_refused)
{
	char *p = tmpdb();
	silo_error e;
	dstore *s;
	REQUIRE(dstore_open(p, &s, &e) == 0);
	dstore_close(s);
	db_exec(p, "UPDATE deploy_schema SET version = 99");
	CHECK(dstore_open(p, &s, &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(e.message, "deployment schema version 99 is newer");
	cleanup_tmp(p);
}

TEST(overrides_apply_and_name_bad_keys)
{
	vm_spec s = {0};
	silo_error e;
	REQUIRE(spec_default("namespace", &s, &e) == 0);
	CHECK(deploy_apply_override(&s, "resources.memory_mb=300", &e) == 0);
	CHECK(deploy_apply_override(&s, "vcpus=3", &e) == 0);
	CHECK(deploy_apply_override(&s, "sandbox.env.MODE=prod", &e) == 0);
	CHECK(deploy_apply_override(&s, "metadata.tier=gold", &e) == 0);
	CHECK(deploy_apply_override(&s, "metadata.tier=silver", &e) == 0);   /* replaces */
	CHECK(deploy_apply_override(&s, "network.enabled=false", &e) == 0);
	CHECK(deploy_apply_override(&s, "sandbox.workdir=/srv", &e) == 0);
	CHECK_INT_EQ(s.memory_mb, 300);
	CHECK_INT_EQ(s.vcpus, 3);
	CHECK_STR_EQ(spec_get_env(&s, "MODE"), "prod");
	CHECK_STR_EQ(s.workdir, "/srv");
	size_t tiers = 0;
	for (size_t i = 0; i < s.n_metadata; i++)
		if (!strcmp(s.metadata[i].key, "tier")) {
			tiers++;
			CHECK_STR_EQ(s.metadata[i].value, "silver");
		}
	CHECK_INT_EQ(tiers, 1);
	CHECK(spec_validate(&s, &e) == 0);

	CHECK(deploy_apply_override(&s, "resources.cpus=2", &e) < 0);
	CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(e.message, "resources.cpus: unknown key");
	CHECK(deploy_apply_override(&s, "vcpus=-1", &e) < 0);
	CHECK_CONTAINS(e.message, "vcpus: expected an integer");
	CHECK(deploy_apply_override(&s, "vcpus=65", &e) < 0);
	CHECK(deploy_apply_override(&s, "novalue", &e) < 0);
	CHECK_CONTAINS(e.message, "expected KEY=VALUE");
	CHECK(deploy_apply_override(&s, "=x", &e) < 0);
	CHECK(deploy_apply_override(&s, "network.enabled=yes", &e) < 0);
	CHECK_CONTAINS(e.message, "expected true or false");
	CHECK(deploy_apply_override(&s, "metadata.silo.team=x", &e) < 0);
	CHECK_CONTAINS(e.message, "reserved");
	CHECK(deploy_apply_override(&s, "sandbox.env.MODE=p\x8e\x8a" "d", &e) < 0);   /* TOML is UTF-8 */
	CHECK_CONTAINS(e.message, "byte 18 of");
	CHECK_CONTAINS(e.message, "is not valid UTF-8");
	CHECK(deploy_apply_override(&s, "vm.description=a\x15" "b", &e) < 0);           /* control character */
	CHECK_CONTAINS(e.message, "byte 16 is the control character 0x15");
	CHECK(deploy_apply_override(&s, "metadata.k=\xc0\xaf", &e) < 0);            /* overlong */
	CHECK(deploy_apply_override(&s, "metadata.k=\xed\xa0\x80", &e) < 0);       /* surrogate */
	CHECK(deploy_apply_override(&s, "metadata.k=caf\xc3\xa9 \xf0\x9f\x99\x82", &e) == 0);
	CHECK(deploy_apply_override(&s, "resources.memory_mb=64", &e) == 0);   /* range: spec_validate */
	CHECK(spec_validate(&s, &e) < 0);
	CHECK_CONTAINS(e.message, "memory_mb");
	spec_free(&s);
}

TEST(teams_file_errors_name_the_key)
{
	char *p = tmpdb();
	char *f = xasprintf("%s/teams.toml", tmpdir_);
	silo_error e;
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[rates]\nvcpu_second = 0.1\ngib_second = 2\n[teams.a]\nmax_sandboxes = 1\nbudget = 3.5\n", NULL},
		{"[teams.a]\nmax_cpus = 1\n", "2:1: teams.a.max_cpus: unknown key"},
		{"[teams.a]\nmax_vcpus = -1\n", "teams.a.max_vcpus: expected an integer"},
		{"[teams.a]\nbudget = \"lots\"\n", "teams.a.budget: expected a number"},
		{"[rates]\nper_hour = 1\n", "rates.per_hour: unknown key"},
		{"[teams.\"a b\"]\n", "expected a table named 1-64"},
		{"colour = 1\n", "colour: unknown key"},
		{"[teams\n", NULL /* syntax error */},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		REQUIRE(write_file_atomic(f, cases[i].text, strlen(cases[i].text), 0600, &e) == 0);
		int rc = deploy_check_teams(f, &e);
		if (i == 0) {
			CHECK(rc == 0);
			continue;
		}
		CHECK(rc < 0);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		if (cases[i].want)
			CHECK_CONTAINS(e.message, cases[i].want);
	}
	free(f);
	cleanup_tmp(p);
}

TEST_MAIN(rows_round_trip_beside_the_registry, usage_accumulates_and_alerts_fire_once, newer_schema_is_refused,
	  overrides_apply_and_name_bad_keys, teams_file_errors_name_the_key)
