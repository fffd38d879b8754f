/* SPDX-License-Identifier: Apache-2.0
 * `silo image`: build, import, list, inspect, verify and remove guest images
 * (docs/images.md).
 *
 *   silo image build NAME [--force]   run images/build-kernel.sh + build-image.sh NAME
 *   silo image build namespace        the namespace provider's base layer and agent layer,
 *                                     recorded as trees
 *   silo image add-tree NAME DIR      record a directory (a namespace boot.rootfs) as a tree
 *   silo image ls [--json]            name, kind, size, sha256, created (images and trees)
 *   silo image verify NAME            re-check sizes and SHA-256 (libsodium), or a tree's digest
 *   silo image rm NAME                remove the files and the manifest entry (a tree: the entry)
 *   silo image import SOURCE --name NAME [options]
 *                                     OCI layout / OCI or docker archive / rootfs tarball
 *                                     into the layer store (lib/oci/oci.h); SOURCE "-": stdin
 *   silo image import SOURCE --layers-for NAME
 *                                     store a root file system as the namespace layers of
 *                                     the built image NAME (images/build-image.sh: python)
 *   silo image inspect NAME           the manifest entry, image.json, sandbox defaults (JSON)
 *   silo image gc [--json]            remove unreferenced layers and import debris
 * build and add-tree take --sign KEY [--expires D]: sign the manifest afterwards,
 * with a new version, exactly as `silo trust sign -s KEY [--expires D]`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "image/image.h"
#include "oci/oci.h"
#include "providers/ns.h"
#include "silo-config.h"
#include "trust/trust.h"

static const char image_usage[] =
	"usage: silo image build NAME [--force]   build an image (names: base, python, namespace)\n"
	"       silo image add-tree NAME DIR      record a directory tree (a namespace boot.rootfs)\n"
	"       silo image ls [--json]            list images and trees\n"
	"       silo image verify NAME            check an image's sizes and SHA-256, or a tree's digest\n"
	"       silo image rm NAME                remove an image (a tree: its manifest entry; layers stay until gc)\n"
	"       silo image import SOURCE --name NAME [--format auto|oci|docker|rootfs] [--ref REF]\n"
	"                [--max-size BYTES[KMGT]] [--max-entries N] [--skip-devices] [--force] [--json]\n"
	"                                         import an OCI layout directory, an OCI or docker\n"
	"                                         save archive, or a rootfs tarball (.tar, .gz, .zst, .xz);\n"
	"                                         SOURCE - reads an archive from standard input\n"
	"       silo image import SOURCE --layers-for NAME [--skip-devices]\n"
	"                                         store SOURCE as the namespace layers of a built image\n"
	"       silo image inspect NAME           show an image, its layers and sandbox defaults (JSON)\n"
	"       silo image gc [--json]            remove layers no image uses\n"
	"build and add-tree also take --sign KEY [--expires D]: sign the manifest afterwards\n"
	"(a new version; see silo trust sign).\n";


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
		/* the namespace provider's busybox + agent base layer, and the agent
		 * layer it stacks on an image's own layers (lib/providers/ns-rootfs.c) */
		if (ns_rootfs_base(agent, dir, sizeof dir, err) < 0 || record_tree("namespace", dir, err) < 0)
			return -1;
		if (ns_rootfs_agent(agent, dir, sizeof dir, err) < 0)
			return -1;
		return record_tree("namespace-agent", dir, err);
	}
	if (oci_images_dir(dir, sizeof dir, err) < 0)
		return -1;
	char kscript[PATH_MAX + 32], iscript[PATH_MAX + 32];
	snprintf(kscript, sizeof kscript, "%s/build-kernel.sh", dir);
	snprintf(iscript, sizeof iscript, "%s/build-image.sh", dir);
	char *kargv[] = {kscript, NULL};
	if (oci_run_script(kargv, false, err) < 0)
		return -1;
	char self[PATH_MAX];   /* the ext4 image's namespace layer is stored by this binary */
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	self[sl > 0 ? sl : 0] = '\0';
	char *iargv[] = {iscript, (char *)name, "--agent", agent, "--silo", self, force ? "--force" : NULL, NULL};
	if (oci_run_script(iargv, false, err) < 0)
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
	size_t n, nu;
	oci_image_usage *u = NULL;
	oci_store_usage tot;
	if (image_list(&v, &n, &err) < 0)
		return cli_error(&err, json);
	if (oci_usage(&u, &nu, &tot, &err) < 0) {
		image_entries_free(v, n);
		return cli_error(&err, json);
	}
	if (nu != n) {   /* the manifest changed between the two reads */
		image_entries_free(v, n);
		free(u);
		return image_ls(json);
	}
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
			json_object_set_new(o, "imported", json_boolean(u[i].imported));
			json_object_set_new(o, "layers", json_integer((json_int_t)u[i].n_layers));
			json_object_set_new(o, "logical", json_integer((json_int_t)u[i].logical));
			json_object_set_new(o, "disk", json_integer((json_int_t)u[i].disk));
			json_object_set_new(o, "shared", json_integer((json_int_t)u[i].shared));
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
		printf("%-20s %-9s %6s %8s %8s %8s  %-12s  %s\n", "NAME", "KIND", "LAYERS", "SIZE", "DISK", "SHARED",
		       "SHA256", "CREATED");
		for (size_t i = 0; i < n; i++) {
			char sz[32], dk[32], sh[32], nl[16];
			human_size(u[i].logical, sz, sizeof sz);
			human_size(u[i].disk, dk, sizeof dk);
			human_size(u[i].shared, sh, sizeof sh);
			snprintf(nl, sizeof nl, "%zu", u[i].n_layers);
			printf("%-20s %-9s %6s %8s %8s %8s  %.12s  %s\n", v[i].name,
			       u[i].imported ? "ext4+oci" : image_kind_name(v[i].kind), u[i].imported ? nl : "-", sz, dk,
			       u[i].shared ? sh : "-", v[i].file.sha256, v[i].created);
		}
		if (tot.n_layers) {
			char ld[32], ud[32];
			human_size(tot.layers_disk, ld, sizeof ld);
			human_size(tot.unreferenced_disk, ud, sizeof ud);
			printf("layer store: %zu layers, %s on disk", tot.n_layers, ld);
			if (tot.unreferenced)
				printf("; %zu unused (%s; silo image gc removes them)", tot.unreferenced, ud);
			printf("\n");
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
	free(u);
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

static int image_inspect(const char *name)
{
	silo_error err = {0};
	image_entry e;
	if (image_lookup(name, &e, &err) < 0)
		return cli_error(&err, true);
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "name", e.name, "kind", image_kind_name(e.kind), "path",
			      e.file.path, "sha256", e.file.sha256, "size", (json_int_t)e.file.size, "created", e.created);
	if (e.initrd.path)
		json_object_set_new(o, "initrd", file_json(&e.initrd));
	if (e.kernel_path)
		json_object_set_new(o, "kernel", json_pack("{s:s,s:s,s:s,s:I}", "key", e.kernel_key, "path", e.kernel_path,
							   "sha256", e.kernel_sha256, "size", (json_int_t)e.kernel_size));
	image_entry_free(&e);
	json_t *info;
	if (oci_image_info(name, &info, &err) < 0) {
		json_decref(o);
		return cli_error(&err, true);
	}
	json_object_set_new(o, "imported", json_boolean(info != NULL));
	if (info) {
		char **dirs;
		size_t nd;
		if (oci_image_lowerdirs(name, &dirs, &nd, &err) < 0) {
			json_decref(info);
			json_decref(o);
			return cli_error(&err, true);
		}
		json_object_set(o, "defaults", json_object_get(info, "defaults"));
		json_t *ld = json_array();
		for (size_t i = 0; i < nd; i++)
			json_array_append_new(ld, json_string(dirs[i]));
		strv_free(dirs);
		json_object_set_new(o, "lowerdirs", ld);
		json_object_set_new(o, "image", info);
	}
	cli_print_json(o);
	json_decref(o);
	return 0;
}


/* BYTES with an optional K, M, G or T suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	int shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end || v == 0 || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int import_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "silo image import: %s%s%s\n%s", msg, arg ? " " : "", arg ? arg : "", image_usage);
	return 2;
}

static int image_import(int argc, char **argv)
{
	oci_import_opts o = {.format = OCI_FMT_AUTO};
	bool json = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = !strcmp(a, "--name") || !strcmp(a, "--format") || !strcmp(a, "--ref") ||
			     !strcmp(a, "--max-size") || !strcmp(a, "--max-entries") || !strcmp(a, "--layers-for");
		if (takes && !v)
			return import_usage("missing value for", a);
		if (!strcmp(a, "--json"))
			json = true;
		else if (!strcmp(a, "--force"))
			o.force = true;
		else if (!strcmp(a, "--skip-devices"))
			o.skip_devices = true;
		else if (!strcmp(a, "--name"))
			o.name = v;
		else if (!strcmp(a, "--ref"))
			o.ref = v;
		else if (!strcmp(a, "--layers-for"))
			o.layers_for = v;
		else if (!strcmp(a, "--format") && oci_format_parse(v, &o.format) < 0)
			return import_usage("--format: expected auto, oci, docker or rootfs, not", v);
		else if (!strcmp(a, "--max-size") && parse_size(v, &o.max_bytes) < 0)
			return import_usage("--max-size: expected a positive size such as 8G, not", v);
		else if (!strcmp(a, "--max-entries") && parse_size(v, &o.max_entries) < 0)
			return import_usage("--max-entries: expected a positive number, not", v);
		else if (!takes && a[0] == '-' && a[1])
			return import_usage("unexpected option", a);
		else if (!takes && o.source)
			return import_usage("unexpected argument", a);
		else if (!takes)
			o.source = a;
		if (takes)
			i++;
	}
	if (!o.source || !o.name == !o.layers_for)
		return import_usage("SOURCE and either --name NAME or --layers-for NAME are required", NULL);
	silo_error err = {0};
	char loader[PATH_MAX];
	if (!o.layers_for && oci_loader(loader, sizeof loader, &err) < 0) {
		silo_error_prefix(&err, "import: the loader initramfs");
		return cli_error(&err, json);
	}
	o.loader = loader;
	oci_import_result r;
	if (oci_import(&o, &r, &err) < 0)
		return cli_error(&err, json);
	if (o.layers_for) {
		if (json) {
			json_t *j = json_pack("{s:s,s:I,s:I,s:f}", "layers_for", o.layers_for, "layers",
					      (json_int_t)r.n_layers, "new_layers", (json_int_t)r.new_layers, "seconds",
					      r.seconds);
			cli_print_json(j);
			json_decref(j);
		} else {
			printf("%s: %zu namespace layer%s (%zu new) in %.2f s\n", o.layers_for, r.n_layers,
			       r.n_layers == 1 ? "" : "s", r.new_layers, r.seconds);
		}
		return 0;
	}
	if (json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:s,s:s,s:{s:I,s:I,s:s}}", "name", o.name,
				      "format", oci_format_name(r.format), "layers", (json_int_t)r.n_layers, "new_layers",
				      (json_int_t)r.new_layers, "bytes", (json_int_t)r.bytes, "layers_disk_new",
				      (json_int_t)r.layers_disk_new, "ext4_size", (json_int_t)r.ext4_size, "ext4_disk",
				      (json_int_t)r.ext4_disk, "seconds", r.seconds, "seconds_layers", r.seconds_layers,
				      "seconds_ext4", r.seconds_ext4, "config_digest", r.config_digest, "dir", r.image_dir,
				      "dropped", "xattrs", (json_int_t)r.dropped_xattrs, "devices",
				      (json_int_t)r.dropped_devices, "names", r.dropped);
		cli_print_json(j);
		json_decref(j);
		return 0;
	}
	char b[32], e4[32], e4d[32];
	human_size(r.bytes, b, sizeof b);
	human_size(r.ext4_size, e4, sizeof e4);
	human_size(r.ext4_disk, e4d, sizeof e4d);
	printf("imported %s (%s, %zu layer%s: %zu new, %zu already stored): %s unpacked, ext4 %s (%s on disk) in %.2f s\n",
	       o.name, oci_format_name(r.format), r.n_layers, r.n_layers == 1 ? "" : "s", r.new_layers,
	       r.n_layers - r.new_layers, b, e4, e4d, r.seconds);
	if (r.dropped_xattrs || r.dropped_devices)
		printf("dropped %" PRIu64 " extended attribute%s and %" PRIu64 " device node%s: %s\n", r.dropped_xattrs,
		       r.dropped_xattrs == 1 ? "" : "s", r.dropped_devices, r.dropped_devices == 1 ? "" : "s", r.dropped);
	return 0;
}

static int image_gc(bool json)
{
	silo_error err = {0};
	oci_gc_result r;
	if (oci_gc(&r, &err) < 0)
		return cli_error(&err, json);
	if (json) {
		json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "layers_removed", (json_int_t)r.layers_removed,
				      "layers_kept", (json_int_t)r.layers_kept, "layers_busy", (json_int_t)r.layers_busy,
				      "staging_removed", (json_int_t)r.staging_removed, "image_dirs_removed",
				      (json_int_t)r.image_dirs_removed, "loaders_removed", (json_int_t)r.loaders_removed,
				      "bytes_freed", (json_int_t)r.bytes_freed);
		cli_print_json(j);
		json_decref(j);
		return 0;
	}
	char f[32];
	human_size(r.bytes_freed, f, sizeof f);
	printf("removed %zu layer%s (%s), %zu staging and %zu image director%s; kept %zu layer%s", r.layers_removed,
	       r.layers_removed == 1 ? "" : "s", f, r.staging_removed, r.image_dirs_removed,
	       r.image_dirs_removed == 1 ? "y" : "ies", r.layers_kept, r.layers_kept == 1 ? "" : "s");
	if (r.layers_busy)
		printf(", %zu in use by running sandboxes", r.layers_busy);
	printf("\n");
	return 0;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(image_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "import"))
		return image_import(argc, argv);
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
	int want = !strcmp(sub, "ls") || !strcmp(sub, "list") || !strcmp(sub, "gc") ? 0 : !strcmp(sub, "add-tree") ? 2 : 1;
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
	if (!strcmp(sub, "gc"))
		return image_gc(json);
	if (!strcmp(sub, "verify"))
		return image_verify_cmd(args[0]);
	if (!strcmp(sub, "inspect"))
		return image_inspect(args[0]);
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
