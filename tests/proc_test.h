/* SPDX-License-Identifier: Apache-2.0
 * /proc helpers for tests that inspect a confined process (a jailed QEMU or silo-vmm):
 * a field of its status or limits, its namespaces, its first child, a /proc file's text,
 * and what its root holds. Every helper reads; none changes the process.
 */
#ifndef SILO_TESTS_PROC_TEST_H
#define SILO_TESTS_PROC_TEST_H

#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/util.h"
#include "harness.h"

/* The text of /proc/PID/FILE (up to 1 MiB, NUL-terminated; free it), NULL if unreadable. */
static __attribute__((unused)) char *proc_text(pid_t pid, const char *file)
{
	char p[96];
	snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, file);
	char *t = NULL;
	size_t n = 0;
	return read_file(p, 1 << 20, &t, &n, NULL) == 0 ? t : NULL;
}

/* The value after "Key:" in /proc/PID/FILE (status, limits ...). */
static __attribute__((unused)) bool proc_value(pid_t pid, const char *file, const char *key, char *out, size_t len)
{
	cleanup_free char *t = proc_text(pid, file);
	for (char *line = t, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		if (strncmp(line, key, strlen(key)))
			continue;
		const char *v = line + strlen(key);
		v += strspn(v, " \t:");
		snprintf(out, len, "%s", v);
		return true;
	}
	return false;
}

/* The first child of PID (its main thread's), 0 if none. */
static __attribute__((unused)) pid_t proc_first_child(pid_t pid)
{
	char f[64];
	snprintf(f, sizeof f, "task/%d/children", (int)pid);
	cleanup_free char *t = proc_text(pid, f);
	return t ? (pid_t)atoi(t) : 0;
}

/* Does pid share this process's namespace ns ("net", "mnt" ...)? */
static __attribute__((unused)) bool same_namespace(pid_t pid, const char *ns)
{
	char a[64], b[64], la[64] = "", lb[64] = "";
	snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)pid, ns);
	snprintf(b, sizeof b, "/proc/self/ns/%s", ns);
	if (readlink(a, la, sizeof la - 1) < 0 || readlink(b, lb, sizeof lb - 1) < 0)
		return true;
	return !strcmp(la, lb);
}

static char **proc_root_files_;
static __attribute__((unused)) int proc_root_walk_(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	if (type != FTW_D && type != FTW_DP) {
		size_t n = strv_len(proc_root_files_);
		proc_root_files_ = xrealloc(proc_root_files_, (n + 2) * sizeof *proc_root_files_);
		proc_root_files_[n] = xstrdup(path);
		proc_root_files_[n + 1] = NULL;
	}
	return 0;
}

/* Every entry but directories under PID's root, as paths inside it ("/dev/null"); strv_free it.
 * root gets "/proc/PID/root/." (the "/." walks into the magic link). */
static __attribute__((unused)) char **proc_root_files(pid_t pid, char *root, size_t len)
{
	snprintf(root, len, "/proc/%d/root/.", (int)pid);
	proc_root_files_ = NULL;
	REQUIRE(nftw(root, proc_root_walk_, 16, FTW_PHYS) == 0);
	for (char **f = proc_root_files_; f && *f; f++)
		memmove(*f, *f + strlen(root), strlen(*f + strlen(root)) + 1);
	char **files = proc_root_files_;
	proc_root_files_ = NULL;
	return files;
}

/* None of the n paths exists under root. */
static __attribute__((unused)) void check_absent_under(const char *root, const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char p[256];
		snprintf(p, sizeof p, "%s%s", root, paths[i]);
		if (path_exists(p))
			printf("# %s exists\n", p);
		CHECK(!path_exists(p));
	}
}

/* The credentials of a jailed VM process (named what in the log): one uid, equal to the gid,
 * in [base, base + count) and so never 0; no groups; no capability of any kind; no_new_privs;
 * seccomp filtering. other, a second sandbox's process, has another uid. Returns the uid. */
static __attribute__((unused)) unsigned check_jailed_creds(const char *what, pid_t pid, pid_t other, unsigned base,
							   unsigned count)
{
	char v[256];
	unsigned r = 0, e = 1, ss = 2, fs = 3, g = 0, ro = 0;
	REQUIRE(proc_value(pid, "status", "Uid:", v, sizeof v));
	REQUIRE(sscanf(v, "%u %u %u %u", &r, &e, &ss, &fs) == 4);
	printf("# %s pid %d: uid %s\n", what, (int)pid, v);
	CHECK(r == e && e == ss && ss == fs);
	CHECK(r >= base && r < base + count);
	REQUIRE(proc_value(pid, "status", "Gid:", v, sizeof v));
	CHECK(sscanf(v, "%u", &g) == 1 && g == r);
	REQUIRE(proc_value(pid, "status", "Groups:", v, sizeof v));
	CHECK_STR_EQ(v, "");
	REQUIRE(proc_value(other, "status", "Uid:", v, sizeof v));
	CHECK(sscanf(v, "%u", &ro) == 1 && ro != r); /* two sandboxes, two uids */
	static const char *const caps[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		REQUIRE(proc_value(pid, "status", caps[i], v, sizeof v));
		CHECK_STR_EQ(v, "0000000000000000");
	}
	REQUIRE(proc_value(pid, "status", "NoNewPrivs:", v, sizeof v));
	CHECK_STR_EQ(v, "1");
	REQUIRE(proc_value(pid, "status", "Seccomp:", v, sizeof v));
	CHECK_STR_EQ(v, "2");
	return r;
}

/* Every mount in /proc/PID/mountinfo is read-only (per-mount options "ro" or "ro,...");
 * returns how many there are. */
static __attribute__((unused)) int check_mounts_read_only(pid_t pid)
{
	cleanup_free char *mounts = proc_text(pid, "mountinfo");
	REQUIRE(mounts);
	int n = 0;
	for (char *line = mounts, *nl; line && *line; line = nl ? nl + 1 : NULL, n++) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		char opts[256] = "";
		/* field 6: per-mount options */
		if (sscanf(line, "%*s %*s %*s %*s %*s %255s", opts) != 1 || (strcmp(opts, "ro") && strncmp(opts, "ro,", 3))) {
			printf("# writable mount in the namespace of %d: %s\n", (int)pid, line);
			CHECK(!"read-only");
		}
	}
	return n;
}

#endif
