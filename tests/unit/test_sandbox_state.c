/* SPDX-License-Identifier: Apache-2.0
 * Sandbox state machine: names round-trip, the transition table matches the
 * diagram in docs/architecture.md, and provider lookup/selection errors. */
#include <string.h>

#include "core/provider.h"
#include "core/sandbox.h"
#include "harness.h"

TEST(state_names_round_trip)
{
	for (int s = 0; s < SB__STATE_COUNT; s++) {
		const char *n = sb_state_name((sb_state)s);
		CHECK(n && strcmp(n, "unknown") != 0);
		CHECK(sb_state_from_name(n) == s);
	}
	CHECK(sb_state_from_name("bogus") == -1);
	CHECK(sb_state_from_name(NULL) == -1);
	CHECK(!strcmp(sb_state_name(SB__STATE_COUNT), "unknown"));
	CHECK(!strcmp(sb_state_name(SB_PROVISIONING), "provisioning"));
	CHECK(!strcmp(sb_state_name(SB_TERMINATED), "terminated"));
}

TEST(transitions_follow_the_diagram)
{
	static const struct {
		sb_state from, to;
		bool ok;
	} cases[] = {
		{SB_PROVISIONING, SB_RUNNING, true},  {SB_PROVISIONING, SB_ERROR, true},
		{SB_PROVISIONING, SB_PAUSED, false},  {SB_PROVISIONING, SB_TERMINATED, false},
		{SB_RUNNING, SB_PAUSED, true},        {SB_RUNNING, SB_STOPPING, true},
		{SB_RUNNING, SB_ERROR, true},         {SB_RUNNING, SB_PROVISIONING, false},
		{SB_RUNNING, SB_TERMINATED, false},   {SB_PAUSED, SB_RUNNING, true},
		{SB_PAUSED, SB_STOPPING, true},       {SB_STOPPING, SB_TERMINATED, true},
		{SB_STOPPING, SB_RUNNING, false},     {SB_TERMINATED, SB_RUNNING, false},
		{SB_TERMINATED, SB_ERROR, false},     {SB_ERROR, SB_STOPPING, true},
		{SB_ERROR, SB_RUNNING, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CHECK(sb_state_transition_ok(cases[i].from, cases[i].to) == cases[i].ok);
	CHECK(!sb_state_transition_ok(SB__STATE_COUNT, SB_RUNNING));
	CHECK(!sb_state_transition_ok(SB_RUNNING, SB__STATE_COUNT));
}

struct seen {
	int n;
	sb_state last_old, last_new;
};

static void cb(void *ud, sandbox *sb, sb_state old, sb_state new_state, const char *reason)
{
	(void)sb;
	(void)reason;
	struct seen *s = ud;
	s->n++;
	s->last_old = old;
	s->last_new = new_state;
}

TEST(set_state_reports_legal_transitions_only)
{
	sandbox sb;
	memset(&sb, 0, sizeof sb);
	pthread_mutex_init(&sb.lock, NULL);
	struct seen s = {0};
	sb.on_state = cb;
	sb.on_state_ud = &s;
	sb.state = SB_PROVISIONING;
	sandbox_set_state(&sb, SB_RUNNING, "ready");
	CHECK(s.n == 1 && s.last_old == SB_PROVISIONING && s.last_new == SB_RUNNING);
	CHECK(!strcmp(sb.state_reason, "ready"));
	sandbox_set_state(&sb, SB_PROVISIONING, "illegal");
	CHECK(s.n == 1 && sandbox_get_state(&sb) == SB_RUNNING);
	sandbox_set_state(&sb, SB_RUNNING, "same");
	CHECK(s.n == 1);
	sandbox_set_state(&sb, SB_STOPPING, "bye");
	sandbox_set_state(&sb, SB_TERMINATED, "gone");
	CHECK(s.n == 3 && sandbox_get_state(&sb) == SB_TERMINATED);
	pthread_mutex_destroy(&sb.lock);
}

TEST(provider_table)
{
	CHECK(provider_find("namespace") != NULL);
	CHECK(provider_find("qemu") != NULL);
	CHECK(provider_find("nope") == NULL);
	const provider_ops *const *all = provider_all();
	size_t n = 0;
	while (all[n])
		n++;
	REQUIRE(n >= 2);
	CHECK(!strcmp(all[n - 1]->name, "namespace"));   /* weakest isolation last */
	silo_error err = {0};
	char why[256];
	CHECK(provider_select("nope", NULL, why, sizeof why, &err) == NULL);
	CHECK(err.code == SILO_ERR_INVALID_CONFIG && strstr(err.message, "nope"));
	CHECK(provider_select(NULL, "nope1,nope2", why, sizeof why, &err) == NULL);
	CHECK(err.code == SILO_ERR_PROVIDER_UNAVAILABLE && strstr(why, "nope1"));
}

TEST_MAIN(state_names_round_trip, transitions_follow_the_diagram, set_state_reports_legal_transitions_only,
	  provider_table)
