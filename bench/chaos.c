/* SPDX-License-Identifier: Apache-2.0
 * Chaos: prove nothing is left behind (docs/benchmarks.md "Chaos"). N cycles
 * of create/exec/delete through a real silod, each with a fault chosen by the
 * seed: kill -9 of the agent (namespace) or of the VM process (qemu), kill -9
 * of silod in the middle of a create or of a delete (then silod is restarted
 * on the same state dir), a full state disk (the state dir is a small tmpfs,
 * filled up), a guest that stops answering (SIGSTOP of the agent or the VM),
 * or none. After every cycle everything live is deleted and the host is
 * scanned; at the end silod is stopped and the host is compared with what
 * must exist: nothing.
 *
 * Scanned independently of Silo's own cleanup code: processes (recorded
 * sandbox pids by pid + start time, members of silo/<id> cgroups, command
 * lines naming the runtime dir or silo-<id>, cwd/root inside the runtime
 * dir), mounts and loop devices below the runtime or state dir, cgroups, run
 * dirs and ownership records, bound unix sockets, tap devices. Registry rows:
 * every sandbox seen on the host or through the API must have a row, and
 * every row must end terminated or error.
 *
 *   chaos [--seed S] [--cycles N] [--time-cap SECONDS] [--mix namespace:9,qemu:1]
 *         [--state-mb MB] [--silod PATH] [--keep] [--plant-leak]
 * --plant-leak checks the checker: after the first cycle it leaves a run dir
 * and a process tagged with an id silod never heard of; the run must then
 * report them (orphans >= 2, lost >= 1) and fail.
 * Prints JSON, then "orphans N, lost N"; exits 0 only if both are 0 (and
 * silod never crashed). The provider mix is exact (weighted round robin); the
 * seed picks the faults (each kind once per shuffled round) and their timing.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_curl.h"
#include "bench_util.h"
#include "audit/audit.h"
#include "common/util.h"
#include "core/owner.h"
#include "registry/registry.h"

enum fault {
	F_NONE,
	F_KILL_AGENT,      /* namespace: kill -9 of the sandbox init (the agent) */
	F_KILL_VMM,        /* qemu: kill -9 of QEMU */
	F_KILL_SILOD_CREATE,
	F_KILL_SILOD_DELETE,
	F_DISK_FULL,
	F_STOP_GUEST,      /* SIGSTOP of the agent (namespace) or QEMU */
	F__N
};
static const char *const fault_names[F__N] = {
	"none", "kill_agent", "kill_vmm", "kill_silod_create", "kill_silod_delete", "disk_full", "stop_guest",
};

enum { P_NS, P_QEMU, P__N };
static const char *const prov_names[P__N] = {"namespace", "qemu"};

#define MAX_ITEMS 200   /* distinct leftovers reported in full */

typedef struct seen_proc {
	pid_t pid;
	unsigned long long start;
	char id[64];
} seen_proc;

typedef struct chaos {
	char tmp[PATH_MAX], state[PATH_MAX + 16], run[PATH_MAX + 16], sock[PATH_MAX + 32], log[PATH_MAX + 32];
	char filler[PATH_MAX + 32];
	const char *silod_bin;
	pid_t silod;
	int starts, kills, crashes;
	bool state_mounted;
	CURL *h;
	uint64_t rng;
	char **ids;                 /* every sandbox id seen (API or host) */
	seen_proc *procs;
	size_t nprocs;
	char **items;               /* distinct leftovers, "cycle N (provider fault): item" */
	size_t nitems;
	int cycle;
	const char *cur_fault, *cur_prov;
	int api_errors;
	bool qemu_ok;
	pid_t planted;
} chaos;

static chaos C;

/* ---------------------------------------------------------------- rng */

static uint64_t rnd(void)
{
	uint64_t z = (C.rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int rnd_int(int n)
{
	return n > 0 ? (int)(rnd() % (uint64_t)n) : 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---------------------------------------------------------------- bookkeeping */

static bool strv_has(char **v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static void strv_add(char ***v, const char *s)
{
	if (strv_has(*v, s))
		return;
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

static bool id_like(const char *s)
{
	if (strncmp(s, "sb-", 3) != 0 || strlen(s) >= 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

static void see_id(const char *id)
{
	if (id && id_like(id))
		strv_add(&C.ids, id);
}

static unsigned long long proc_start(pid_t pid)
{
	unsigned long long st;
	return owner_proc_start(pid, &st) ? st : 0;
}

static void see_proc(const char *id, pid_t pid)
{
	if (pid <= 0)
		return;
	unsigned long long st = proc_start(pid);
	if (!st)
		return;
	for (size_t i = 0; i < C.nprocs; i++)
		if (C.procs[i].pid == pid && C.procs[i].start == st)
			return;
	C.procs = xrealloc(C.procs, (C.nprocs + 1) * sizeof *C.procs);
	C.procs[C.nprocs] = (seen_proc){.pid = pid, .start = st};
	snprintf(C.procs[C.nprocs].id, sizeof C.procs[C.nprocs].id, "%s", id);
	C.nprocs++;
}

/* ids present on the host: run dirs and ownership records */
static void see_host_ids(void)
{
	static const char *const sub[] = {"sandboxes", "owners"};
	for (size_t k = 0; k < ARRAY_SIZE(sub); k++) {
		char d[PATH_MAX + 32];
		snprintf(d, sizeof d, "%s/%s", C.run, sub[k]);
		DIR *dir = opendir(d);
		struct dirent *de;
		while (dir && (de = readdir(dir))) {
			char id[64];
			snprintf(id, sizeof id, "%.*s", (int)strcspn(de->d_name, "."), de->d_name);
			see_id(id);
		}
		if (dir)
			closedir(dir);
	}
}

/* ---------------------------------------------------------------- HTTP */

/* One request on handle h; HTTP status (0: transport failure); the JSON body
 * in *out, or the raw body in *raw (an NDJSON stream), if asked. */
static long request_raw(CURL *h, const char *method, const char *path, const char *body, long timeout_s,
			json_t **out, char **raw)
{
	char url[1024];
	snprintf(url, sizeof url, "http://silod%s", path);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, C.sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
	if (body) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	resp r = {0};
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hd);
	if (out)
		*out = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	if (raw)
		*raw = steal_pointer(&r.buf);
	free(r.buf);
	return status;
}

static long request(CURL *h, const char *method, const char *path, const char *body, long timeout_s, json_t **out)
{
	return request_raw(h, method, path, body, timeout_s, out, NULL);
}

static long api(const char *method, const char *path, const char *body, long timeout_s, json_t **out)
{
	return request(C.h, method, path, body, timeout_s, out);
}

static long create_timeout(int prov)
{
	return prov == P_QEMU ? 240 : 60;
}

static char *create_body(int prov)
{
	return xasprintf("{\"provider\":\"%s\",\"name\":\"chaos-%d\",\"vcpus\":1,\"memory_mb\":%d}", prov_names[prov],
			 C.cycle, prov == P_QEMU ? 256 : 128);
}

/* Look a sandbox up: remember its id and process. */
static void note_sandbox(const char *id)
{
	see_id(id);
	char path[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s", id);
	json_t *o = NULL;
	if (api("GET", path, NULL, 10, &o) == 200) {
		json_int_t pid = json_integer_value(json_object_get(o, "pid"));
		see_proc(id, (pid_t)pid);
	}
	json_decref(o);
}

static bool create_sb(int prov, char id[64])
{
	id[0] = '\0';
	char *body = create_body(prov);
	json_t *o = NULL;
	long st = api("POST", "/v1/sandboxes", body, create_timeout(prov), &o);
	free(body);
	const char *v = json_string_value(json_object_get(o, "id"));
	if (st == 201 && v)
		snprintf(id, 64, "%s", v);
	json_decref(o);
	see_host_ids();
	if (!id[0]) {
		C.api_errors++;
		return false;
	}
	note_sandbox(id);
	return true;
}

static bool exec_sb(const char *id, long timeout_s)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", id);
	char *raw = NULL;
	/* the exec stream is NDJSON, not one JSON document: look for the exit line */
	long st = request_raw(C.h, "POST", path, "{\"argv\":[\"sh\",\"-c\",\"echo chaos; ls / > /dev/null\"],"
				"\"timeout_ms\":20000}", timeout_s, NULL, &raw);
	bool ok = st == 200 && raw && strstr(raw, "\"exit_code\":0");
	free(raw);
	return ok;
}

static long delete_sb(const char *id, int grace_ms)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s?grace_ms=%d", id, grace_ms);
	return api("DELETE", path, NULL, 60, NULL);
}

/* ---------------------------------------------------------------- silod */

static bool silod_up(int ms)
{
	for (int i = 0; i < ms / 25; i++) {
		if (api("GET", "/v1/health", NULL, 2, NULL) == 200)
			return true;
		int st;
		if (waitpid(C.silod, &st, WNOHANG) == C.silod) {
			C.crashes++;
			fprintf(stderr, "chaos: silod exited during start (status %d); see %s\n", st, C.log);
			C.silod = 0;
			return false;
		}
		sleep_ms(25);
	}
	return false;
}

static bool silod_start(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int fd = open(C.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("SILO_LOG", "info", 1);
		execl(C.silod_bin, C.silod_bin, "--grace-ms", "300", "--max-sandboxes", "32", "--boot-timeout-ms",
		      "120000", (char *)NULL);
		_exit(127);
	}
	C.silod = pid;
	C.starts++;
	return silod_up(30000);
}

/* Did silod die on its own since we last looked? Restart it if so. */
static void silod_check(void)
{
	int st;
	if (C.silod > 0 && waitpid(C.silod, &st, WNOHANG) == C.silod) {
		C.crashes++;
		fprintf(stderr, "chaos: cycle %d: silod exited on its own (status 0x%x)\n", C.cycle, st);
		C.silod = 0;
	}
	if (C.silod <= 0 && !silod_start())
		fprintf(stderr, "chaos: cycle %d: silod does not start again\n", C.cycle);
}

static void silod_kill9(void)
{
	if (C.silod <= 0)
		return;
	kill(C.silod, SIGKILL);
	waitpid(C.silod, NULL, 0);
	C.silod = 0;
	C.kills++;
}

static int silod_stop(void)
{
	if (C.silod <= 0)
		return -1;
	kill(C.silod, SIGTERM);
	int st = 0;
	for (int i = 0; i < 800; i++) {
		if (waitpid(C.silod, &st, WNOHANG) == C.silod) {
			C.silod = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		sleep_ms(25);
	}
	kill(C.silod, SIGKILL);
	waitpid(C.silod, NULL, 0);
	C.silod = 0;
	return 137;
}

/* ---------------------------------------------------------------- the host */

static bool under(const char *path, const char *dir)
{
	size_t l = strlen(dir);
	return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

static void item(char ***v, char *s)
{
	strv_add(v, s);
	free(s);
}

static bool cmdline_has(pid_t pid, char **needles)
{
	char p[64], *t = NULL;
	size_t n;
	snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
	if (read_file(p, 1 << 20, &t, &n, NULL) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!t[i])
			t[i] = ' ';
	bool hit = false;
	for (; needles && *needles && !hit; needles++)
		hit = strstr(t, *needles) != NULL;
	free(t);
	return hit;
}

static void comm_of(pid_t pid, char *out, size_t len)
{
	char p[64], *t = NULL;
	size_t n;
	snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
	snprintf(out, len, "?");
	if (read_file(p, 64, &t, &n, NULL) == 0) {
		t[strcspn(t, "\n")] = '\0';
		snprintf(out, len, "%s", t);
		free(t);
	}
}

/* Everything of ours on the host that must not be there: silod (if alive)
 * and its socket excepted. */
static char **scan(void)
{
	char **v = NULL;
	char **needles = NULL;
	strv_add(&needles, C.run);
	for (char **id = C.ids; id && *id; id++) {
		char t[96];
		snprintf(t, sizeof t, "silo-%s", *id);
		strv_add(&needles, t);
	}
	/* processes */
	for (size_t i = 0; i < C.nprocs; i++)
		if (proc_start(C.procs[i].pid) == C.procs[i].start)
			item(&v, xasprintf("process %d of %s (recorded sandbox process)", (int)C.procs[i].pid, C.procs[i].id));
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);
		if (pid <= 1 || pid == getpid() || pid == C.silod || !proc_start(pid))
			continue;
		const char *why = NULL;
		static const char *const links[] = {"cwd", "root"};
		for (size_t k = 0; k < 2 && !why; k++) {
			char p[64], t[PATH_MAX];
			snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, links[k]);
			ssize_t n = readlink(p, t, sizeof t - 1);
			if (n > 0) {
				t[n] = '\0';
				if (under(t, C.run) || under(t, C.state))
					why = links[k];
			}
		}
		if (!why && cmdline_has(pid, needles))
			why = "command line";
		if (why) {
			char comm[64];
			comm_of(pid, comm, sizeof comm);
			item(&v, xasprintf("process %d (%s): %s", (int)pid, comm, why));
		}
	}
	if (d)
		closedir(d);
	strv_free(needles);
	/* cgroups (and their members) */
	static const char *const hier[] = {"memory", "cpu", "pids", "freezer", "cpuset", "blkio", "devices",
					   "unified", "systemd", ""};
	for (char **id = C.ids; id && *id; id++)
		for (size_t k = 0; k < ARRAY_SIZE(hier); k++) {
			char p[PATH_MAX];
			snprintf(p, sizeof p, "/sys/fs/cgroup/%s%ssilo/%s", hier[k], hier[k][0] ? "/" : "", *id);
			if (path_exists(p))
				item(&v, xasprintf("cgroup %s", p));
		}
	/* mounts and loop devices */
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	while (f && fgets(line, sizeof line, f)) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (tok && (under(tok, C.run) || (under(tok, C.state) && strcmp(tok, C.state) != 0)))
			item(&v, xasprintf("mount %s", tok));
	}
	if (f)
		fclose(f);
	d = opendir("/sys/block");
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		char p[300], *t = NULL;
		size_t n;
		snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", de->d_name);
		if (read_file(p, PATH_MAX, &t, &n, NULL) == 0) {
			t[strcspn(t, "\n")] = '\0';
			if (under(t, C.run) || under(t, C.state))
				item(&v, xasprintf("loop /dev/%s (%s)", de->d_name, t));
			free(t);
		}
	}
	if (d)
		closedir(d);
	/* run dirs, records, temp files */
	static const char *const sub[] = {"sandboxes", "owners"};
	for (size_t k = 0; k < 2; k++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", C.run, sub[k]);
		DIR *dd = opendir(p);
		while (dd && (de = readdir(dd)))
			if (de->d_name[0] != '.')
				item(&v, xasprintf("%s/%s", p, de->d_name));
		if (dd)
			closedir(dd);
	}
	for (char **id = C.ids; id && *id; id++) {
		char p[PATH_MAX];
		snprintf(p, sizeof p, "/sys/class/net/st%s", strlen(*id) > 12 ? *id + strlen(*id) - 12 : *id);
		if (path_exists(p))
			item(&v, xasprintf("tap %s", p + 15));
	}
	d = opendir("/tmp");
	while (d && (de = readdir(d)))
		for (char **id = C.ids; id && *id; id++)
			if (!strncmp(de->d_name, "silo-", 5) && !strncmp(de->d_name + 5, *id, strlen(*id)))
				item(&v, xasprintf("/tmp/%s", de->d_name));
	if (d)
		closedir(d);
	/* bound unix sockets */
	f = fopen("/proc/net/unix", "re");
	char sock_ok[PATH_MAX + 32];
	snprintf(sock_ok, sizeof sock_ok, "%s", C.silod > 0 ? C.sock : "");
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *p = strrchr(line, ' ');
		if (p && p[1] == '/' && under(p + 1, C.run) && strcmp(p + 1, sock_ok) != 0)
			item(&v, xasprintf("socket %s", p + 1));
	}
	if (f)
		fclose(f);
	return v;
}

/* Scan until clean or ms passed (teardown and reaping take a moment); returns what is left. */
static char **scan_settled(int ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	for (;;) {
		char **v = scan();
		if (!v || now_mono_ns() >= end)
			return v;
		strv_free(v);
		sleep_ms(50);
	}
}

static void remember_leaks(char **v)
{
	for (char **p = v; p && *p; p++) {
		char *s = xasprintf("cycle %d (%s, %s): %s", C.cycle, C.cur_prov, C.cur_fault, *p);
		bool dup = false;
		for (size_t i = 0; i < C.nitems && !dup; i++)
			dup = !strcmp(strstr(C.items[i], "): ") + 3, *p);
		if (!dup) {
			C.items = xrealloc(C.items, (C.nitems + 1) * sizeof *C.items);
			C.items[C.nitems++] = s;
			fprintf(stderr, "chaos: LEFT %s\n", s);
		} else {
			free(s);
		}
	}
}

/* Delete everything silod still lists as live. */
static void settle(void)
{
	for (int round = 0; round < 5; round++) {
		json_t *o = NULL;
		if (api("GET", "/v1/sandboxes", NULL, 20, &o) != 200) {
			json_decref(o);
			silod_check();
			continue;
		}
		json_t *a = json_object_get(o, "sandboxes");
		size_t i;
		json_t *s;
		size_t n = json_array_size(a);
		json_array_foreach(a, i, s) {
			const char *id = json_string_value(json_object_get(s, "id"));
			see_id(id);
			see_proc(id ? id : "?", (pid_t)json_integer_value(json_object_get(s, "pid")));
			if (id)
				delete_sb(id, 0);
		}
		json_decref(o);
		if (!n)
			return;
		sleep_ms(100);
	}
}

/* ---------------------------------------------------------------- faults */

typedef struct async_req {
	pthread_t th;
	const char *method;
	char path[128];
	char *body;
	long timeout_s;
	long status;
	json_t *out;
} async_req;

static void *async_main(void *arg)
{
	async_req *a = arg;
	CURL *h = curl_easy_init();
	a->status = request(h, a->method, a->path, a->body, a->timeout_s, &a->out);
	curl_easy_cleanup(h);
	return NULL;
}

static void async_start(async_req *a)
{
	pthread_create(&a->th, NULL, async_main, a);
}

static void async_join(async_req *a)
{
	pthread_join(a->th, NULL);
	const char *id = json_string_value(json_object_get(a->out, "id"));
	see_id(id);
	json_decref(a->out);
	free(a->body);
}

static pid_t sandbox_pid(const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s", id);
	json_t *o = NULL;
	pid_t pid = 0;
	if (api("GET", path, NULL, 10, &o) == 200)
		pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	json_decref(o);
	return pid;
}

/* Fill the state tmpfs to the last byte. */
static void disk_fill(void)
{
	int fd = open(C.filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	static char buf[1 << 16];
	for (size_t chunk = sizeof buf; chunk >= 1; chunk /= 16)
		while (write(fd, buf, chunk) == (ssize_t)chunk)
			;
	close(fd);
}

static void disk_free(void)
{
	unlink(C.filler);
}

static void run_fault(int prov, enum fault f)
{
	char id[64] = "";
	int slow = prov == P_QEMU;
	switch (f) {
	case F_NONE:
		if (create_sb(prov, id)) {
			if (!exec_sb(id, 60))
				C.api_errors++;
			if (delete_sb(id, 300) != 200)
				C.api_errors++;
		}
		break;
	case F_KILL_AGENT:
	case F_KILL_VMM:
		if (create_sb(prov, id)) {
			pid_t pid = sandbox_pid(id);
			if (pid > 0)
				kill(pid, SIGKILL);
			sleep_ms(rnd_int(800));
			exec_sb(id, 10);   /* may fail: the sandbox is dead */
			delete_sb(id, 0);
		}
		break;
	case F_STOP_GUEST:
		if (create_sb(prov, id)) {
			pid_t pid = sandbox_pid(id);
			if (pid > 0)
				kill(pid, SIGSTOP);
			exec_sb(id, 2);   /* the guest does not answer: the client gives up */
			if (delete_sb(id, 300) != 200) {
				C.api_errors++;
				if (pid > 0)
					kill(pid, SIGCONT);
			}
		}
		break;
	case F_KILL_SILOD_CREATE: {
		async_req a = {.method = "POST", .body = create_body(prov), .timeout_s = create_timeout(prov)};
		snprintf(a.path, sizeof a.path, "/v1/sandboxes");
		async_start(&a);
		sleep_ms(rnd_int(slow ? 2500 : 150));
		see_host_ids();
		silod_kill9();
		async_join(&a);
		see_host_ids();
		silod_check();
		break;
	}
	case F_KILL_SILOD_DELETE:
		if (create_sb(prov, id)) {
			exec_sb(id, 60);
			async_req a = {.method = "DELETE", .timeout_s = 60};
			snprintf(a.path, sizeof a.path, "/v1/sandboxes/%s?grace_ms=%d", id, rnd_int(2) ? 300 : 0);
			async_start(&a);
			sleep_ms(rnd_int(slow ? 1500 : 60));
			silod_kill9();
			async_join(&a);
			silod_check();
			delete_sb(id, 0);
		}
		break;
	case F_DISK_FULL:
		if (rnd_int(2)) {   /* the disk fills up under a running sandbox */
			if (create_sb(prov, id)) {
				disk_fill();
				exec_sb(id, 60);
				delete_sb(id, 0);
			}
		} else {            /* creates against a full disk */
			disk_fill();
			if (create_sb(prov, id)) {
				exec_sb(id, 60);
				delete_sb(id, 0);
			}
		}
		disk_free();
		break;
	default:
		break;
	}
}

/* --plant-leak: what a leaking Silo would leave, for an id with no registry row */
static void plant_leak(void)
{
	static const char id[] = "sb-p1a47ed1eak0";
	char p[PATH_MAX + 64], tag[64];
	snprintf(p, sizeof p, "%s/sandboxes/%s", C.run, id);
	mkdir_p(p, 0700);
	snprintf(tag, sizeof tag, "silo-%s", id);
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		execlp("sleep", tag, "600", (char *)NULL);
		_exit(127);
	}
	C.planted = pid;
	see_id(id);
}

/* ---------------------------------------------------------------- main */

static bool provider_available(const char *name)
{
	json_t *o = NULL;
	bool ok = api("GET", "/v1/providers", NULL, 10, &o) == 200 && bench_provider_available(o, name);
	json_decref(o);
	return ok;
}

static int parse_mix(const char *s, int w[P__N])
{
	memset(w, 0, sizeof(int) * P__N);
	char *dup = xstrdup(s), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(t, ':');
		int k = -1;
		for (int i = 0; i < P__N; i++)
			if (colon && (size_t)(colon - t) == strlen(prov_names[i]) && !strncmp(t, prov_names[i], (size_t)(colon - t)))
				k = i;
		char *end = NULL;
		long v = colon ? strtol(colon + 1, &end, 10) : -1;
		if (k < 0 || !end || *end || v < 0 || v > 1000) {
			rc = -1;
			break;
		}
		w[k] = (int)v;
	}
	free(dup);
	return rc;
}

static json_t *pct_json(double *v, int n)
{
	bench_sort(v, (size_t)n);
	return json_pack("{s:i,s:f,s:f,s:f,s:f}", "count", n, "p50_ms", bench_pct(v, (size_t)n, 50, 0),
			 "p95_ms", bench_pct(v, (size_t)n, 95, 0), "p99_ms", bench_pct(v, (size_t)n, 99, 0), "max_ms",
			 n ? v[n - 1] : 0.0);
}

#define USAGE                                                                      \
	"chaos [--seed S] [--cycles N] [--time-cap SECONDS] [--mix namespace:W,qemu:W]\n" \
	"             [--state-mb MB] [--silod PATH] [--keep] [--plant-leak]"

int main(int argc, char **argv)
{
	uint64_t seed = 1;
	int cycles = 20, time_cap = 1800, state_mb = 24;
	const char *mix = "namespace:9,qemu:1";
	bool keep = false, plant = false;
	const bench_opt opts[] = {
		{"--seed", BOPT_U64, &seed},         {"--cycles", BOPT_INT, &cycles},    {"--time-cap", BOPT_INT, &time_cap},
		{"--mix", BOPT_STR, &mix},           {"--state-mb", BOPT_INT, &state_mb}, {"--silod", BOPT_STR, &C.silod_bin},
		{"--keep", BOPT_TRUE, &keep},        {"--plant-leak", BOPT_TRUE, &plant}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, USAGE);
	int w[P__N];
	if (cycles < 1 || cycles > 100000 || time_cap < 1 || state_mb < 4 || state_mb > 4096 || parse_mix(mix, w) < 0 ||
	    w[P_NS] + w[P_QEMU] == 0) {
		fprintf(stderr, "usage: %s\nchaos: --cycles 1..100000, --time-cap >= 1, --state-mb 4..4096, --mix NAME:WEIGHT,...\n",
			USAGE);
		return 2;
	}
	if (geteuid() != 0) {
		printf("{\"benchmark\":\"chaos\",\"skipped\":\"needs root (tmpfs state dir, cgroups)\"}\n");
		return 77;
	}
	char bin[PATH_MAX];
	silo_error err = {0};
	bench_find_silod(&C.silod_bin, bin);
	C.rng = seed;
	snprintf(C.tmp, sizeof C.tmp, "/tmp/silo-chaos-XXXXXX");
	if (!mkdtemp(C.tmp))
		die_errno(1, "mkdtemp");
	snprintf(C.state, sizeof C.state, "%s/state", C.tmp);
	snprintf(C.run, sizeof C.run, "%s/run", C.tmp);
	snprintf(C.sock, sizeof C.sock, "%s/silod.sock", C.run);
	snprintf(C.log, sizeof C.log, "%s/silod.log", C.tmp);
	snprintf(C.filler, sizeof C.filler, "%s/filler", C.state);
	mkdir_p(C.state, 0700);
	mkdir_p(C.run, 0700);
	char mopt[64];
	snprintf(mopt, sizeof mopt, "size=%dm,mode=0700", state_mb);
	if (mount("silo-chaos-state", C.state, "tmpfs", MS_NOSUID | MS_NODEV, mopt) < 0)
		die_errno(1, "mount a %d MiB tmpfs on %s", state_mb, C.state);
	C.state_mounted = true;
	setenv("SILO_STATE_DIR", C.state, 1);
	setenv("SILO_RUNTIME_DIR", C.run, 1);
	unsetenv("SILO_HOST");
	unsetenv("SILO_SOCKET");
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	C.h = curl_easy_init();
	int rc = 1;
	if (!silod_start())
		die(1, "silod does not start (log: %s)", C.log);
	if (!provider_available("namespace")) {
		printf("{\"benchmark\":\"chaos\",\"skipped\":\"the namespace provider is unavailable\"}\n");
		silod_stop();
		rc = 77;
		goto out;
	}
	C.qemu_ok = provider_available("qemu");
	if (!C.qemu_ok && w[P_QEMU]) {
		fprintf(stderr, "chaos: qemu unavailable: its cycles run on namespace\n");
		w[P_NS] += w[P_QEMU];
		w[P_QEMU] = 0;
	}

	/* faults per provider, each kind once per shuffled round */
	static const enum fault ns_faults[] = {F_NONE, F_KILL_AGENT, F_KILL_SILOD_CREATE, F_KILL_SILOD_DELETE,
					       F_DISK_FULL, F_STOP_GUEST};
	static const enum fault vm_faults[] = {F_NONE, F_KILL_VMM, F_KILL_SILOD_CREATE, F_KILL_SILOD_DELETE,
					       F_DISK_FULL, F_STOP_GUEST};
	const enum fault *flist[P__N] = {ns_faults, vm_faults};
	enum fault round[P__N][F__N];
	int rpos[P__N] = {F__N, F__N};
	int count[F__N][P__N] = {{0}};
	int credit[P__N] = {0};
	double *ms[P__N] = {xcalloc((size_t)cycles, sizeof(double)), xcalloc((size_t)cycles, sizeof(double))};
	int nms[P__N] = {0};
	uint64_t t_start = now_mono_ns();
	int done = 0;
	for (C.cycle = 1; C.cycle <= cycles; C.cycle++) {
		if (bench_ms_since(t_start) > time_cap * 1000.0) {
			fprintf(stderr, "chaos: time cap of %d s reached after %d cycles\n", time_cap, done);
			break;
		}
		/* smooth weighted round robin: the mix is exact, evenly spread */
		int prov = 0, total = w[P_NS] + w[P_QEMU];
		for (int p = 0; p < P__N; p++)
			credit[p] += w[p];
		for (int p = 1; p < P__N; p++)
			if (credit[p] > credit[prov])
				prov = p;
		credit[prov] -= total;
		if (rpos[prov] >= 6) {
			for (int i = 0; i < 6; i++)
				round[prov][i] = flist[prov][i];
			for (int i = 5; i > 0; i--) {
				int j = rnd_int(i + 1);
				enum fault t = round[prov][i];
				round[prov][i] = round[prov][j];
				round[prov][j] = t;
			}
			rpos[prov] = 0;
		}
		enum fault f = round[prov][rpos[prov]++];
		C.cur_prov = prov_names[prov];
		C.cur_fault = fault_names[f];
		count[f][prov]++;
		uint64_t t0 = now_mono_ns();
		silod_check();
		run_fault(prov, f);
		settle();
		see_host_ids();
		if (plant && C.cycle == 1)
			plant_leak();
		char **left = scan_settled(C.planted ? 0 : 5000);
		remember_leaks(left);
		strv_free(left);
		ms[prov][nms[prov]++] = bench_ms_since(t0);
		done++;
		fprintf(stderr, "chaos: cycle %d/%d %s %s %.0f ms\n", C.cycle, cycles, C.cur_prov, C.cur_fault,
			bench_ms_since(t0));
	}
	C.cur_prov = "end";
	C.cur_fault = "stop";
	settle();
	int stop_rc = silod_stop();
	see_host_ids();
	char **left = scan_settled(C.planted ? 0 : 5000);
	remember_leaks(left);
	strv_free(left);
	if (C.planted > 0) {   /* checked; now remove the plant */
		kill(C.planted, SIGKILL);
		waitpid(C.planted, NULL, 0);
	}

	/* the registry: every sandbox seen has a row, every row ended */
	char **lost = NULL;
	registry *reg = NULL;
	char dbp[PATH_MAX + 32];
	snprintf(dbp, sizeof dbp, "%s/registry.db", C.state);
	reg_sandbox *rows = NULL;
	size_t nrows = 0;
	if (registry_open(dbp, &reg, &err) < 0 || registry_list(reg, &(reg_filter){0}, &rows, &nrows, &err) < 0) {
		item(&lost, xasprintf("registry unreadable: %s", err.message));
	} else {
		for (char **id = C.ids; id && *id; id++) {
			bool found = false;
			for (size_t i = 0; i < nrows && !found; i++)
				found = !strcmp(rows[i].id, *id);
			if (!found)
				item(&lost, xasprintf("%s: seen on the host or through the API, no registry row", *id));
		}
		for (size_t i = 0; i < nrows; i++)
			if (strcmp(rows[i].state, "terminated") != 0 && strcmp(rows[i].state, "error") != 0)
				item(&lost, xasprintf("%s: registry row still '%s' with nothing running", rows[i].id, rows[i].state));
	}
	registry_close(reg);
	for (char **p = lost; p && *p; p++)
		fprintf(stderr, "chaos: LOST %s\n", *p);
	/* the audit chain survived kills and the full disk */
	char audp[PATH_MAX + 32];
	snprintf(audp, sizeof audp, "%s/audit.jsonl", C.state);
	audit_verify_result av = {0};
	int arc = audit_verify(audp, &av, &err);
	if (arc != 0)
		fprintf(stderr, "chaos: audit log %s: %s\n", arc < 0 ? "unreadable" : "broken",
			arc < 0 ? err.message : av.why);

	/* silod's own health over the run */
	char *logtxt = NULL;
	size_t loglen = 0;
	int sanitizer = 0;
	if (read_file(C.log, 256u << 20, &logtxt, &loglen, NULL) == 0) {
		for (char *p = logtxt; (p = strstr(p, "ERROR: AddressSanitizer")); p++)
			sanitizer++;
		for (char *p = logtxt; (p = strstr(p, "runtime error:")); p++)
			sanitizer++;
		free(logtxt);
	}

	json_t *o = json_pack("{s:s,s:I,s:i,s:i,s:f,s:{s:i,s:i},s:i}", "benchmark", "chaos", "seed", (json_int_t)seed,
			      "cycles", cycles, "cycles_done", done, "duration_s", bench_ms_since(t_start) / 1000.0,
			      "mix", "namespace", w[P_NS], "qemu", w[P_QEMU], "state_mb", state_mb);
	json_t *fj = json_object();
	for (int f = 0; f < F__N; f++) {
		if (count[f][P_NS] || count[f][P_QEMU])
			json_object_set_new(fj, fault_names[f],
					    json_pack("{s:i,s:i}", "namespace", count[f][P_NS], "qemu", count[f][P_QEMU]));
	}
	json_object_set_new(o, "faults", fj);
	json_object_set_new(o, "cycle_time", json_pack("{s:o,s:o}", "namespace", pct_json(ms[P_NS], nms[P_NS]), "qemu",
						       pct_json(ms[P_QEMU], nms[P_QEMU])));
	json_object_set_new(o, "silod", json_pack("{s:i,s:i,s:i,s:i,s:i}", "starts", C.starts, "killed", C.kills,
						  "crashes", C.crashes, "sanitizer_reports", sanitizer, "final_exit",
						  stop_rc));
	json_object_set_new(o, "audit", json_pack("{s:b,s:I}", "intact", arc == 0, "records", (json_int_t)av.records));
	json_object_set_new(o, "api_errors", json_integer(C.api_errors));
	json_object_set_new(o, "sandboxes_seen", json_integer((json_int_t)strv_len(C.ids)));
	json_object_set_new(o, "registry_rows", json_integer((json_int_t)nrows));
	json_t *oa = json_array(), *la = json_array();
	for (size_t i = 0; i < C.nitems && i < MAX_ITEMS; i++)
		json_array_append_new(oa, json_string(C.items[i]));
	for (char **p = lost; p && *p && json_array_size(la) < MAX_ITEMS; p++)
		json_array_append_new(la, json_string(*p));
	json_object_set_new(o, "orphans", oa);
	json_object_set_new(o, "lost", la);
	bench_print_json(o, JSON_PRESERVE_ORDER);
	json_decref(o);
	size_t nlost = strv_len(lost);
	printf("orphans %zu, lost %zu\n", C.nitems, nlost);
	rc = C.nitems || nlost || C.crashes || sanitizer || arc != 0 ? 1 : 0;
	reg_sandboxes_free(rows, nrows);
	strv_free(lost);
	free(ms[0]);
	free(ms[1]);
out:
	curl_easy_cleanup(C.h);
	curl_global_cleanup();
	if (C.state_mounted && (keep || rc == 1)) {   /* the tmpfs goes: keep a copy to look at */
		pid_t cp = fork();
		if (cp == 0) {
			char dst[PATH_MAX + 32];
			snprintf(dst, sizeof dst, "%s/state-copy", C.tmp);
			execlp("cp", "cp", "-a", C.state, dst, (char *)NULL);
			_exit(127);
		}
		waitpid(cp, NULL, 0);
	}
	if (C.state_mounted && umount2(C.state, MNT_DETACH) < 0)
		fprintf(stderr, "chaos: umount %s: %s\n", C.state, strerror(errno));
	if (keep || rc == 1)
		fprintf(stderr, "chaos: kept %s (silod log: %s, state: state-copy)\n", C.tmp, C.log);
	else
		rm_rf(C.tmp);
	strv_free(C.ids);
	for (size_t i = 0; i < C.nitems; i++)
		free(C.items[i]);
	free(C.items);
	free(C.procs);
	return rc;
}
