/* SPDX-License-Identifier: Apache-2.0
 * The manager against the real namespace provider, a real SQLite registry and
 * a real audit log in a temp state dir: concurrent creates race for the
 * --max-sandboxes slots, ids are unique, every sandbox is tracked on its own,
 * events carry previous/new state and reason, capacity is checked.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/manager.h"
#include "harness.h"
#include "output_test.h"

static char statedir[256];

static void setup(void)
{
	char tmpl[] = "/tmp/silo-mgr-XXXXXX";
	REQUIRE(mkdtemp(tmpl));
	snprintf(statedir, sizeof statedir, "%s", tmpl);
	char *run = xasprintf("%s/run", tmpl);
	mkdir_p(run, 0700);
	setenv("SILO_RUNTIME_DIR", run, 1);
	setenv("SILO_STATE_DIR", tmpl, 1);
	free(run);
}

static manager *open_mgr(unsigned max)
{
	manager_config cfg = {.state_dir = statedir, .max_sandboxes = max, .grace_ms = 500,
			      .capacity_vcpus = 1000, .capacity_memory_mb = 8192};
	manager *m;
	silo_error err;
	if (manager_open(&cfg, &m, &err) < 0) {
		printf("# manager_open: %s\n", err.message);
		return NULL;
	}
	json_t *p = manager_providers_json(m);
	size_t i;
	json_t *v;
	bool ns = false;
	json_array_foreach(p, i, v)
		if (!strcmp(json_string_value(json_object_get(v, "name")), "namespace"))
			ns = json_is_true(json_object_get(v, "available"));
	json_decref(p);
	if (!ns) {
		manager_close(m, true);
		SKIP("namespace provider unavailable here");
	}
	return m;
}

static void ns_spec(vm_spec *s, const char *name)
{
	silo_error err;
	REQUIRE(spec_default("namespace", s, &err) == 0);
	free(s->provider);
	s->provider = xstrdup("namespace");
	snprintf(s->name, sizeof s->name, "%s", name);
	s->vcpus = 1;
	s->memory_mb = 256;
}

typedef struct racer {
	manager *m;
	char id[SILO_ID_MAX];
	int rc;
	silo_code code;
} racer;

static void *race(void *arg)
{
	racer *r = arg;
	vm_spec s;
	ns_spec(&s, "racer");
	silo_error err = {0};
	r->rc = manager_create(r->m, &s, NULL, r->id, &err);
	r->code = err.code;
	spec_free(&s);
	return NULL;
}

TEST(concurrent_creates_respect_the_limit)
{
	setup();
	manager *m = open_mgr(3);
	REQUIRE(m);
	racer r[6];
	pthread_t t[6];
	for (int i = 0; i < 6; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].m = m;
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	int ok = 0, limited = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		if (r[i].rc == 0)
			ok++;
		else if (r[i].code == SILO_ERR_MAX_VMS_EXCEEDED)
			limited++;
		else
			printf("# create %d failed with %s\n", i, silo_code_name(r[i].code));
	}
	CHECK_INT_EQ(ok, 3);
	CHECK_INT_EQ(limited, 3);
	/* unique ids, each independently usable */
	for (int i = 0; i < 6; i++)
		for (int j = i + 1; j < 6; j++)
			if (r[i].rc == 0 && r[j].rc == 0)
				CHECK(strcmp(r[i].id, r[j].id) != 0);
	json_t *list;
	silo_error err;
	REQUIRE(manager_list_json(m, NULL, &list, &err) == 0);
	CHECK_INT_EQ(json_array_size(list), 3);
	json_decref(list);
	/* deleting one frees a slot */
	for (int i = 0; i < 6; i++) {
		if (r[i].rc == 0) {
			CHECK(manager_delete(m, r[i].id, "test", 0, &err) == 0);
			break;
		}
	}
	racer again = {.m = m};
	race(&again);
	CHECK_INT_EQ(again.rc, 0);
	manager_close(m, true);
	/* terminate_all left nothing behind */
	char *sbdir = xasprintf("%s/sandboxes", getenv("SILO_RUNTIME_DIR"));
	char *cmd = xasprintf("test -z \"$(ls -A %s 2>/dev/null)\"", sbdir);
	CHECK(system(cmd) == 0);
	free(cmd);
	free(sbdir);
	rm_rf(statedir);
}

typedef struct evlog {
	pthread_mutex_t lock;
	char lines[64][256];
	int n;
} evlog;

static void on_ev(void *ud, const mgr_event *ev)
{
	evlog *l = ud;
	pthread_mutex_lock(&l->lock);
	if (l->n < 64)
		snprintf(l->lines[l->n++], 256, "%s %s %s>%s %.120s", mgr_event_name(ev->type), ev->sandbox_id,
			 ev->prev_state, ev->state, ev->reason);
	pthread_mutex_unlock(&l->lock);
}

static bool seen(evlog *l, const char *prefix)
{
	bool hit = false;
	pthread_mutex_lock(&l->lock);
	for (int i = 0; i < l->n && !hit; i++)
		hit = !strncmp(l->lines[i], prefix, strlen(prefix));
	pthread_mutex_unlock(&l->lock);
	return hit;
}

TEST(events_and_exec_and_capacity)
{
	setup();
	manager *m = open_mgr(8);
	REQUIRE(m);
	evlog l = {.lock = PTHREAD_MUTEX_INITIALIZER};
	int sub = manager_subscribe(m, on_ev, &l);
	vm_spec s;
	ns_spec(&s, "ev");
	char id[SILO_ID_MAX];
	silo_error err;
	REQUIRE(manager_create(m, &s, NULL, id, &err) == 0);
	char want[160];
	snprintf(want, sizeof want, "state-change %s provisioning>running", id);
	CHECK(seen(&l, want));
	snprintf(want, sizeof want, "spawned %s", id);
	CHECK(seen(&l, want));
	snprintf(want, sizeof want, "ready %s", id);
	CHECK(seen(&l, want));

	/* exec through the manager */
	char *argv[] = {"sh", "-c", "echo manager-exec", NULL};
	exec_req rq = {.argv = argv, .uid = -1, .gid = -1};
	mgr_exec *x;
	outbuf out;
	out_reset(&out);
	REQUIRE(manager_exec_start(m, id, &rq, out_collect, &out, "test", &x, &err) == 0);
	exec_result res;
	CHECK(manager_exec_wait(x, -1, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_STR_EQ(out.data, "manager-exec\n");
	manager_exec_free(x);

	/* capacity: more memory than the configured capacity */
	vm_spec big;
	ns_spec(&big, "big");
	big.memory_mb = 16384;   /* valid, but more than the 8192 MB capacity */
	char id2[SILO_ID_MAX];
	CHECK(manager_create(m, &big, NULL, id2, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	spec_free(&big);

	CHECK(manager_delete(m, id, "test", 500, &err) == 0);
	snprintf(want, sizeof want, "terminated %s", id);
	CHECK(seen(&l, want));
	CHECK(manager_delete(m, id, "test", 500, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VM_NOT_FOUND);
	manager_unsubscribe(m, sub);
	spec_free(&s);
	manager_close(m, true);
	rm_rf(statedir);
}

static char *row_state(manager *m, const char *id)
{
	json_t *o = NULL;
	silo_error err;
	if (manager_get_json(m, id, &o, &err) < 0)
		return xstrdup("?");
	char *st = xstrdup(json_string_value(json_object_get(o, "state")) ?: "?");
	json_decref(o);
	return st;
}

/* A full state disk (found by bench/chaos): the delete works, the registry
 * cannot take the new state yet; once there is space again the monitor writes
 * it, so no row is left saying "running" for a sandbox that is gone. */
TEST(a_full_state_disk_delays_state_rows_but_loses_none)
{
	if (geteuid() != 0)
		SKIP("mounting a small tmpfs needs root");
	setup();
	if (mount("silo-mgr-test", statedir, "tmpfs", 0, "size=4m") < 0)
		SKIP("mount tmpfs: %s", strerror(errno));
	manager *m = open_mgr(8);
	REQUIRE(m);
	vm_spec s;
	ns_spec(&s, "full");
	char id[SILO_ID_MAX];
	silo_error err;
	REQUIRE(manager_create(m, &s, NULL, id, &err) == 0);
	char *filler = xasprintf("%s/filler", statedir);
	int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	static char buf[65536];
	for (size_t chunk = sizeof buf; chunk >= 1; chunk /= 4)
		while (write(fd, buf, chunk) == (ssize_t)chunk)
			;
	close(fd);
	CHECK(manager_delete(m, id, "test", 0, &err) == 0);
	char *st = row_state(m, id);
	printf("# row while the disk is full: %s\n", st);
	free(st);
	unlink(filler);
	bool done = false;
	for (int i = 0; i < 100 && !done; i++) {   /* the monitor runs every 500 ms */
		st = row_state(m, id);
		done = !strcmp(st, "terminated");
		free(st);
		if (!done)
			usleep(50 * 1000);
	}
	CHECK(done);
	spec_free(&s);
	manager_close(m, true);
	umount2(statedir, MNT_DETACH);
	free(filler);
	rm_rf(statedir);
}

TEST_MAIN(concurrent_creates_respect_the_limit, events_and_exec_and_capacity,
	  a_full_state_disk_delays_state_rows_but_loses_none)
