/* SPDX-License-Identifier: Apache-2.0
 * lib/core/owner.c in a private runtime dir, with real processes, a real
 * tmpfs mount and a real loop device: the record parser against hostile
 * records; the sweep's ownership rules (a dead owner's sandbox is torn down;
 * a live owner's, a locked record, another silod's, a young unwritten record
 * and a run dir without a record are not); the watchdog tearing down the
 * sandbox of an owner that dies without a word, and at a deadline while the
 * owner lives.
 */
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "common/util.h"
#include "core/owner.h"
#include "harness.h"

static char tmp[PATH_MAX], rt[PATH_MAX + 16];

static void setup(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/silo-owner-test.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	snprintf(rt, sizeof rt, "%s/run", tmp);
	setenv("SILO_RUNTIME_DIR", rt, 1);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/owners", rt);
	mkdir_p(p, 0700);
	snprintf(p, sizeof p, "%s/sandboxes", rt);
	mkdir_p(p, 0700);
}

static void path_of(char *buf, size_t len, const char *kind, const char *id)
{
	snprintf(buf, len, "%s/%s/%s", rt, kind, id);
}

static void write_rec(const char *id, const char *text)
{
	char p[PATH_MAX + 64];
	path_of(p, sizeof p, "owners", id);
	silo_error err = {0};
	if (write_file_atomic(p, text, strlen(text), 0600, &err) < 0)
		abort();
}

static bool rec_exists(const char *id)
{
	char p[PATH_MAX + 64];
	path_of(p, sizeof p, "owners", id);
	return path_exists(p);
}

static bool rundir_exists(const char *id)
{
	char p[PATH_MAX + 64];
	path_of(p, sizeof p, "sandboxes", id);
	return path_exists(p);
}

/* A process carrying the sandbox's tag (as QEMU's -name silo-<id> does). */
static pid_t tagged(const char *id)
{
	char tag[96];
	snprintf(tag, sizeof tag, "silo-%s", id);
	pid_t p = fork();
	if (p == 0) {
		setsid();   /* reparented to init when we exit: not our zombie to reap */
		execlp("sleep", tag, "60", (char *)NULL);
		_exit(1);
	}
	return p;
}

static bool gone_within(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (!owner_proc_alive(pid, 0))
			return true;
		waitpid(pid, NULL, WNOHANG);
		usleep(10 * 1000);
	}
	return !owner_proc_alive(pid, 0);
}

/* A pid that is certainly dead (a reaped child). */
static pid_t dead_pid(unsigned long long *start)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	owner_proc_start(p, start);
	waitpid(p, NULL, 0);
	return p;
}

TEST(parse_round_trip_and_hostile_records)
{
	owner_rec r = {.kind = SB_OWNER_DAEMON, .owner_pid = 42, .owner_start = 7, .sb_pid = 43, .sb_start = 8,
		       .client_pid = 44, .client_start = 9};
	snprintf(r.provider, sizeof r.provider, "qemu");
	snprintf(r.state_dir, sizeof r.state_dir, "/var/lib/silo");
	char buf[OWNER_REC_MAX];
	int n = owner_format(&r, buf, sizeof buf);
	REQUIRE(n > 0);
	owner_rec back;
	silo_error err = {0};
	REQUIRE(owner_parse(buf, (size_t)n, &back, &err) == 0);
	CHECK(back.kind == SB_OWNER_DAEMON && back.owner_pid == 42 && back.owner_start == 7);
	CHECK(back.sb_pid == 43 && back.sb_start == 8 && back.wd_pid == 0);
	CHECK(back.client_pid == 44 && back.client_start == 9);
	CHECK_STR_EQ(back.provider, "qemu");
	CHECK_STR_EQ(back.state_dir, "/var/lib/silo");
	static const struct {
		const char *text, *want;
	} bad[] = {
		{"", "empty"},
		{"silo-owner 2\nkind run\nowner 1 1\n", "line 1"},
		{"silo-owner 1\nowner 1 1\n", "missing kind"},
		{"silo-owner 1\nkind run\n", "missing owner"},
		{"silo-owner 1\nkind root\nowner 1 1\n", "line 2: bad kind"},
		{"silo-owner 1\nkind run\nowner -5 1\n", "line 3: bad owner"},
		{"silo-owner 1\nkind run\nowner 1\n", "line 3: bad owner"},
		{"silo-owner 1\nkind run\nowner 99999999999 1\n", "line 3: bad owner"},
		{"silo-owner 1\nkind run\nowner 1 1x\n", "line 3: bad owner"},
		{"silo-owner 1\nkind run\nowner 1 1\nprovider ../../x\n", "line 4: bad provider"},
		{"silo-owner 1\nkind silod\nowner 1 1\nstate relative/dir\n", "line 4: bad state"},
		{"silo-owner 1\nkind silod\nowner 1 1\n", "without state"},
		{"silo-owner 1\nkind run\nowner 1 1\nrm -rf /\n", "unknown key"},
		{"silo-owner 1\nkind run\nowner 1 1\nnovalue\n", "line 4: expected"},
		{"silo-owner 1\nkind silod\nowner 1 1\nstate /s\nclient 0 1\n", "line 5: bad client"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		CHECK(owner_parse(bad[i].text, strlen(bad[i].text), &back, &err) < 0);
		CHECK(err.code == SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(err.message, bad[i].want);
	}
	char nul[] = "silo-owner 1\nkind run\0\nowner 1 1\n";
	CHECK(owner_parse(nul, sizeof nul - 1, &back, &err) < 0);
	char *big = xmalloc(OWNER_REC_MAX + 2);
	memset(big, 'a', OWNER_REC_MAX + 1);
	CHECK(owner_parse(big, OWNER_REC_MAX + 1, &back, &err) < 0);
	free(big);
}

/* A loop device over a file in dir; its device path, or "" when loop devices are unavailable. */
static void attach_loop(const char *file, char *dev, size_t len)
{
	dev[0] = '\0';
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return;
	int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (nr < 0)
		return;
	char d[64];
	snprintf(d, sizeof d, "/dev/loop%d", nr);
	int lfd = open(d, O_RDWR | O_CLOEXEC), ffd = open(file, O_RDWR | O_CLOEXEC);
	if (lfd >= 0 && ffd >= 0 && ioctl(lfd, LOOP_SET_FD, ffd) == 0)
		snprintf(dev, len, "%s", d);
	if (lfd >= 0)
		close(lfd);
	if (ffd >= 0)
		close(ffd);
}

static bool loop_attached(const char *dev)
{
	char p[128];
	snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", dev + 5);
	return path_exists(p);
}

TEST(sweep_tears_down_a_dead_owners_sandbox)
{
	setup();
	const char *id = "sb-0dead0dead01";
	unsigned long long st;
	pid_t dead = dead_pid(&st);
	char rec[512];
	snprintf(rec, sizeof rec, "silo-owner 1\nkind run\nowner %d %llu\nwatchdog %d %llu\nprovider namespace\n",
		 (int)dead, st, (int)dead, st);
	write_rec(id, rec);
	char rd[PATH_MAX + 64], m[PATH_MAX + 96], img[PATH_MAX + 96];
	path_of(rd, sizeof rd, "sandboxes", id);
	snprintf(m, sizeof m, "%s/mnt", rd);
	mkdir_p(m, 0755);
	bool mounted = mount("silo-owner-test", m, "tmpfs", 0, "size=1m") == 0;
	snprintf(img, sizeof img, "%s/disk.img", rd);
	int fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	char dev[64];
	attach_loop(img, dev, sizeof dev);
	pid_t t = tagged(id);
	usleep(100 * 1000);
	REQUIRE(owner_proc_alive(t, 0));
	owner_sweep_stats s;
	owner_sweep(NULL, &s);
	CHECK_INT_EQ(s.reaped, 1);
	CHECK_INT_EQ(s.dirty, 0);
	CHECK(gone_within(t, 2000));
	CHECK(!rundir_exists(id));
	CHECK(!rec_exists(id));
	if (mounted) {
		char *mi = NULL;
		size_t n;
		REQUIRE(read_file("/proc/self/mountinfo", 1 << 20, &mi, &n, NULL) == 0);
		CHECK(strstr(mi, m) == NULL);
		free(mi);
	} else {
		printf("# tmpfs mount unavailable: %s\n", strerror(errno));
	}
	if (dev[0])
		CHECK(!loop_attached(dev));
	else
		printf("# no loop device available: that part is not exercised\n");
	rm_rf(tmp);
}

static bool always_live(void *ud, const char *id)
{
	(void)ud;
	(void)id;
	return true;
}

TEST(sweep_leaves_live_and_foreign_sandboxes_alone)
{
	setup();
	unsigned long long me_start;
	owner_proc_start(getpid(), &me_start);
	unsigned long long dst;
	pid_t dead = dead_pid(&dst);
	char rec[512], rd[PATH_MAX + 64];
	/* 1. owner alive (this process), lock free */
	snprintf(rec, sizeof rec, "silo-owner 1\nkind run\nowner %d %llu\n", (int)getpid(), me_start);
	write_rec("sb-11ve0wner001", rec);
	/* 2. owner dead but the watchdog (this process) alive */
	snprintf(rec, sizeof rec, "silo-owner 1\nkind run\nowner %d %llu\nwatchdog %d %llu\n", (int)dead, dst,
		 (int)getpid(), me_start);
	write_rec("sb-11vewatchd01", rec);
	/* 3. a dead owner, but the record is locked by a live process */
	snprintf(rec, sizeof rec, "silo-owner 1\nkind run\nowner %d %llu\n", (int)dead, dst);
	write_rec("sb-10cked000001", rec);
	int lk[2];
	REQUIRE(pipe(lk) == 0);
	pid_t holder = fork();
	if (holder == 0) {
		char p[PATH_MAX + 64];
		path_of(p, sizeof p, "owners", "sb-10cked000001");
		int fd = open(p, O_RDWR);
		flock(fd, LOCK_EX);
		(void)!write(lk[1], "x", 1);
		pause();
		_exit(0);
	}
	char c;
	REQUIRE(read(lk[0], &c, 1) == 1);
	/* 4. another silod's sandbox (state dir /x/state) */
	snprintf(rec, sizeof rec, "silo-owner 1\nkind silod\nowner %d %llu\nstate /x/state\n", (int)dead, dst);
	write_rec("sb-0thers110d01", rec);
	/* 5. a record created a moment ago, not yet written */
	write_rec("sb-y0ung0000001", "");
	/* 6. a run dir without a record */
	path_of(rd, sizeof rd, "sandboxes", "sb-n0rec0rd0001");
	mkdir_p(rd, 0700);
	const char *all[] = {"sb-11ve0wner001", "sb-11vewatchd01", "sb-10cked000001", "sb-0thers110d01",
			     "sb-y0ung0000001"};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		path_of(rd, sizeof rd, "sandboxes", all[i]);
		mkdir_p(rd, 0700);
	}
	owner_sweep_stats s;
	owner_sweep(NULL, &s);   /* as `silo run` */
	CHECK_INT_EQ(s.reaped, 0);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		CHECK(rec_exists(all[i]) && rundir_exists(all[i]));
		if (!rec_exists(all[i]) || !rundir_exists(all[i]))
			printf("# %s was touched\n", all[i]);
	}
	CHECK(rundir_exists("sb-n0rec0rd0001"));
	/* a silod on another state dir, or the owning one that still has it live */
	owner_sweep(&(owner_sweep_opts){.state_dir = "/y/state"}, &s);
	CHECK_INT_EQ(s.reaped, 0);
	CHECK(rec_exists("sb-0thers110d01"));
	owner_sweep(&(owner_sweep_opts){.state_dir = "/x/state", .is_live = always_live}, &s);
	CHECK(rec_exists("sb-0thers110d01"));
	/* the owning silod, which did not reattach it, sweeps it */
	owner_sweep(&(owner_sweep_opts){.state_dir = "/x/state"}, &s);
	CHECK_INT_EQ(s.reaped, 1);
	CHECK(!rec_exists("sb-0thers110d01") && !rundir_exists("sb-0thers110d01"));
	/* the unwritten record, once old, is garbage of a crashed writer */
	char p[PATH_MAX + 64];
	path_of(p, sizeof p, "owners", "sb-y0ung0000001");
	struct timeval old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
	REQUIRE(utimes(p, old) == 0);
	owner_sweep(NULL, &s);
	CHECK_INT_EQ(s.reaped, 1);
	CHECK(!rec_exists("sb-y0ung0000001"));
	/* the locked one is free once its holder dies */
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	owner_sweep(NULL, &s);
	CHECK_INT_EQ(s.reaped, 1);
	CHECK(!rec_exists("sb-10cked000001") && !rundir_exists("sb-10cked000001"));
	CHECK(rec_exists("sb-11ve0wner001") && rec_exists("sb-11vewatchd01"));
	rm_rf(tmp);
}

/* A stand-in for a sandbox handle (no provider process: a tagged sleep plays it). */
static sandbox *fake_sandbox(const char *id)
{
	sandbox *sb = xcalloc(1, sizeof *sb);
	snprintf(sb->id, sizeof sb->id, "%s", id);
	path_of(sb->rundir, sizeof sb->rundir, "sandboxes", id);
	sb->ops = provider_find("namespace");
	return sb;
}

TEST(watchdog_reaps_when_the_owner_dies)
{
	setup();
	const char *id = "sb-wd0000000001";
	int p[2];
	REQUIRE(pipe(p) == 0);
	pid_t owner = fork();
	if (owner == 0) {
		sandbox *sb = fake_sandbox(id);
		silo_error err = {0};
		if (owner_begin(sb, SB_OWNER_PROCESS, NULL, 0, &err) < 0)
			_exit(2);
		mkdir_p(sb->rundir, 0700);
		sb->pid = tagged(id);
		owner_note_spawn(sb);
		int32_t v[2] = {sb->own ? 1 : 0, sb->pid};
		(void)!write(p[1], v, sizeof v);
		pause();   /* killed by the test: never says done */
		_exit(0);
	}
	close(p[1]);
	int32_t v[2] = {0, 0};
	REQUIRE(read(p[0], v, sizeof v) == sizeof v);
	REQUIRE(v[0] == 1 && v[1] > 0);
	char rec[OWNER_REC_MAX + 1] = "";
	char path[PATH_MAX + 64];
	path_of(path, sizeof path, "owners", id);
	char *txt = NULL;
	size_t n;
	REQUIRE(read_file(path, OWNER_REC_MAX, &txt, &n, NULL) == 0);
	snprintf(rec, sizeof rec, "%s", txt);
	free(txt);
	owner_rec r;
	silo_error err = {0};
	REQUIRE(owner_parse(rec, strlen(rec), &r, &err) == 0);
	CHECK(r.kind == SB_OWNER_PROCESS && r.owner_pid == owner && r.wd_pid > 0 && r.sb_pid == v[1]);
	CHECK(owner_proc_alive(r.wd_pid, r.wd_start));
	/* the record is locked: a sweeper leaves it alone while the owner lives */
	owner_sweep_stats s;
	owner_sweep(NULL, &s);
	CHECK_INT_EQ(s.live, 1);
	CHECK(owner_proc_alive(v[1], 0));
	uint64_t t0 = now_mono_ns();
	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	CHECK(gone_within(v[1], 5000));
	CHECK(gone_within(r.wd_pid, 5000));   /* it exits once it is done */
	printf("# torn down %.0f ms after the owner died\n", (double)(now_mono_ns() - t0) / 1e6);
	CHECK(!rundir_exists(id));
	CHECK(!rec_exists(id));
	rm_rf(tmp);
}

TEST(watchdog_reaps_at_the_deadline_and_leaves_after_done)
{
	setup();
	const char *id = "sb-wd0000000002";
	sandbox *sb = fake_sandbox(id);
	silo_error err = {0};
	REQUIRE(owner_begin(sb, SB_OWNER_PROCESS, NULL, 0, &err) == 0);
	mkdir_p(sb->rundir, 0700);
	pid_t t = tagged(id);
	sb->pid = t;
	owner_note_spawn(sb);
	char rp[PATH_MAX + 64], *rt_txt = NULL;
	size_t rl;
	owner_rec r;
	path_of(rp, sizeof rp, "owners", id);
	REQUIRE(read_file(rp, OWNER_REC_MAX, &rt_txt, &rl, NULL) == 0 && owner_parse(rt_txt, rl, &r, &err) == 0);
	free(rt_txt);
	uint64_t t0 = now_mono_ns();
	owner_set_deadline(sb, 300);
	CHECK(gone_within(t, 3000));
	double ms = (double)(now_mono_ns() - t0) / 1e6;
	printf("# deadline 300 ms: torn down at %.0f ms while the owner lives\n", ms);
	CHECK(ms >= 250);
	/* the watchdog has left; telling it "done" now must not raise SIGPIPE in the owner */
	CHECK(gone_within(r.wd_pid, 3000));
	owner_end(sb, true);   /* the owner ends normally afterwards */
	for (int i = 0; i < 300 && rundir_exists(id); i++)
		usleep(10 * 1000);
	CHECK(!rundir_exists(id));
	CHECK(!rec_exists(id));
	/* an id whose record exists is refused, the record untouched */
	const char *taken = "sb-taken0000001";
	unsigned long long me;
	owner_proc_start(getpid(), &me);
	char text[128];
	snprintf(text, sizeof text, "silo-owner 1\nkind run\nowner %d %llu\n", (int)getpid(), me);
	write_rec(taken, text);
	sandbox *dup = fake_sandbox(taken);
	CHECK(owner_begin(dup, SB_OWNER_PROCESS, NULL, 0, &err) < 0 && err.code == SILO_ERR_CONFLICT);
	CHECK(dup->own == NULL);
	char tp[PATH_MAX + 64], *got = NULL;
	size_t gl;
	path_of(tp, sizeof tp, "owners", taken);
	REQUIRE(read_file(tp, 4096, &got, &gl, NULL) == 0);
	CHECK_STR_EQ(got, text);
	free(got);
	free(dup);
	/* a normal life: done before any deadline leaves the sandbox to its owner */
	const char *id2 = "sb-wd0000000003";
	sandbox *sb2 = fake_sandbox(id2);
	REQUIRE(owner_begin(sb2, SB_OWNER_PROCESS, NULL, 0, &err) == 0);
	mkdir_p(sb2->rundir, 0700);
	pid_t t2 = tagged(id2);
	owner_set_deadline(sb2, 60000);
	CHECK(rec_exists(id2));
	owner_end(sb2, false);   /* kept: the owner says its host is not clean */
	CHECK(rec_exists(id2));
	CHECK(owner_proc_alive(t2, 0));   /* the watchdog left on "done" without touching it */
	/* the record names this live process as owner: a sweep leaves it alone */
	owner_sweep_stats s;
	owner_sweep(NULL, &s);
	CHECK_INT_EQ(s.reaped, 0);
	kill(t2, SIGKILL);
	free(sb);
	free(sb2);
	rm_rf(tmp);
}

TEST_MAIN(parse_round_trip_and_hostile_records, sweep_tears_down_a_dead_owners_sandbox,
	  sweep_leaves_live_and_foreign_sandboxes_alone, watchdog_reaps_when_the_owner_dies,
	  watchdog_reaps_at_the_deadline_and_leaves_after_done)
