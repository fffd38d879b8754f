/* SPDX-License-Identifier: Apache-2.0
 * `silo image`: build, list, verify and remove guest images (docs/images.md).
 *
 *   silo image build NAME [--force]   run images/build-kernel.sh + build-image.sh NAME
 *   silo image build namespace        the namespace provider's base layer, recorded as a tree
 *   silo image add-tree NAME DIR      record a directory (a namespace boot.rootfs) as a tree
 *   silo image ls [--json]            name, kind, size, sha256, created (images and trees)
 *   silo image verify NAME            re-check sizes and SHA-256 (libsodium), or a tree's digest
 *   silo image rm NAME                remove the files and the manifest entry (a tree: the entry)
 * build and add-tree take --sign KEY [--expires D]: sign the manifest afterwards,
 * with a new version, exactly as `silo trust sign -s KEY [--expires D]`.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "image/image.h"
#include "providers/ns.h"
#include "silo-config.h"
#include "trust/trust.h"

static const char image_usage[] =
	"usage: silo image build NAME [--force]   build an image (names: base, python, namespace)\n"
	"       silo image add-tree NAME DIR      record a directory tree (a namespace boot.rootfs)\n"
	"       silo image ls [--json]            list images and trees\n"
	"       silo image verify NAME            check an image's sizes and SHA-256, or a tree's digest\n"
	"       silo image rm NAME                remove an image (a tree: its manifest entry)\n"
	"build and add-tree also take --sign KEY [--expires D]: sign the manifest afterwards\n"
	"(a new version; see silo trust sign).\n";

/* Directory with build-kernel.sh / build-image.sh. */
static int images_dir(char *out, size_t len, silo_error *err)
{
	const char *cands[] = {getenv("SILO_IMAGES_DIR"), SILO_SOURCE_ROOT "/images",
			       SILO_PREFIX "/share/silo/images"};
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
		if (!cands[i] || !*cands[i])
			continue;
		snprintf(out, len, "%s/build-image.sh", cands[i]);
		if (access(out, X_OK) == 0) {
			snprintf(out, len, "%s", cands[i]);
			return 0;
		}
	}
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT,
			 "image build scripts not found (set SILO_IMAGES_DIR to the images/ directory)");
}

static int run_script(char *const argv[], silo_error *err)
{
	pid_t pid = fork();
	if (pid < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fork");
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "silo: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s failed (%s %d)", argv[0],
				 WIFEXITED(st) ? "exit status" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* Digest dir and record it in the manifest as tree `name`. */
static int record_tree(const char *name, const char *dir, silo_error *err)
{
	char rp[PATH_MAX];
	if (!realpath(dir, rp))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "tree %s", dir);
	trust_tree_info info;
	if (trust_tree_digest(rp, &info, err) < 0 ||
	    image_record_tree(name, rp, info.sha256, info.entries, info.bytes, err) < 0)
		return -1;
	printf("%s tree %s %" PRIu64 " entries %s\n", name, rp, info.entries, info.sha256);
	return 0;
}

static int image_build(const char *name, bool force, silo_error *err)
{
	if (!image_name_valid(name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image: \"%s\" is not a valid image name", name);
	char dir[PATH_MAX], agent[PATH_MAX];
	if (find_helper_binary("silo-agent", agent, sizeof agent, err) < 0)
		return -1;
	if (!strcmp(name, "namespace")) {
		/* the namespace provider's busybox + agent base layer (lib/providers/ns-rootfs.c) */
		if (ns_rootfs_base(agent, dir, sizeof dir, err) < 0)
			return -1;
		return record_tree("namespace", dir, err);
	}
	if (images_dir(dir, sizeof dir, err) < 0)
		return -1;
	char kscript[PATH_MAX + 32], iscript[PATH_MAX + 32];
	snprintf(kscript, sizeof kscript, "%s/build-kernel.sh", dir);
	snprintf(iscript, sizeof iscript, "%s/build-image.sh", dir);
	char *kargv[] = {kscript, NULL};
	if (run_script(kargv, err) < 0)
		return -1;
	char *iargv[] = {iscript, (char *)name, "--agent", agent, force ? "--force" : NULL, NULL};
	if (run_script(iargv, err) < 0)
		return -1;
	image_entry e;
	if (image_lookup(name, &e, err) < 0)
		return -1;
	printf("%s %s %s %" PRIu64 " %s\n", e.name, image_kind_name(e.kind), e.file.path, e.file.size,
	       e.file.sha256);
	image_entry_free(&e);
	return 0;
}

static void human_size(uint64_t n, char *buf, size_t len)
{
	if (n >= (1ull << 30))
		snprintf(buf, len, "%.1fG", (double)n / (1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(buf, len, "%.1fM", (double)n / (1ull << 20));
	else if (n >= 1024)
		snprintf(buf, len, "%.1fK", (double)n / 1024);
	else
		snprintf(buf, len, "%" PRIu64 "B", n);
}

static json_t *file_json(const image_file *f)
{
	return json_pack("{s:s,s:s,s:I}", "path", f->path, "sha256", f->sha256, "size", (json_int_t)f->size);
}

static int image_ls(bool json)
{
	silo_error err = {0};
	image_entry *v;
	size_t n;
	if (image_list(&v, &n, &err) < 0)
		return cli_error(&err, json);
	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", v[i].name, "kind",
					      image_kind_name(v[i].kind), "path", v[i].file.path, "sha256",
					      v[i].file.sha256, "size", (json_int_t)v[i].file.size);
			json_object_set_new(o, "created", json_string(v[i].created));
			if (v[i].initrd.path)
				json_object_set_new(o, "initrd", file_json(&v[i].initrd));
			if (v[i].kernel_key[0])
				json_object_set_new(o, "kernel", json_pack("{s:s,s:s?}", "key", v[i].kernel_key,
									   "path", v[i].kernel_path));
			json_array_append_new(arr, o);
		}
		image_tree *t = NULL;
		size_t nt = 0;
		if (image_list_trees(&t, &nt, &err) == 0)
			for (size_t i = 0; i < nt; i++)
				json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "name", t[i].name, "kind",
								     "tree", "path", t[i].path, "sha256", t[i].sha256, "size",
								     (json_int_t)t[i].size, "entries", (json_int_t)t[i].entries,
								     "created", t[i].created));
		image_trees_free(t, nt);
		char *s = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(arr);
	} else {
		printf("%-16s %-10s %8s  %-64s  %s\n", "NAME", "KIND", "SIZE", "SHA256", "CREATED");
		for (size_t i = 0; i < n; i++) {
			char sz[32];
			uint64_t total = v[i].file.size + v[i].initrd.size;
			human_size(total, sz, sizeof sz);
			printf("%-16s %-10s %8s  %-64s  %s\n", v[i].name, image_kind_name(v[i].kind), sz,
			       v[i].file.sha256, v[i].created);
		}
		image_tree *t = NULL;
		size_t nt = 0;
		if (image_list_trees(&t, &nt, &err) == 0)
			for (size_t i = 0; i < nt; i++) {
				char sz[32];
				human_size(t[i].size, sz, sizeof sz);
				printf("%-16s %-10s %8s  %-64s  %s\n", t[i].name, "tree", sz, t[i].sha256, t[i].created);
			}
		image_trees_free(t, nt);
	}
	image_entries_free(v, n);
	return 0;
}

static int image_verify_cmd(const char *name)
{
	silo_error err = {0};
	image_tree *t = NULL;
	size_t nt = 0;
	if (image_list_trees(&t, &nt, &err) < 0)
		return cli_error(&err, false);
	for (size_t i = 0; i < nt; i++) {
		if (strcmp(t[i].name, name) != 0)
			continue;
		trust_tree_info info;
		int rc = trust_tree_digest(t[i].path, &info, &err);
		if (rc == 0 && strcmp(info.sha256, t[i].sha256) != 0)
			rc = silo_fail(&err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				       "tree \"%s\": %s has digest %s (%" PRIu64 " entries), manifest says %s (%" PRIu64
				       " entries)",
				       name, t[i].path, info.sha256, info.entries, t[i].sha256, t[i].entries);
		if (rc == 0)
			printf("%s: ok (tree %s)\n", name, info.sha256);
		image_trees_free(t, nt);
		return rc < 0 ? cli_error(&err, false) : 0;
	}
	image_trees_free(t, nt);
	image_entry e;
	if (image_lookup(name, &e, &err) < 0)
		return cli_error(&err, false);
	int rc = image_verify(&e, &err);
	if (rc == 0)
		printf("%s: ok (%s)\n", e.name, e.file.sha256);
	image_entry_free(&e);
	return rc < 0 ? cli_error(&err, false) : 0;
}

/* --sign KEY [--expires D] after a build or add-tree: a new signed version of the manifest. */
static int sign_manifest(const char *key, const char *expires)
{
	char *argv[] = {"trust", "sign", "-s", (char *)key, expires ? "--expires" : NULL, (char *)expires, NULL};
	return cmd_trust(expires ? 6 : 4, argv);
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(image_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	bool json = false, force = false;
	const char *args[2] = {NULL, NULL}, *sign = NULL, *expires = NULL;
	int nargs = 0;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--force")) {
			force = true;
		} else if ((!strcmp(argv[i], "--sign") || !strcmp(argv[i], "--expires")) && i + 1 < argc) {
			*(argv[i][2] == 's' ? &sign : &expires) = argv[i + 1];
			i++;
		} else if (argv[i][0] == '-' || nargs == 2) {
			fprintf(stderr, "silo image %s: unexpected argument '%s'\n%s", sub, argv[i], image_usage);
			return 2;
		} else {
			args[nargs++] = argv[i];
		}
	}
	bool builds = !strcmp(sub, "build") || !strcmp(sub, "add-tree");
	int want = !strcmp(sub, "ls") || !strcmp(sub, "list") ? 0 : !strcmp(sub, "add-tree") ? 2 : 1;
	if ((sign || expires) && !builds) {
		fprintf(stderr, "silo image %s: --sign and --expires go with build and add-tree\n", sub);
		return 2;
	}
	if (expires && !sign) {
		fprintf(stderr, "silo image %s: --expires needs --sign KEY\n", sub);
		return 2;
	}
	if (nargs != want) {
		fprintf(stderr, "silo image %s: expected %s\n%s", sub, want == 0 ? "no arguments" : want == 1 ? "NAME" : "NAME DIR",
			image_usage);
		return 2;
	}
	silo_error err = {0};
	int rc;
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return image_ls(json);
	if (!strcmp(sub, "verify"))
		return image_verify_cmd(args[0]);
	if (!strcmp(sub, "rm")) {
		if (image_remove(args[0], &err) < 0)
			return cli_error(&err, json);
		printf("removed %s\n", args[0]);
		return 0;
	}
	if (!strcmp(sub, "build"))
		rc = image_build(args[0], force, &err);
	else if (!strcmp(sub, "add-tree"))
		rc = record_tree(args[0], args[1], &err);
	else {
		fprintf(stderr, "silo image: unknown subcommand '%s'\n%s", sub, image_usage);
		return 2;
	}
	if (rc < 0)
		return cli_error(&err, false);
	return sign ? sign_manifest(sign, expires) : 0;
}
