/* SPDX-License-Identifier: Apache-2.0
 * The state directory of a container: ROOT/ID/ (0700)
 *   state.json   rt_state, replaced atomically (write_file_atomic) at every change
 *   lock         flock: commands that change the container take it exclusively
 *   ctl.sock     the supervisor's control socket (ctl.c)
 * Only the supervisor writes state.json while it lives; `delete` removes the
 * directory after the supervisor is gone. A reader that finds the supervisor
 * dead (pid and start time, so a reused pid is not mistaken for it) reports
 * the container stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"
#include "providers/ns.h"
#include "runtime/rt.h"

static const char *const status_names[] = {"creating", "created", "running", "paused", "stopped"};

const char *rt_status_name(rt_status s)
{
	return (unsigned)s < ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

void rt_dir(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", rt_g.root, id);
}

int rt_state_write(const rt_state *s, silo_error *err)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:s,s:s,s:i,s:i,s:s,s:o}", "id", s->id, "bundle",
			      s->bundle, "rootfs", s->rootfs, "status", rt_status_name(s->status), "pid", (int)s->pid,
			      "starttime", (json_int_t)s->starttime, "sandbox", s->sandbox, "provider", s->provider,
			      "silo_rundir", s->silo_rundir, "sandbox_pid", (int)s->sandbox_pid, "exit_code", s->exit_code,
			      "created", s->created, "annotations", s->annotations ? json_incref(s->annotations) : json_object());
	if (!o)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "state.json");
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	char dir[PATH_MAX], p[PATH_MAX + 16];
	rt_dir(s->id, dir, sizeof dir);
	snprintf(p, sizeof p, "%s/state.json", dir);
	int rc = write_file_atomic(p, txt, strlen(txt), 0600, err);
	free(txt);
	return rc;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	snprintf(dst, len, "%s", v ? v : "");
}

int rt_state_read(const char *id, rt_state *s, silo_error *err)
{
	memset(s, 0, sizeof *s);
	if (!rt_id_valid(id))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "container id \"%.64s\": expected 1-%d of [A-Za-z0-9_.+-], not starting with . or -",
				 id ? id : "", RT_ID_MAX);
	char dir[PATH_MAX], p[PATH_MAX + 16];
	rt_dir(id, dir, sizeof dir);
	snprintf(p, sizeof p, "%s/state.json", dir);
	cleanup_free char *txt = NULL;
	size_t n = 0;
	silo_error e = {0};
	if (read_file(p, 1u << 20, &txt, &n, &e) < 0)
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, e.sys_errno, "container \"%s\" does not exist", id);
	json_t *o = json_loadb(txt, n, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "%s is not JSON", p);
	}
	snprintf(s->id, sizeof s->id, "%s", id);
	copy_str(s->bundle, sizeof s->bundle, o, "bundle");
	copy_str(s->rootfs, sizeof s->rootfs, o, "rootfs");
	copy_str(s->sandbox, sizeof s->sandbox, o, "sandbox");
	copy_str(s->provider, sizeof s->provider, o, "provider");
	copy_str(s->silo_rundir, sizeof s->silo_rundir, o, "silo_rundir");
	copy_str(s->created, sizeof s->created, o, "created");
	const char *st = json_string_value(json_object_get(o, "status"));
	s->status = RT_STOPPED;
	for (size_t i = 0; st && i < ARRAY_SIZE(status_names); i++)
		if (!strcmp(st, status_names[i]))
			s->status = (rt_status)i;
	s->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	s->starttime = (unsigned long long)json_integer_value(json_object_get(o, "starttime"));
	s->exit_code = (int)json_integer_value(json_object_get(o, "exit_code"));
	s->sandbox_pid = (pid_t)json_integer_value(json_object_get(o, "sandbox_pid"));
	s->annotations = json_incref(json_object_get(o, "annotations"));
	json_decref(o);
	return 0;
}

void rt_state_free(rt_state *s)
{
	json_decref(s->annotations);
	s->annotations = NULL;
}

bool rt_supervisor_alive(const rt_state *s)
{
	if (s->pid <= 0)
		return false;
	char st;
	unsigned long long start = 0;
	if (ns_proc_stat(s->pid, &st, &start) < 0 || st == 'Z' || st == 'X')
		return false;
	return !s->starttime || start == s->starttime;
}

rt_status rt_state_status(const rt_state *s)
{
	if (s->status != RT_STOPPED && !rt_supervisor_alive(s))
		return RT_STOPPED;
	return s->status;
}

json_t *rt_state_json(const rt_state *s)
{
	rt_status st = rt_state_status(s);
	json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s}", "ociVersion", RT_OCI_VERSION, "id", s->id, "status",
			      rt_status_name(st), "pid", st == RT_STOPPED ? 0 : (int)s->pid, "bundle", s->bundle,
			      "rootfs", s->rootfs, "created", s->created, "owner", "root");
	json_object_set_new(o, "annotations", s->annotations ? json_incref(s->annotations) : json_object());
	return o;
}

int rt_lock(const char *id, silo_error *err)
{
	char dir[PATH_MAX], p[PATH_MAX + 16];
	rt_dir(id, dir, sizeof dir);
	snprintf(p, sizeof p, "%s/lock", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_VM_NOT_FOUND : SILO_ERR_IO_ERROR, errno,
				 "container \"%s\": %s", id, p);
	if (flock_wait(fd, LOCK_EX) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "lock %s", p);
	}
	return fd;
}
