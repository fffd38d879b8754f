/* SPDX-License-Identifier: Apache-2.0
 * CLI contexts (see context.h): the store and `silo context add|ls|use|rm|inspect`.
 * Files of a context are written 0600 inside a 0700 directory; a context is
 * added under a temporary name and renamed into place, so a crash leaves
 * either no context or a whole one.
 */
#include "cli/context.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"

#define TOKEN_MAX 4096
#define PEM_MAX (1u << 20)

static const char *const pem_files[3] = {"ca.pem", "cert.pem", "key.pem"};

static int config_dir(char *out, size_t n, silo_error *err)
{
	const char *d = getenv("SILO_CONFIG_DIR"), *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
	if (d && *d)
		snprintf(out, n, "%s", d);
	else if (x && *x)
		snprintf(out, n, "%s/silo", x);
	else if (h && *h)
		snprintf(out, n, "%s/.config/silo", h);
	else
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "no config dir for contexts: set SILO_CONFIG_DIR, XDG_CONFIG_HOME or HOME");
	return 0;
}

bool cli_context_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CLI_CONTEXT_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static int check_name(const char *name, silo_error *err)
{
	if (!cli_context_name_ok(name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "context name '%.80s': expected 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'",
				 name);
	return 0;
}

bool cli_url_loopback(const char *url)
{
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	char host[256];
	if (*h == '[') {
		size_t l = strcspn(h + 1, "]");
		snprintf(host, sizeof host, "%.*s", (int)MIN(l, sizeof host - 1), h + 1);
		return !strcmp(host, "::1");
	}
	size_t l = strcspn(h, ":/");
	snprintf(host, sizeof host, "%.*s", (int)MIN(l, sizeof host - 1), h);
	struct in_addr a;
	if (inet_pton(AF_INET, host, &a) == 1)
		return (ntohl(a.s_addr) >> 24) == 127;
	return !strcmp(host, "localhost");
}

/* A URL of a silod TCP listener: http(s)://HOST:PORT, nothing after. */
static int check_url(const char *what, const char *url, silo_error *err)
{
	bool tls = !strncmp(url, "https://", 8);
	const char *h = tls ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
	size_t n = strlen(url);
	if (!h || !*h || n >= 500 || strpbrk(h, " \t\r\n?#@") || (strchr(h, '/') && strcmp(strchr(h, '/'), "/")))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected https://HOST:PORT, got '%.200s'", what,
				 url);
	return 0;
}

void cli_endpoint_clear(cli_endpoint *e)
{
	if (e->token) {
		explicit_bzero(e->token, strlen(e->token));
		free(e->token);
	}
	e->token = NULL;
}

/* A token file: one line, at least 16 characters, trailing white space dropped. */
static int read_token(const char *path, char **out, silo_error *err)
{
	size_t len;
	if (read_file(path, TOKEN_MAX, out, &len, err) < 0)
		return -1;
	while (len && strchr("\r\n\t ", (*out)[len - 1]))
		(*out)[--len] = '\0';
	if (len < 16 || strpbrk(*out, "\r\n")) {
		explicit_bzero(*out, len);
		free(*out);
		*out = NULL;
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "token file %s: expected one line of at least 16 characters",
				 path);
	}
	return 0;
}

static int load_context(const char *name, cli_endpoint *e, silo_error *err)
{
	char dir[4096], p[4200];
	if (check_name(name, err) < 0 || config_dir(dir, sizeof dir, err) < 0)
		return -1;
	snprintf(e->context, sizeof e->context, "%s", name);
	if (!strcmp(name, "default"))
		return 0;   /* the local socket */
	snprintf(p, sizeof p, "%s/contexts/%s/url", dir, name);
	char *url = NULL;
	size_t len;
	if (read_file(p, 600, &url, &len, err) < 0) {
		if (err->sys_errno == ENOENT)
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "no context named '%s' (silo context ls)", name);
		return -1;
	}
	url[strcspn(url, "\n")] = '\0';
	snprintf(e->url, sizeof e->url, "%s", url);
	free(url);
	snprintf(p, sizeof p, "%s/contexts/%s/token", dir, name);
	if (path_exists(p) && read_token(p, &e->token, err) < 0)
		return -1;
	char *slot[3] = {e->ca, e->cert, e->key};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/contexts/%s/%s", dir, name, pem_files[i]);
		if (path_exists(p))
			snprintf(slot[i], 4096, "%s", p);
	}
	return 0;
}

static int current_name(char *out, size_t n, silo_error *err)
{
	char dir[4096], p[4200];
	out[0] = '\0';
	if (config_dir(dir, sizeof dir, err) < 0)
		return -1;
	snprintf(p, sizeof p, "%s/current", dir);
	char *s = NULL;
	if (read_file(p, 128, &s, NULL, err) < 0)
		return err->sys_errno == ENOENT ? 0 : -1;
	s[strcspn(s, "\n")] = '\0';
	snprintf(out, n, "%s", s);
	free(s);
	return 0;
}

int cli_endpoint_resolve(cli_endpoint *e, silo_error *err)
{
	memset(e, 0, sizeof *e);
	const char *ctx = getenv("SILO_CONTEXT"), *host = getenv("SILO_HOST");
	if (ctx && *ctx) {
		if (load_context(ctx, e, err) < 0) {
			silo_error_prefix(err, "SILO_CONTEXT/--context");
			return -1;
		}
		return 0;
	}
	if (host && *host) {
		if (check_url("SILO_HOST", host, err) < 0)
			return -1;
		snprintf(e->url, sizeof e->url, "%s", host);
		const char *tok = getenv("SILO_API_TOKEN");
		if (tok && *tok)
			e->token = xstrdup(tok);
		const char *v[3] = {getenv("SILO_CA"), getenv("SILO_CLIENT_CERT"), getenv("SILO_CLIENT_KEY")};
		char *slot[3] = {e->ca, e->cert, e->key};
		for (int i = 0; i < 3; i++)
			if (v[i] && *v[i])
				snprintf(slot[i], 4096, "%s", v[i]);
		return 0;
	}
	char cur[128];
	if (current_name(cur, sizeof cur, err) < 0)
		return -1;
	if (cur[0] && load_context(cur, e, err) < 0) {
		silo_error_prefix(err, "current context");
		return -1;
	}
	return 0;
}

/* ---- silo context ---- */

static const char usage_text[] =
	"add NAME URL [--token-file F] [--ca F] [--cert F --key F] [--insecure] | ls | use NAME | rm NAME [-f] | "
	"inspect NAME [--json]";

static int copy_secret(const char *dir, const char *name, const char *src, bool pem, silo_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	if (pem) {
		if (read_file(src, PEM_MAX, &buf, &len, err) < 0)
			return -1;
		if (!strstr(buf, "-----BEGIN ")) {
			explicit_bzero(buf, len);
			free(buf);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: not a PEM file", src);
		}
	} else {
		if (read_token(src, &buf, err) < 0)
			return -1;
		len = strlen(buf);
	}
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int rc = write_file_atomic(p, buf, len, 0600, err);
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

static int ctx_add(int argc, char **argv, bool json)
{
	enum { O_TOKEN = 256, O_CA, O_CERT, O_KEY, O_INSECURE };
	static const struct option opts[] = {
		{"token-file", required_argument, NULL, O_TOKEN}, {"ca", required_argument, NULL, O_CA},
		{"cert", required_argument, NULL, O_CERT},        {"key", required_argument, NULL, O_KEY},
		{"insecure", no_argument, NULL, O_INSECURE},      {"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *src[4] = {NULL};   /* token, ca, cert, key */
	bool insecure = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (c) {
		case O_TOKEN: src[0] = optarg; break;
		case O_CA: src[1] = optarg; break;
		case O_CERT: src[2] = optarg; break;
		case O_KEY: src[3] = optarg; break;
		case O_INSECURE: insecure = true; break;
		case 'j': break;
		default: return cli_usage_error("context", usage_text, json);
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("context", usage_text, json);
	const char *name = argv[optind], *url = argv[optind + 1];
	silo_error err;
	char dir[4096], final[4200], tmp[4300];
	if (check_name(name, &err) < 0 || check_url("URL", url, &err) < 0 || config_dir(dir, sizeof dir, &err) < 0)
		return cli_error(&err, json);
	if (!strcmp(name, "default")) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "context name 'default' is the local socket");
		return cli_error(&err, json);
	}
	bool tls = !strncmp(url, "https://", 8);
	if (!tls && !cli_url_loopback(url) && !insecure) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0,
			  "URL %s: plain http outside loopback would send the token in clear; use https:// "
			  "(or --insecure)",
			  url);
		return cli_error(&err, json);
	}
	if (!tls && (src[1] || src[2] || src[3])) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--ca, --cert and --key need an https:// URL");
		return cli_error(&err, json);
	}
	if (!src[2] != !src[3]) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--cert and --key go together (mutual TLS)");
		return cli_error(&err, json);
	}
	snprintf(final, sizeof final, "%s/contexts/%s", dir, name);
	if (path_exists(final)) {
		silo_fail(&err, SILO_ERR_CONFLICT, 0, "context '%s' exists (silo context rm %s first)", name, name);
		return cli_error(&err, json);
	}
	snprintf(tmp, sizeof tmp, "%s/contexts/.%s.%d", dir, name, (int)getpid());
	if (mkdir_p(dir, 0700) < 0 || mkdir_p(tmp, 0700) < 0 || chmod(tmp, 0700) < 0) {
		silo_fail(&err, SILO_ERR_IO_ERROR, errno, "create %s", tmp);
		return cli_error(&err, json);
	}
	static const char *const dst[4] = {"token", "ca.pem", "cert.pem", "key.pem"};
	char up[4400];
	snprintf(up, sizeof up, "%s/url", tmp);
	int rc = write_file_atomic(up, url, strlen(url), 0600, &err);
	for (int i = 0; rc == 0 && i < 4; i++)
		if (src[i])
			rc = copy_secret(tmp, dst[i], src[i], i > 0, &err);
	if (rc == 0 && rename(tmp, final) < 0)
		rc = silo_fail(&err, SILO_ERR_IO_ERROR, errno, "add context %s", name);
	if (rc < 0) {
		rm_rf(tmp);
		return cli_error(&err, json);
	}
	if (json) {
		json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:b}", "name", name, "url", url, "token", src[0] != NULL, "ca",
				      src[1] != NULL, "client_cert", src[2] != NULL);
		cli_print_json(o);
		json_decref(o);
	} else {
		printf("%s\n", name);
	}
	return 0;
}

/* One context as JSON (no secrets: which files it has). */
static json_t *ctx_json(const char *dir, const char *name, const char *current)
{
	cli_endpoint e;
	silo_error err;
	memset(&e, 0, sizeof e);
	json_t *o = json_pack("{s:s,s:b}", "name", name, "current", !strcmp(name, current));
	(void)dir;
	if (load_context(name, &e, &err) < 0) {
		json_object_set_new(o, "error", json_string(err.message));
		return o;
	}
	json_object_set_new(o, "url", json_string(e.url[0] ? e.url : "unix socket"));
	json_object_set_new(o, "token", json_boolean(e.token != NULL));
	json_object_set_new(o, "ca", json_boolean(e.ca[0] != 0));
	json_object_set_new(o, "client_cert", json_boolean(e.cert[0] != 0));
	cli_endpoint_clear(&e);
	return o;
}

static int ctx_ls(bool json)
{
	silo_error err;
	char dir[4096], cur[128], p[4200];
	if (config_dir(dir, sizeof dir, &err) < 0 || current_name(cur, sizeof cur, &err) < 0)
		return cli_error(&err, json);
	const char *env = getenv("SILO_CONTEXT");
	if (env && *env)
		snprintf(cur, sizeof cur, "%s", env);
	if (!cur[0])
		snprintf(cur, sizeof cur, "default");
	json_t *a = json_array();
	json_array_append_new(a, ctx_json(dir, "default", cur));
	snprintf(p, sizeof p, "%s/contexts", dir);
	struct dirent **ents = NULL;
	int n = scandir(p, &ents, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (cli_context_name_ok(ents[i]->d_name) && strcmp(ents[i]->d_name, "default"))
			json_array_append_new(a, ctx_json(dir, ents[i]->d_name, cur));
		free(ents[i]);
	}
	free(ents);
	if (json) {
		json_t *o = json_pack("{s:o}", "contexts", a);
		cli_print_json(o);
		json_decref(o);
		return 0;
	}
	printf("%-20s %-7s %-40s %s\n", "NAME", "CURRENT", "URL", "AUTH");
	size_t i;
	json_t *c;
	json_array_foreach(a, i, c) {
		char auth[64];
		snprintf(auth, sizeof auth, "%s%s%s", json_is_true(json_object_get(c, "token")) ? "token " : "",
			 json_is_true(json_object_get(c, "ca")) ? "ca " : "",
			 json_is_true(json_object_get(c, "client_cert")) ? "mtls" : "");
		printf("%-20s %-7s %-40s %s\n", cli_jstr(c, "name"), json_is_true(json_object_get(c, "current")) ? "*" : "",
		       json_object_get(c, "error") ? cli_jstr(c, "error") : cli_jstr(c, "url"), auth);
	}
	json_decref(a);
	return 0;
}

static int ctx_use(const char *name, bool json)
{
	silo_error err;
	char dir[4096], p[4200];
	cli_endpoint e;
	memset(&e, 0, sizeof e);
	if (config_dir(dir, sizeof dir, &err) < 0 || load_context(name, &e, &err) < 0)
		return cli_error(&err, json);
	cli_endpoint_clear(&e);
	snprintf(p, sizeof p, "%s/current", dir);
	if (!strcmp(name, "default")) {
		if (unlink(p) < 0 && errno != ENOENT) {
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "unlink %s", p);
			return cli_error(&err, json);
		}
	} else if (mkdir_p(dir, 0700) < 0 || write_file_atomic(p, name, strlen(name), 0600, &err) < 0) {
		return cli_error(&err, json);
	}
	if (!json)
		printf("%s\n", name);
	return 0;
}

static int ctx_rm(const char *name, bool force, bool json)
{
	silo_error err;
	char dir[4096], p[4200], cur[128];
	if (check_name(name, &err) < 0 || config_dir(dir, sizeof dir, &err) < 0 ||
	    current_name(cur, sizeof cur, &err) < 0)
		return cli_error(&err, json);
	if (!strcmp(name, "default")) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "the default context cannot be removed");
		return cli_error(&err, json);
	}
	snprintf(p, sizeof p, "%s/contexts/%s", dir, name);
	if (!path_exists(p)) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "no context named '%s'", name);
		return cli_error(&err, json);
	}
	if (!strcmp(cur, name)) {
		if (!force)
			{
		silo_fail(&err, SILO_ERR_CONFLICT, 0,
					 "context '%s' is in use (silo context use default first, or rm -f)", name);
		return cli_error(&err, json);
	}
		snprintf(p, sizeof p, "%s/current", dir);
		unlink(p);
		snprintf(p, sizeof p, "%s/contexts/%s", dir, name);
	}
	if (rm_rf(p) < 0) {
		silo_fail(&err, SILO_ERR_IO_ERROR, errno, "remove %s", p);
		return cli_error(&err, json);
	}
	if (!json)
		printf("%s\n", name);
	return 0;
}

int cmd_context(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: silo context %s\n"
		       "Named silod endpoints (docs/remote.md). `silo --context NAME VERB` or $SILO_CONTEXT picks\n"
		       "one for a command; `use` makes one the default. Files are stored 0600 under\n"
		       "$SILO_CONFIG_DIR (else $XDG_CONFIG_HOME/silo or ~/.config/silo).\n",
		       usage_text);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "add"))
		return ctx_add(argc - 1, argv + 1, json);
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return ctx_ls(json);
	int nargs = 0;
	const char *name = NULL;
	bool force = false;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
			force = true;
		else if (nargs++ == 0)
			name = argv[i];
	}
	if (nargs != 1)
		return cli_usage_error("context", usage_text, json);
	if (!strcmp(sub, "use"))
		return ctx_use(name, json);
	if (!strcmp(sub, "rm") || !strcmp(sub, "remove"))
		return ctx_rm(name, force, json);
	if (!strcmp(sub, "inspect")) {
		silo_error err;
		char dir[4096], cur[128];
		if (check_name(name, &err) < 0 || config_dir(dir, sizeof dir, &err) < 0 ||
		    current_name(cur, sizeof cur, &err) < 0)
			return cli_error(&err, json);
		json_t *o = ctx_json(dir, name, cur[0] ? cur : "default");
		int rc = json_object_get(o, "error") ? 125 : 0;
		cli_print_json(o);
		json_decref(o);
		return rc;
	}
	return cli_usage_error("context", usage_text, json);
}
