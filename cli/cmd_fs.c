/* SPDX-License-Identifier: Apache-2.0
 * Files of a sandbox beyond one file, through silod (docs/openapi.yaml
 * "Files"): `silo fs ls|stat|mkdir|mv|rm|watch` and `silo cp -r`.
 *
 * `silo cp -r` moves trees as tar streams (lib/archive), with docker cp's
 * rules for the destination: an existing directory receives SRC under its own
 * name, a path that does not exist becomes the copy of SRC. Going in, the tar
 * is written here (owners recorded as root) and extracted by the agent inside
 * the sandbox; coming out, the guest's archive is hostile input: it is
 * extracted here by archive_extract with every rule of lib/archive/archive.h
 * (one top entry, no "..", no absolute names, nothing written through a
 * symlink, no devices, no setuid/setgid bits, hard links only within the
 * archive), and an archive cut short (the connection dropped, silod aborted a
 * failing transfer) is an error, never a partial copy reported as success.
 * `-` as the destination writes the raw archive to stdout, as the source
 * reads one from stdin.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

static char *fs_path(const char *id, const char *what, const char *gpath)
{
	char *eid = api_escape(id), *ep = gpath ? api_escape(gpath) : NULL;
	char *p = ep ? xasprintf("/v1/sandboxes/%s/%s?path=%s", eid, what, ep) : xasprintf("/v1/sandboxes/%s/%s", eid, what);
	free(eid);
	free(ep);
	return p;
}

/* stat a guest path: 1 exists (*is_dir), 0 missing, or the CLI status (> 1 after printing). */
static int remote_stat(const char *id, const char *gpath, bool *is_dir, bool json)
{
	api_client *cl;
	silo_error err;
	if (api_client_new(&cl, &err) < 0)
		return -cli_error(&err, json);
	char *p = fs_path(id, "fs/stat", gpath);
	json_t *o = NULL;
	int rc = api_get_json(cl, p, &o, &err);
	free(p);
	api_client_free(cl);
	if (rc < 0) {
		if (err.code == SILO_ERR_FILE_NOT_FOUND)
			return 0;
		return -cli_error(&err, json);
	}
	*is_dir = !strcmp(cli_jstr(o, "type"), "dir");
	json_decref(o);
	return 1;
}

/* the last component of path (trailing slashes ignored), "" for "/" */
static void base_of(const char *path, char *out, size_t len)
{
	char *t = xstrdup(path);
	size_t n = strlen(t);
	while (n > 1 && t[n - 1] == '/')
		t[--n] = '\0';
	snprintf(out, len, "%s", strcmp(t, "/") ? basename(t) : "");
	free(t);
}

static void dir_of(const char *path, char *out, size_t len)
{
	char *t = xstrdup(path);
	size_t n = strlen(t);
	while (n > 1 && t[n - 1] == '/')
		t[--n] = '\0';
	snprintf(out, len, "%s", dirname(t));
	free(t);
}

/* ---- upload: a tree here -> the sandbox ---- */

static int to_fd(void *ud, const void *buf, size_t n, silo_error *err)
{
	if (write_all(*(int *)ud, buf, n) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write the archive");
	return 0;
}

static void warn_stderr(void *ud, const char *msg)
{
	fprintf(stderr, "silo: cp: %s\n", msg);
}

static int cp_in(const char *src, const char *id, const char *dpath, bool json)
{
	silo_error err;
	bool from_stdin = !strcmp(src, "-");
	struct stat st;
	if (!from_stdin && lstat(src, &st) < 0) {
		silo_fail(&err, SILO_ERR_FILE_NOT_FOUND, errno, "%s", src);
		return cli_error(&err, json);
	}
	char dest[4096], name[256];
	bool is_dir = false;
	int e = remote_stat(id, dpath, &is_dir, json);
	if (e < 0)
		return -e;
	if (from_stdin) {   /* a ready archive: extract it into dpath */
		snprintf(dest, sizeof dest, "%s", dpath);
		name[0] = '\0';
	} else if (e == 1 && is_dir) {   /* into an existing directory, under SRC's name */
		snprintf(dest, sizeof dest, "%s", dpath);
		base_of(src, name, sizeof name);
	} else if (e == 1 && S_ISDIR(st.st_mode)) {
		silo_fail(&err, SILO_ERR_CONFLICT, ENOTDIR, "%s:%s exists and is not a directory", id, dpath);
		return cli_error(&err, json);
	} else {   /* becomes dpath */
		dir_of(dpath, dest, sizeof dest);
		base_of(dpath, name, sizeof name);
	}
	if (!from_stdin && (!name[0] || !strcmp(name, "..") || !strcmp(name, "."))) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "cp: cannot name the copy of %s \"%s\"", src, name);
		return cli_error(&err, json);
	}
	int pfd[2] = {-1, -1};
	pid_t child = -1;
	int in = STDIN_FILENO;
	if (!from_stdin) {
		/* the archive is written by a child into a pipe that the upload reads */
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "pipe");
			return cli_error(&err, json);
		}
		child = fork();
		if (child == 0) {
			close(pfd[0]);
			signal(SIGPIPE, SIG_DFL);
			archive_wopts o = {.name = name, .zero_owner = true, .warn = warn_stderr};
			silo_error we = {0};
			if (archive_write(AT_FDCWD, src, &o, to_fd, &pfd[1], NULL, &we) < 0) {
				fprintf(stderr, "silo: cp: %s\n", we.message);
				_exit(1);
			}
			_exit(0);
		}
		close(pfd[1]);
		in = pfd[0];
		if (child < 0) {
			close(pfd[0]);
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "fork");
			return cli_error(&err, json);
		}
	}
	api_client *cl;
	int rc = 0;
	if (api_client_new(&cl, &err) < 0) {
		rc = cli_error(&err, json);
	} else {
		char *p = fs_path(id, "archive", dest);
		char *resp = NULL;
		if (api_stream(cl, "PUT", p, "application/x-tar", NULL, 0, in, NULL, NULL, &err) < 0)
			rc = cli_error(&err, json);
		free(resp);
		free(p);
		api_client_free(cl);
	}
	if (child > 0) {
		close(pfd[0]);
		int ws;
		waitpid(child, &ws, 0);
		if (rc == 0 && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
			silo_fail(&err, SILO_ERR_IO_ERROR, 0, "cp: writing the archive of %s failed", src);
			rc = cli_error(&err, json);
		}
	}
	if (rc == 0 && json)
		printf("{\"id\":\"%s\",\"path\":\"%s\"}\n", id, dpath);
	return rc;
}

/* ---- download: the sandbox -> a tree here ---- */

typedef struct xpipe {
	int rfd;
	int rootfd;
	archive_xopts o;
	silo_error err;
	int rc;
	archive_stats st;
} xpipe;

static ssize_t pipe_read(void *ud, void *buf, size_t n, silo_error *err)
{
	xpipe *x = ud;
	for (;;) {
		ssize_t k = read(x->rfd, buf, n);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read the archive");
	}
}

static void *extract_main(void *arg)
{
	xpipe *x = arg;
	tar_reader *r = tar_reader_new(pipe_read, x);
	x->rc = archive_extract(r, x->rootfd, &x->o, &x->st, &x->err);
	tar_reader_free(r);
	/* drain what is left, so the download never blocks on a full pipe */
	char sink[65536];
	while (read(x->rfd, sink, sizeof sink) > 0)
		;
	return NULL;
}

static bool write_chunk(void *ud, const char *buf, size_t len)
{
	return write_all(*(int *)ud, buf, len) == 0;
}

static int cp_out(const char *id, const char *spath, const char *dst, bool json)
{
	silo_error err;
	char *p = fs_path(id, "archive", spath);
	api_client *cl;
	if (api_client_new(&cl, &err) < 0) {
		free(p);
		return cli_error(&err, json);
	}
	int rc = 0;
	if (!strcmp(dst, "-")) {   /* the raw archive */
		int fd = STDOUT_FILENO;
		if (api_stream(cl, "GET", p, NULL, NULL, 0, -1, write_chunk, &fd, &err) < 0)
			rc = cli_error(&err, json);
		free(p);
		api_client_free(cl);
		return rc;
	}
	struct stat st;
	char dir[4096], name[256] = "";
	bool into = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
	if (into) {
		snprintf(dir, sizeof dir, "%s", dst);
	} else {
		dir_of(dst, dir, sizeof dir);
		base_of(dst, name, sizeof name);
	}
	xpipe x = {.o = {.single_root = true, .rename_root = into ? NULL : name}};
	x.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int pfd[2];
	if (x.rootfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		silo_fail(&err, errno == ENOENT ? SILO_ERR_FILE_NOT_FOUND : SILO_ERR_IO_ERROR, errno, "%s", dir);
		if (x.rootfd >= 0)
			close(x.rootfd);
		free(p);
		api_client_free(cl);
		return cli_error(&err, json);
	}
	x.rfd = pfd[0];
	pthread_t th;
	pthread_create(&th, NULL, extract_main, &x);
	int wfd = pfd[1];
	int drc = api_stream(cl, "GET", p, NULL, NULL, 0, -1, write_chunk, &wfd, &err);
	close(pfd[1]);
	pthread_join(th, NULL);
	close(pfd[0]);
	close(x.rootfd);
	free(p);
	api_client_free(cl);
	if (drc < 0)
		rc = cli_error(&err, json);
	else if (x.rc < 0)
		rc = cli_error(&x.err, json);
	else if (json)
		printf("{\"id\":\"%s\",\"path\":\"%s\",\"entries\":%llu,\"bytes\":%llu}\n", id, spath,
		       (unsigned long long)x.st.entries, (unsigned long long)x.st.bytes);
	return rc;
}

int cli_cp_tree(const char *src, const char *dst, bool json)
{
	char sid[128], did[128];
	const char *spath, *dpath;
	bool sremote = cli_split_remote(src, sid, sizeof sid, &spath);
	bool dremote = cli_split_remote(dst, did, sizeof did, &dpath);
	if (sremote == dremote)
		return cli_usage_error("cp", "-r SRC DST  (one of them ID:/path)", json);
	return dremote ? cp_in(src, did, dpath, json) : cp_out(sid, spath, dst, json);
}

/* ---- silo fs ---- */

static int remote_arg(const char *verb, const char *a, char *id, size_t idlen, const char **path, bool json)
{
	if (!a || !cli_split_remote(a, id, idlen, path)) {
		silo_error e;
		silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0, "fs %s: expected ID:/path, got '%s'", verb, a ? a : "");
		return cli_error(&e, json);
	}
	return 0;
}

static void print_entry(json_t *e, const char *name, bool long_fmt)
{
	if (!long_fmt) {
		printf("%s%s\n", name, !strcmp(cli_jstr(e, "type"), "dir") ? "/" : "");
		return;
	}
	const char *t = cli_jstr(e, "type");
	char kind = !strcmp(t, "dir") ? 'd' : !strcmp(t, "symlink") ? 'l' : !strcmp(t, "file") ? '-' : '?';
	const char *link = cli_jstr(e, "link");
	printf("%c%s %5lld %5lld %10lld %.19s %s%s%s\n", kind, cli_jstr(e, "mode"), (long long)cli_jint(e, "uid"),
	       (long long)cli_jint(e, "gid"), (long long)cli_jint(e, "size"), cli_jstr(e, "mtime"), name,
	       link[0] ? " -> " : "", link);
}

static int fs_ls(int argc, char **argv, bool json)
{
	int depth = 1;
	bool long_fmt = false;
	const char *a = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "-l"))
			long_fmt = true;
		else if ((!strcmp(argv[i], "-d") || !strcmp(argv[i], "--depth")) && i + 1 < argc)
			depth = atoi(argv[++i]);
		else if (argv[i][0] == '-' || a)
			return cli_usage_error("fs ls", "[-l] [-d DEPTH] ID:/path", json);
		else
			a = argv[i];
	}
	char id[128];
	const char *path;
	int rc = remote_arg("ls", a, id, sizeof id, &path, json);
	if (rc)
		return rc;
	char *p = fs_path(id, "fs/list", path);
	char *full = xasprintf("%s&depth=%d&limit=100000", p, depth);
	json_t *o;
	rc = cli_call_table("GET", full, NULL, json, &o);
	free(p);
	free(full);
	if (rc || !o)
		return rc;
	size_t k;
	json_t *e;
	json_array_foreach(json_object_get(o, "entries"), k, e)
		print_entry(e, cli_jstr(e, "name"), long_fmt);
	if (json_is_true(json_object_get(o, "truncated")))
		fprintf(stderr, "silo: fs ls: more than 100000 entries; the listing is cut\n");
	json_decref(o);
	return 0;
}

static int fs_simple(const char *verb, const char *endpoint, json_t *body, bool json)
{
	int rc = cli_call_show("POST", endpoint, body, json, NULL);
	json_decref(body);
	return rc;
}

static volatile sig_atomic_t watch_stop;
static void on_watch_signal(int sig)
{
	watch_stop = sig;
}

typedef struct lines {
	char buf[65536];
	size_t len;
	bool json;
	bool ended;
} lines;

static bool watch_chunk(void *ud, const char *buf, size_t len)
{
	lines *l = ud;
	if (watch_stop)
		return false;
	while (len) {
		size_t k = MIN(len, sizeof l->buf - l->len);
		memcpy(l->buf + l->len, buf, k);
		l->len += k;
		buf += k;
		len -= k;
		char *nl;
		while ((nl = memchr(l->buf, '\n', l->len))) {
			size_t n = (size_t)(nl - l->buf);
			json_t *o = json_loadb(l->buf, n, 0, NULL);
			const char *ev = cli_jstr(o, "event");
			if (l->json && strcmp(ev, "ping")) {
				printf("%.*s\n", (int)n, l->buf);
			} else if (!strcmp(ev, "overflow")) {
				printf("overflow %lld events lost (list the directory again)\n", (long long)cli_jint(o, "lost"));
			} else if (!strcmp(ev, "end")) {
				printf("end (the directory is gone)\n");
				l->ended = true;
			} else if (strcmp(ev, "ping") && strcmp(ev, "error")) {
				printf("%-7s %s\n", ev, cli_jstr(o, "name"));
			}
			fflush(stdout);
			json_decref(o);
			memmove(l->buf, nl + 1, l->len - n - 1);
			l->len -= n + 1;
		}
		if (l->len == sizeof l->buf)
			l->len = 0;   /* a line that long is not from silod */
	}
	return true;
}

static int fs_watch(const char *id, const char *path, bool recursive, bool json)
{
	char *p = fs_path(id, "fs/watch", path);
	char *full = xasprintf("%s%s", p, recursive ? "&recursive=true" : "");
	api_client *cl;
	silo_error err;
	int rc = 0;
	if (api_client_new(&cl, &err) < 0) {
		rc = cli_error(&err, json);
	} else {
		struct sigaction sa = {.sa_handler = on_watch_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		api_client_set_abort(cl, &watch_stop);
		lines *l = xcalloc(1, sizeof *l);
		l->json = json;
		if (api_stream(cl, "GET", full, NULL, NULL, 0, -1, watch_chunk, l, &err) < 0 && !watch_stop)
			rc = cli_error(&err, json);
		free(l);
		api_client_free(cl);
	}
	free(p);
	free(full);
	return rc;
}

int cmd_fs(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *usage = "ls|stat|mkdir|mv|rm|watch ...";
	if (argc < 2) {
		cli_help("fs", stderr);   /* `silo fs --help`: cli/main.c */
		return 2;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "ls"))
		return fs_ls(argc - 1, argv + 1, json);
	/* the rest: flags, then one or two operands */
	bool p_flag = false, r_flag = false, n_flag = false;
	const char *mode = NULL, *ops[2] = {NULL, NULL};
	int nops = 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json"))
			continue;
		if (!strcmp(a, "-p"))
			p_flag = true;
		else if (!strcmp(a, "-r") || !strcmp(a, "-R"))
			r_flag = true;
		else if (!strcmp(a, "-n"))
			n_flag = true;
		else if (!strcmp(a, "-m") && i + 1 < argc)
			mode = argv[++i];
		else if (a[0] == '-' || nops == 2)
			return cli_usage_error("fs", usage, json);
		else
			ops[nops++] = a;
	}
	char id[128];
	const char *path;
	int rc = remote_arg(sub, ops[0], id, sizeof id, &path, json);
	if (rc)
		return rc;
	if (!strcmp(sub, "stat") && nops == 1) {
		char *p = fs_path(id, "fs/stat", path);
		json_t *o;
		rc = cli_call_json("GET", p, NULL, json, &o);
		free(p);
		if (rc)
			return rc;
		if (json)
			cli_print_json(o);
		else
			print_entry(o, path, true);
		json_decref(o);
		return 0;
	}
	char *ep = fs_path(id, !strcmp(sub, "mkdir") ? "fs/mkdir" : !strcmp(sub, "mv") ? "fs/move" : "fs/remove", NULL);
	if (!strcmp(sub, "mkdir") && nops == 1) {
		json_t *b = json_pack("{s:s,s:b}", "path", path, "parents", p_flag);
		if (mode)
			json_object_set_new(b, "mode", json_string(mode));
		rc = fs_simple(sub, ep, b, json);
	} else if (!strcmp(sub, "rm") && nops == 1) {
		rc = fs_simple(sub, ep, json_pack("{s:s,s:b}", "path", path, "recursive", r_flag), json);
	} else if (!strcmp(sub, "mv") && nops == 2) {
		char id2[128];
		const char *to = ops[1];
		if (cli_split_remote(ops[1], id2, sizeof id2, &to) && strcmp(id2, id)) {
			silo_error e;
			silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0, "fs mv: both paths must be in the same sandbox");
			free(ep);
			return cli_error(&e, json);
		}
		rc = fs_simple(sub, ep, json_pack("{s:s,s:s,s:b}", "from", path, "to", to, "overwrite", !n_flag), json);
	} else if (!strcmp(sub, "watch") && nops == 1) {
		rc = fs_watch(id, path, r_flag, json);
	} else {
		rc = cli_usage_error("fs", usage, json);
	}
	free(ep);
	return rc;
}
