/* SPDX-License-Identifier: Apache-2.0
 * Host id ranges of namespace sandboxes (lib/providers/ns-ids.c) in a private
 * slot directory: /etc/subuid-format parsing, allocation from distinct slots,
 * a slot of a dead owner reclaimed (and swept when elsewhere) and one of a
 * live owner (or a reused pid) never, a slot directory others can write
 * refused, the hand-over to the sandbox init, release only by the owner, and
 * a user namespace made from the computed map; the clone3 CLONE_INTO_CGROUP
 * of the init on a cgroup v2 hierarchy (wherever one is mounted: this host's
 * v1/v2 hybrid has an empty /sys/fs/cgroup/unified).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/util.h"
#include "harness.h"
#include "providers/ns.h"

static char dir[PATH_MAX];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/silo-ns-ids-test.XXXXXX");
	if (!mkdtemp(dir))
		abort();
}

static void teardown(void)
{
	rm_rf(dir);
}

static void put(int slot, const char *text)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/%d", dir, slot);
	REQUIRE(write_file_atomic(p, text, strlen(text), 0600, NULL) == 0);
}

/* A pid that certainly belonged to a process that is gone. */
static pid_t dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

TEST(subuid_entries_parse)
{
	uint32_t s = 0, c = 0;
	CHECK_INT_EQ(ns_ids_parse_sub("root:100000:65536\nsilo:200000:131072\n", "silo", &s, &c), 1);
	CHECK_INT_EQ(s, 200000);
	CHECK_INT_EQ(c, 131072);
	CHECK_INT_EQ(ns_ids_parse_sub("silo:300000:65536", "silo", &s, &c), 1);   /* no final newline */
	CHECK_INT_EQ(s, 300000);
	CHECK_INT_EQ(ns_ids_parse_sub("silox:1:65536\nroot:5:65536\n", "silo", &s, &c), 0);
	CHECK_INT_EQ(ns_ids_parse_sub("", "silo", &s, &c), 0);
	CHECK_INT_EQ(ns_ids_parse_sub("silo:100000:1000\n", "silo", &s, &c), -1);          /* < 65536 ids */
	CHECK_INT_EQ(ns_ids_parse_sub("silo:0:65536\n", "silo", &s, &c), -1);              /* would map host root */
	CHECK_INT_EQ(ns_ids_parse_sub("silo:4294901760:65536\n", "silo", &s, &c), -1);     /* reaches 2^32-1 */
	CHECK_INT_EQ(ns_ids_parse_sub("silo:abc:65536\n", "silo", &s, &c), -1);
	CHECK_INT_EQ(ns_ids_parse_sub("silo:100000:65536x\n", "silo", &s, &c), -1);
	CHECK_INT_EQ(ns_ids_parse_sub("silo:100000\n", "silo", &s, &c), -1);
}

TEST(the_pool_is_unprivileged)
{
	ns_id_pool p;
	silo_error err = {0};
	REQUIRE(ns_ids_pool(&p, &err) == 0);
	CHECK(p.slots >= 1);
	CHECK(p.uid_base >= NS_IDS_SIZE && p.gid_base >= NS_IDS_SIZE);
	CHECK((uint64_t)p.uid_base + (uint64_t)p.slots * NS_IDS_SIZE - 1 <= 0xfffffffeull);
}

TEST(allocations_get_distinct_ranges_and_records_name_the_owner)
{
	setup();
	ns_ids a, b;
	silo_error err = {0};
	REQUIRE(ns_ids_alloc(dir, "sb-aaaa", &a, &err) == 0);
	REQUIRE(ns_ids_alloc(dir, "sb-aaaa", &b, &err) == 0);   /* same hash start: must probe on */
	CHECK(a.slot != b.slot);
	CHECK(a.uid != b.uid && a.gid != b.gid);
	CHECK(a.uid >= NS_IDS_SIZE);
	CHECK_INT_EQ((a.uid > b.uid ? a.uid - b.uid : b.uid - a.uid) % NS_IDS_SIZE, 0);
	CHECK(ns_ids_held(dir, a.slot, getpid()));
	ns_ids_release(dir, a.slot, getpid() + 1);   /* not the owner: stays */
	CHECK(ns_ids_held(dir, a.slot, getpid()));
	ns_ids_release(dir, a.slot, getpid());
	CHECK(!ns_ids_held(dir, a.slot, getpid()));
	ns_ids c;
	REQUIRE(ns_ids_alloc(dir, "sb-aaaa", &c, &err) == 0);
	CHECK_INT_EQ(c.slot, a.slot);   /* freed: the first probe takes it again */
	teardown();
}

TEST(dead_owners_are_reclaimed_live_ones_and_garbage_are_not)
{
	setup();
	ns_ids a;
	silo_error err = {0};
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	int first = a.slot;
	ns_ids_release(dir, first, getpid());
	char txt[96];
	/* a live owner (the test's parent), with its real start time */
	char state;
	unsigned long long start;
	REQUIRE(ns_proc_stat(getppid(), &state, &start) == 0);
	snprintf(txt, sizeof txt, "%d %llu sb-live\n", (int)getppid(), start);
	put(first, txt);
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	CHECK(a.slot != first);
	ns_ids_release(dir, a.slot, getpid());
	/* the same live pid with another start time: a reused pid, the owner is gone */
	snprintf(txt, sizeof txt, "%d %llu sb-reused\n", (int)getppid(), start + 1);
	put(first, txt);
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	CHECK_INT_EQ(a.slot, first);
	ns_ids_release(dir, a.slot, getpid());
	/* a dead pid */
	snprintf(txt, sizeof txt, "%d 1 sb-dead\n", (int)dead_pid());
	put(first, txt);
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	CHECK_INT_EQ(a.slot, first);
	ns_ids_release(dir, a.slot, getpid());
	/* a dead owner's record anywhere else is swept by the next allocation */
	int far = (first + 1000) % (int)NS_IDS_DEFAULT_SLOTS;
	snprintf(txt, sizeof txt, "%d 1 sb-gone\n", (int)dead_pid());
	put(far, txt);
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	char farp[PATH_MAX + 16];
	snprintf(farp, sizeof farp, "%s/%d", dir, far);
	CHECK(!path_exists(farp));
	ns_ids_release(dir, a.slot, getpid());
	/* something that is not a record: not ours to judge */
	put(first, "garbage\n");
	REQUIRE(ns_ids_alloc(dir, "sb-bbbb", &a, &err) == 0);
	CHECK(a.slot != first);
	teardown();
}

TEST(a_slot_directory_others_can_write_is_refused)
{
	setup();
	REQUIRE(chmod(dir, 0777) == 0);
	ns_ids a;
	silo_error err = {0};
	CHECK(ns_ids_alloc(dir, "sb-dddd", &a, &err) < 0);
	CHECK(err.code == SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, dir);
	teardown();
}

TEST(the_init_takes_the_slot_over)
{
	setup();
	ns_ids a;
	silo_error err = {0};
	REQUIRE(ns_ids_alloc(dir, "sb-cccc", &a, &err) == 0);
	int pp[2];
	REQUIRE(pipe(pp) == 0);
	pid_t kid = fork();
	if (kid == 0) {
		char c;
		close(pp[1]);
		(void)!read(pp[0], &c, 1);
		_exit(0);
	}
	close(pp[0]);
	char path[PATH_MAX + 16], tmpp[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%d", dir, a.slot);
	snprintf(tmpp, sizeof tmpp, "%s/.%d.tmp", dir, a.slot);
	CHECK(ns_ids_own(path, tmpp, kid, "sb-cccc") == 0);
	CHECK(!path_exists(tmpp));
	CHECK(ns_ids_held(dir, a.slot, kid));
	CHECK(!ns_ids_held(dir, a.slot, getpid()));
	ns_ids b;
	REQUIRE(ns_ids_alloc(dir, "sb-cccc", &b, &err) == 0);
	CHECK(b.slot != a.slot);   /* the child is alive */
	ns_ids_release(dir, b.slot, getpid());
	close(pp[1]);
	waitpid(kid, NULL, 0);
	REQUIRE(ns_ids_alloc(dir, "sb-cccc", &b, &err) == 0);
	CHECK_INT_EQ(b.slot, a.slot);   /* the child is gone: free again */
	teardown();
}

TEST(userns_fd_maps_the_range)
{
	if (geteuid() != 0)
		SKIP("mapping a host id range needs root");
	int fd = ns_userns_fd(0, 1610612736u, 0, 1610612736u, NS_IDS_SIZE, NULL);
	REQUIRE(fd >= 0);
	int pp[2];
	REQUIRE(pipe(pp) == 0);
	pid_t kid = fork();
	if (kid == 0) {
		close(pp[0]);
		if (setns(fd, CLONE_NEWUSER) < 0)
			_exit(1);
		int m = open("/proc/self/uid_map", O_RDONLY);
		char buf[128] = "";
		ssize_t n = m >= 0 ? read(m, buf, sizeof buf - 1) : -1;
		(void)!write(pp[1], buf, n > 0 ? (size_t)n : 0);
		_exit(0);
	}
	close(pp[1]);
	char buf[128] = "";
	ssize_t n = read(pp[0], buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	waitpid(kid, NULL, 0);
	unsigned long in = 9, out = 0, cnt = 0;
	CHECK(sscanf(buf, "%lu %lu %lu", &in, &out, &cnt) == 3);
	CHECK(in == 0 && out == 1610612736ul && cnt == NS_IDS_SIZE);
	close(fd);
}

static void *holders(void *arg)
{
	(void)arg;
	for (int i = 0; i < 300; i++) {
		pid_t h = 0;
		int fd = ns_userns_fd(0, 1610612736u, 0, 1610612736u, NS_IDS_SIZE, &h);
		if (fd >= 0)
			close(fd);
		ns_userns_reap(&h);
	}
	return NULL;
}

/* Two threads making user namespaces at once (silod spawning concurrently):
 * each holder is a clone with its own copy of the fd table; one that kept
 * the other's pipe (or a lock the other held) waited for an EOF that never
 * came, and both creators waited for their holders forever (found when a
 * silod under load stopped, holding the host-wide id lock). A hang is
 * turned into a failure by the alarm. */
TEST(concurrent_userns_holders_never_wait_on_each_other)
{
	if (geteuid() != 0)
		SKIP("mapping a host id range needs root");
	alarm(60);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		REQUIRE(pthread_create(&t[i], NULL, holders, NULL) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	alarm(0);
	CHECK(1);
}

/* The init of a v2 host is born in its cgroup: clone3 CLONE_INTO_CGROUP with the
 * namespace flags the provider uses. The child reads its own /proc/self/cgroup. */
TEST(clone_into_a_cgroup2_directory)
{
	if (geteuid() != 0)
		SKIP("needs root (cgroup directories, namespaces)");
	static const char *const roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	char cgdir[PATH_MAX] = "";
	for (size_t i = 0; i < ARRAY_SIZE(roots) && !cgdir[0]; i++) {
		char probe[PATH_MAX];
		snprintf(probe, sizeof probe, "%s/cgroup.procs", roots[i]);
		struct stat sb;
		snprintf(cgdir, sizeof cgdir, "%s/silo-clone-test-%d", roots[i], (int)getpid());
		if (stat(probe, &sb) < 0 || access(roots[i], W_OK) < 0 || mkdir(cgdir, 0755) < 0 ||
		    access(strcat(strcpy(probe, cgdir), "/cgroup.procs"), F_OK) < 0) {
			rmdir(cgdir);
			cgdir[0] = '\0';
		}
	}
	if (!cgdir[0])
		SKIP("no writable cgroup v2 hierarchy here");
	int cg = open(cgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(cg >= 0);
	int pp[2];
	REQUIRE(pipe(pp) == 0);
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
	long pid = ns_clone_into_cgroup(flags, cg);
	if (pid < 0 && (errno == ENOSYS || errno == E2BIG)) {
		rmdir(cgdir);
		SKIP("no clone3 here: the provider joins the cgroup instead");
	}
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(pp[0]);
		char buf[512];
		int fd = open("/proc/self/cgroup", O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		/* and it is pid 1 of its own namespace */
		int ok = getpid() == 1 && write(pp[1], buf, strlen(buf)) > 0;
		_exit(ok ? 0 : 1);
	}
	close(pp[1]);
	char got[512] = "";
	ssize_t n = read(pp[0], got, sizeof got - 1);
	got[n > 0 ? n : 0] = '\0';
	close(pp[0]);
	int st = 0;
	waitpid((pid_t)pid, &st, 0);
	close(cg);
	char want[128];
	snprintf(want, sizeof want, "0::/silo-clone-test-%d\n", (int)getpid());
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);   /* pid 1 of a new pid namespace */
	CHECK(strstr(got, want) != NULL);
	if (!strstr(got, want))
		printf("# /proc/self/cgroup: %s\n", got);
	CHECK(rmdir(cgdir) == 0);   /* and it left with the child: nothing to migrate back */
}

TEST_MAIN(subuid_entries_parse, the_pool_is_unprivileged, allocations_get_distinct_ranges_and_records_name_the_owner,
	  dead_owners_are_reclaimed_live_ones_and_garbage_are_not, a_slot_directory_others_can_write_is_refused,
	  the_init_takes_the_slot_over, userns_fd_maps_the_range, concurrent_userns_holders_never_wait_on_each_other,
	  clone_into_a_cgroup2_directory)
