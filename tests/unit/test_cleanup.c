/* SPDX-License-Identifier: Apache-2.0
 * lib/core/cleanup.c with real leftovers in a private runtime/state dir: a
 * bound unix socket, a process whose cwd is in the run dir, a process whose
 * command line names the sandbox, stray temp files, a persistent tap device
 * with the sandbox's name, a mount; the record, its JSON, and the retry.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/util.h"
#include "core/cleanup.h"
#include "harness.h"

static char tmp[PATH_MAX], rt[PATH_MAX + 16], st[PATH_MAX + 16], rundir[PATH_MAX + 64];
static const char *ID = "sb-c1ea0c1ea0c1";

static void setup(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/silo-cleanup-test.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	snprintf(rt, sizeof rt, "%s/run", tmp);
	snprintf(st, sizeof st, "%s/state", tmp);
	setenv("SILO_RUNTIME_DIR", rt, 1);
	snprintf(rundir, sizeof rundir, "%s/sandboxes/%s", rt, ID);
	mkdir_p(rundir, 0755);
	mkdir_p(st, 0700);
}

static bool has_prefix(char **v, const char *prefix)
{
	for (; v && *v; v++)
		if (!strncmp(*v, prefix, strlen(prefix)))
			return true;
	return false;
}

/* A `sleep 30` whose cwd is the run dir. */
static pid_t sleeper_in_rundir(void)
{
	pid_t p = fork();
	if (p == 0) {
		if (chdir(rundir) < 0)
			_exit(1);
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(1);
	}
	return p;
}

TEST(sweep_finds_sockets_and_processes_and_removes_temp_files)
{
	setup();
	/* a bound, listening unix socket inside the run dir */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s/stray.sock", rundir);
	REQUIRE(bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 1) == 0);
	/* a process sitting in the run dir, and one naming the sandbox on its command line */
	pid_t p1 = sleeper_in_rundir();
	char tag[128];
	snprintf(tag, sizeof tag, "silo-%s", ID);
	pid_t p2 = fork();
	if (p2 == 0) {
		execlp("sleep", tag, "30", (char *)NULL); /* argv[0] names the sandbox, no child of its own */
		_exit(1);
	}
	usleep(200 * 1000);
	/* temp files beside the run dir and in /tmp */
	char t1[PATH_MAX + 80], t2[128];
	snprintf(t1, sizeof t1, "%s/sandboxes/%s.tmp", rt, ID);
	snprintf(t2, sizeof t2, "/tmp/silo-%s-x", ID);
	silo_error err = {0};
	REQUIRE(write_file_atomic(t1, "x", 1, 0600, &err) == 0);
	REQUIRE(write_file_atomic(t2, "x", 1, 0600, &err) == 0);
	char **res = NULL;
	cleanup_sweep(ID, rundir, &res);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof want, "socket %s", a.sun_path);
	CHECK(has_prefix(res, want));
	snprintf(want, sizeof want, "process %d (sleep): cwd", (int)p1);
	CHECK(has_prefix(res, want));
	snprintf(want, sizeof want, "process %d (", (int)p2);
	CHECK(has_prefix(res, want));
	CHECK(!path_exists(t1));
	CHECK(!path_exists(t2));
	strv_free(res);
	/* once they are gone, the sweep is clean */
	kill(p1, SIGKILL);
	kill(p2, SIGKILL);
	waitpid(p1, NULL, 0);
	waitpid(p2, NULL, 0);
	close(s);
	unlink(a.sun_path);
	res = NULL;
	cleanup_sweep(ID, rundir, &res);
	CHECK(res == NULL);
	if (res)
		printf("# left: %s\n", res[0]);
	strv_free(res);
	rm_rf(tmp);
}

/* Without CLEANUP_SCAN_HOST (a provider proved its pid namespace gone) the host
 * is not scanned while nothing else is left, and is scanned again as soon as
 * anything is: a caller's residue item, or a cgroup named after the sandbox. */
TEST(scoped_sweep_scans_the_host_only_when_something_is_left)
{
	setup();
	pid_t p1 = sleeper_in_rundir();
	usleep(200 * 1000);
	char want[64];
	snprintf(want, sizeof want, "process %d (sleep): cwd", (int)p1);
	char **res = NULL;
	cleanup_sweep_scoped(ID, rundir, 0, &res);
	CHECK(res == NULL);   /* nothing else left: no scan */
	strv_free(res);
	res = NULL;
	cleanup_add(&res, "pid 1234 still running");
	cleanup_sweep_scoped(ID, rundir, 0, &res);
	CHECK(has_prefix(res, want));   /* something left: the scan names the holder */
	strv_free(res);
	res = NULL;
	cleanup_sweep_scoped(ID, rundir, CLEANUP_SCAN_HOST, &res);
	CHECK(has_prefix(res, want));
	strv_free(res);
	kill(p1, SIGKILL);
	waitpid(p1, NULL, 0);
	rm_rf(tmp);
}

TEST(sweep_removes_the_sandbox_tap)
{
	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		SKIP("no /dev/net/tun");
	setup();
	char name[16];
	cleanup_tap_name(ID, name);
	CHECK_STR_EQ(name, "stc1ea0c1ea0c1");
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		SKIP("cannot create a tap device here: %s", strerror(errno));
	REQUIRE(ioctl(fd, TUNSETPERSIST, 1) == 0);
	close(fd);
	char sys[64];
	snprintf(sys, sizeof sys, "/sys/class/net/%s", name);
	REQUIRE(path_exists(sys));
	char **res = NULL;
	cleanup_sweep(ID, rundir, &res);
	CHECK(!path_exists(sys));
	CHECK(!has_prefix(res, "tap "));
	strv_free(res);
	rm_rf(tmp);
}

/* A loop device whose backing file lies in the run dir is reported and detached, found
 * among the attached devices (/proc/partitions) whatever number it has. */
TEST(sweep_finds_and_release_detaches_a_loop_device)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		SKIP("no /dev/loop-control: %s", strerror(errno));
	setup();
	char img[PATH_MAX + 96];
	snprintf(img, sizeof img, "%s/disk.img", rundir);
	int f = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	REQUIRE(f >= 0 && ftruncate(f, 1 << 20) == 0);
	int dev = -1, nr = -1;
	for (int tries = 0; tries < 32 && dev < 0; tries++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		char p[32];
		snprintf(p, sizeof p, "/dev/loop%d", nr);
		int fd = nr >= 0 ? open(p, O_RDWR | O_CLOEXEC) : -1;
		struct loop_config c = {.fd = (unsigned)f};
		if (fd >= 0 && ioctl(fd, LOOP_CONFIGURE, &c) == 0)
			dev = fd;
		else if (fd >= 0)
			close(fd);
	}
	close(ctl);
	close(f);
	if (dev < 0)
		SKIP("cannot attach a loop device here");
	char want[64];
	snprintf(want, sizeof want, "loop /dev/loop%d (", nr);
	char **res = NULL;
	cleanup_sweep(ID, rundir, &res);
	CHECK(has_prefix(res, want));
	strv_free(res);
	close(dev);                       /* no AUTOCLEAR: it stays attached, a leak to clean up */
	cleanup_release_mounts(rundir);   /* detaches it */
	res = NULL;
	cleanup_sweep(ID, rundir, &res);
	CHECK(!has_prefix(res, "loop "));
	strv_free(res);
	rm_rf(tmp);
}

TEST(record_and_retry_a_mount)
{
	if (geteuid() != 0)
		SKIP("mounting needs root");
	setup();
	char m[PATH_MAX + 80];
	snprintf(m, sizeof m, "%s/leak", rundir);
	mkdir_p(m, 0755);
	if (mount("silo-test", m, "tmpfs", 0, "size=1m") < 0)
		SKIP("mount tmpfs: %s", strerror(errno));
	char f[PATH_MAX + 96];
	snprintf(f, sizeof f, "%s/stray", m);
	silo_error err = {0};
	REQUIRE(write_file_atomic(f, "x", 1, 0600, &err) == 0);
	/* what a terminate would see: rm -rf stops at the mount */
	rm_rf(rundir);
	cleanup_report rep = {.terminated = true};
	cleanup_sweep(ID, rundir, &rep.residual_paths);
	if (path_exists(rundir))
		cleanup_add(&rep.residual_paths, rundir);
	char mm[PATH_MAX + 96];
	snprintf(mm, sizeof mm, "mount %s", m);
	CHECK(has_prefix(rep.residual_paths, mm));
	CHECK(has_prefix(rep.residual_paths, rundir));
	rep.host_clean = false;
	REQUIRE(cleanup_record(st, ID, rundir, &rep, &err) == 0);
	cleanup_report_free(&rep);
	json_t *j = cleanup_load_json(st, ID);
	REQUIRE(j);
	CHECK(json_is_false(json_object_get(j, "host_clean")));
	CHECK(json_is_true(json_object_get(j, "terminated")));
	CHECK(json_array_size(json_object_get(j, "residual_paths")) >= 2);
	CHECK(!json_object_get(j, "rundir")); /* internal fields are not exposed */
	json_decref(j);
	int dirty = -1;
	CHECK_INT_EQ(cleanup_retry_pending(st, &dirty), 1);
	CHECK_INT_EQ(dirty, 0);
	CHECK(!path_exists(rundir));
	j = cleanup_load_json(st, ID);
	REQUIRE(j);
	CHECK(json_is_true(json_object_get(j, "host_clean")));
	CHECK_INT_EQ(json_array_size(json_object_get(j, "residual_paths")), 0);
	CHECK(json_string_value(json_object_get(j, "retried")) != NULL);
	json_decref(j);
	/* clean records are not retried again */
	CHECK_INT_EQ(cleanup_retry_pending(st, &dirty), 0);
	/* a record whose run dir is not where silod puts run dirs is never touched */
	cleanup_report r2 = {.terminated = true};
	char outside[PATH_MAX + 32];
	snprintf(outside, sizeof outside, "%s/elsewhere", tmp);
	mkdir_p(outside, 0755);
	cleanup_add(&r2.residual_paths, outside);
	REQUIRE(cleanup_record(st, "sb-000000000001", outside, &r2, &err) == 0);
	cleanup_report_free(&r2);
	cleanup_retry_pending(st, &dirty);
	CHECK(path_exists(outside));
	/* no record for an unknown or malformed id */
	CHECK(cleanup_load_json(st, "sb-nope") == NULL);
	CHECK(cleanup_load_json(st, "../../etc/passwd") == NULL);
	rm_rf(tmp);
}

TEST_MAIN(sweep_finds_sockets_and_processes_and_removes_temp_files, sweep_removes_the_sandbox_tap,
	  sweep_finds_and_release_detaches_a_loop_device, record_and_retry_a_mount,
	  scoped_sweep_scans_the_host_only_when_something_is_left)
