/* SPDX-License-Identifier: Apache-2.0
 * silo-oci's config.json reader (runtime/config.c): what podman and containerd
 * write is read whole; every malformed or hostile field is refused by name.
 */
#include "harness.h"

#include <sys/resource.h>

#include "common/util.h"
#include "runtime/rt.h"

/* A config.json as podman 4.3 writes it (trimmed), with a volume and a tmpfs. */
static const char podman_like[] =
	"{\"ociVersion\":\"1.0.2-dev\",\"process\":{\"user\":{\"uid\":1000,\"gid\":1000,\"additionalGids\":[1000,10]},"
	"\"args\":[\"/bin/sh\",\"-c\",\"echo hi\"],\"env\":[\"PATH=/usr/bin:/bin\",\"TERM=xterm\",\"container=podman\"],"
	"\"cwd\":\"/srv\",\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"]},\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\","
	"\"hard\":4096,\"soft\":4096},{\"type\":\"RLIMIT_NPROC\",\"hard\":4096,\"soft\":1024}],\"terminal\":true,"
	"\"consoleSize\":{\"height\":40,\"width\":120},\"oomScoreAdj\":0},"
	"\"root\":{\"path\":\"rootfs\",\"readonly\":false},\"hostname\":\"a1b2c3\","
	"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\",\"options\":[\"nosuid\"]},"
	"{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/srv/vol\",\"options\":[\"rbind\",\"ro\"]},"
	"{\"destination\":\"/scratch\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"size=64m\",\"mode=1777\",\"uid=0\"]}],"
	"\"hooks\":{\"poststop\":[{\"path\":\"/usr/bin/true\",\"args\":[\"true\"],\"timeout\":5}]},"
	"\"annotations\":{\"run.silo.provider\":\"namespace\",\"io.podman.annotations.autoremove\":\"TRUE\"},"
	"\"linux\":{\"resources\":{\"memory\":{\"limit\":268435456},\"cpu\":{\"quota\":150000,\"period\":100000},"
	"\"pids\":{\"limit\":2048}},\"namespaces\":[{\"type\":\"pid\"}],\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\"}}}";

TEST(podman_config_read_whole)
{
	rt_config c;
	silo_error err = {0};
	int rc = rt_config_parse(podman_like, strlen(podman_like), "/b", &c, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	REQUIRE(rc == 0);
	CHECK_STR_EQ(c.root, "/b/rootfs");
	CHECK_STR_EQ(c.hostname, "a1b2c3");
	CHECK(c.process.terminal);
	CHECK_INT_EQ(c.process.rows, 40);
	CHECK_INT_EQ(c.process.cols, 120);
	CHECK_INT_EQ(c.process.uid, 1000);
	CHECK_INT_EQ(c.process.ngids, 2);
	CHECK_STR_EQ(c.process.args[2], "echo hi");
	CHECK_STR_EQ(c.process.cwd, "/srv");
	CHECK_INT_EQ(c.process.nrlimits, 2);
	CHECK(c.process.rlimits[1].resource == RLIMIT_NPROC && c.process.rlimits[1].soft == 1024);
	CHECK_INT_EQ(c.nmounts, 3);
	CHECK(c.mounts[1].bind && c.mounts[1].ro && !strcmp(c.mounts[1].source, "/srv/vol"));
	CHECK(c.mounts[2].tmpfs && !strcmp(c.mounts[2].tmpfs_opts, "size=64m,mode=1777"));
	CHECK_INT_EQ(c.nhooks[RT_HOOK_POSTSTOP], 1);
	CHECK_INT_EQ(c.hooks[RT_HOOK_POSTSTOP][0].timeout_s, 5);
	CHECK(c.memory_limit == 268435456);
	CHECK(c.cpu_quota == 150000 && c.cpu_period == 100000);
	CHECK(c.pids_limit == 2048);
	CHECK_STR_EQ(json_string_value(json_object_get(c.annotations, "run.silo.provider")), "namespace");
	/* the process round-trips through the form exec sends to the supervisor */
	json_t *j = rt_process_json(&c.process);
	rt_process p2;
	REQUIRE(rt_process_parse(j, "process", &p2, &err) == 0);
	CHECK_STR_EQ(p2.args[0], "/bin/sh");
	CHECK(p2.uid == 1000 && p2.ngids == 2 && p2.nrlimits == 2 && p2.terminal);
	rt_process_free(&p2);
	json_decref(j);
	rt_config_free(&c);
}

/* Each mutation is refused, naming the field. */
TEST(malformed_fields_refused_by_name)
{
	static const struct {
		const char *json, *field;
	} bad[] = {
		{"{\"ociVersion\":\"invalid\",\"root\":{\"path\":\"r\"}}", "ociVersion"},
		{"{\"ociVersion\":\"2.0.0\",\"root\":{\"path\":\"r\"}}", "ociVersion"},
		{"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"../../etc\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"}}", "root.path"},
		{"{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"}}", "ociVersion"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[],\"cwd\":\"/\"}}", "process.args"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\",7],\"cwd\":\"/\"}}", "process.args[1]"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\\u0000b\"],\"cwd\":\"/\"}}", "line 1 column"}, /* jansson refuses NUL */
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"}}", "process.cwd"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"env\":[\"NOEQUALS\"]}}", "process.env[0]"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"user\":{\"uid\":-1}}}", "process.user.uid"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"user\":{\"uid\":4294967295}}}", "process.user.uid"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"rlimits\":[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]}}", "process.rlimits[0]"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":9,\"hard\":1}]}}", "process.rlimits[0]"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"mounts\":[{\"destination\":\"/a/../../etc\",\"type\":\"bind\",\"source\":\"/x\"}]}", "mounts[0].destination"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"mounts\":[{\"destination\":\"/a\",\"type\":\"bind\",\"source\":\"rel\"}]}", "mounts[0].source"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"mounts\":[{\"destination\":\"/t\",\"type\":\"tmpfs\",\"options\":[\"size=1;rm -rf\"]}]}", "mounts[0].options"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"hooks\":{\"prestart\":[{\"path\":\"rel\"}]}}", "hooks.prestart[0].path"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"annotations\":{\"k\":1}}", "annotations.k"},
		{"{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},\"linux\":{\"resources\":{\"memory\":{\"limit\":\"x\"}}}}", "linux.resources.memory.limit"},
		{"{\"ociVersion\":\"1.0.0\",\"ociVersion\":\"2\"}", "duplicate"},
		{"[1,2]", "expected an object"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		rt_config c;
		silo_error err = {0};
		int rc = rt_config_parse(bad[i].json, strlen(bad[i].json), "/b", &c, &err);
		CHECK(rc < 0 && err.code == SILO_ERR_INVALID_CONFIG);
		if (!strstr(err.message, bad[i].field))
			printf("# case %zu: \"%s\" does not name %s\n", i, err.message, bad[i].field);
		CHECK(strstr(err.message, bad[i].field) != NULL);
	}
}

/* runtime-spec: process is required only when start is called */
TEST(process_optional_until_start)
{
	static const char j[] = "{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"/r\"}}";
	rt_config c;
	silo_error err = {0};
	REQUIRE(rt_config_parse(j, strlen(j), "/b", &c, &err) == 0);
	CHECK(!c.has_process && !c.process.args);
	rt_config_free(&c);
}

TEST(limits_bound_the_input)
{
	/* 5000 arguments: over RT_MAX_ARGS */
	size_t cap = 5000 * 6 + 256, at = 0;
	char *big = xmalloc(cap);
	at += (size_t)snprintf(big + at, cap - at, "{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"r\"},\"process\":{\"cwd\":\"/\",\"args\":[");
	for (int i = 0; i < 5000; i++)
		at += (size_t)snprintf(big + at, cap - at, "%s\"a\"", i ? "," : "");
	snprintf(big + at, cap - at, "]}}");
	rt_config c;
	silo_error err = {0};
	CHECK(rt_config_parse(big, strlen(big), "/b", &c, &err) < 0);
	CHECK_CONTAINS(err.message, "process.args");
	free(big);
	/* more than RT_CONFIG_MAX bytes */
	char *huge = xcalloc(1, RT_CONFIG_MAX + 2);
	memset(huge, ' ', RT_CONFIG_MAX + 1);
	CHECK(rt_config_parse(huge, RT_CONFIG_MAX + 1, "/b", &c, &err) < 0);
	CHECK_CONTAINS(err.message, "bytes");
	free(huge);
}

TEST(signal_names)
{
	CHECK_INT_EQ(rt_signal_parse("KILL"), SIGKILL);
	CHECK_INT_EQ(rt_signal_parse("SIGTERM"), SIGTERM);
	CHECK_INT_EQ(rt_signal_parse("sigusr1"), SIGUSR1);
	CHECK_INT_EQ(rt_signal_parse("9"), 9);
	CHECK_INT_EQ(rt_signal_parse("RTMIN+1"), SIGRTMIN + 1);
	CHECK_INT_EQ(rt_signal_parse("65"), -1);
	CHECK_INT_EQ(rt_signal_parse("BOGUS"), -1);
	CHECK_INT_EQ(rt_signal_parse(""), -1);
	CHECK(rt_id_valid("a1b2c3-d.e_f+g"));
	CHECK(!rt_id_valid("../x") && !rt_id_valid(".x") && !rt_id_valid("-x") && !rt_id_valid("a/b") && !rt_id_valid(""));
}

TEST_MAIN(podman_config_read_whole, malformed_fields_refused_by_name, process_optional_until_start, limits_bound_the_input,
	  signal_names)
