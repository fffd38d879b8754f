/* SPDX-License-Identifier: Apache-2.0
 * libcurl, loaded on first use (docs/architecture.md, the silod/CLI entry).
 *
 * Rules:
 * - The CLI is not linked against libcurl: linking it maps 27 more shared
 *   objects (libcurl pulls gnutls, krb5, ldap, ssh2, ...) and runs their
 *   constructors at every start (`silo --version`: 6.4 ms linked, 1.7 ms
 *   without, on this 2-core host), although only the remote verbs (a
 *   context or --target pointing at silod) speak HTTP.
 * - This file defines the few curl_* entry points the CLI calls (the cli sources and
 *   lib/client/http.c), each resolving the real one from libcurl.so.4 with
 *   dlopen/dlsym the first time any of them runs (pthread_once: the CLI's
 *   stream threads may be the first caller).
 * - If libcurl cannot be loaded, curl_global_init returns
 *   CURLE_FAILED_INIT, curl_easy_init NULL and the other calls an error code,
 *   so every caller reports a clear error through its existing path; the
 *   reason (dlerror) is logged once.
 * - curl_easy_setopt is variadic: the argument is read with the type the
 *   option number encodes (CURLOPTTYPE_* ranges in curl.h) and passed on
 *   with that type, exactly as libcurl reads it.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"

/* the definitions below, not curl.h's call-site macros */
#undef curl_easy_setopt
#undef curl_easy_getinfo

#define CURL_SONAME "libcurl.so.4"

#define CURL_FNS(X)                                                                                        \
	X(CURLcode, curl_global_init, (long flags))                                                        \
	X(CURL *, curl_easy_init, (void))                                                                  \
	X(void, curl_easy_cleanup, (CURL * h))                                                             \
	X(void, curl_easy_reset, (CURL * h))                                                               \
	X(CURLcode, curl_easy_perform, (CURL * h))                                                         \
	X(CURLcode, curl_easy_setopt, (CURL * h, CURLoption o, ...))                                       \
	X(CURLcode, curl_easy_getinfo, (CURL * h, CURLINFO i, ...))                                        \
	X(CURLcode, curl_easy_recv, (CURL * h, void *buf, size_t n, size_t *got))                          \
	X(CURLcode, curl_easy_send, (CURL * h, const void *buf, size_t n, size_t *sent))                   \
	X(const char *, curl_easy_strerror, (CURLcode rc))                                                 \
	X(char *, curl_easy_escape, (CURL * h, const char *s, int len))                                    \
	X(void, curl_free, (void *p))                                                                      \
	X(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s))                 \
	X(void, curl_slist_free_all, (struct curl_slist * l))

#define DECL(ret, name, args) static ret(*real_##name) args;
CURL_FNS(DECL)
#undef DECL

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;

static void load(void)
{
	void *lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		log_error("cannot load %s: %s", CURL_SONAME, dlerror());
		return;
	}
#define SYM(ret, name, args)                                                                               \
	if (!(*(void **)&real_##name = dlsym(lib, #name))) {                                               \
		log_error("%s: missing symbol %s", CURL_SONAME, #name);                                    \
		return;                                                                                    \
	}
	CURL_FNS(SYM)
#undef SYM
	loaded = true;   /* the handle stays open for the life of the process */
}

static bool ready(void)
{
	pthread_once(&load_once, load);
	return loaded;
}

CURLcode curl_global_init(long flags)
{
	return ready() ? real_curl_global_init(flags) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void)
{
	return ready() ? real_curl_easy_init() : NULL;
}

void curl_easy_cleanup(CURL *h)
{
	if (h && ready())
		real_curl_easy_cleanup(h);
}

void curl_easy_reset(CURL *h)
{
	if (ready())
		real_curl_easy_reset(h);
}

CURLcode curl_easy_perform(CURL *h)
{
	return ready() ? real_curl_easy_perform(h) : CURLE_FAILED_INIT;
}

CURLcode curl_easy_setopt(CURL *h, CURLoption o, ...)
{
	if (!ready())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, o);
	CURLcode rc;
	if (o < CURLOPTTYPE_OBJECTPOINT) {
		long v = va_arg(ap, long);
		rc = real_curl_easy_setopt(h, o, v);
	} else if (o < CURLOPTTYPE_FUNCTIONPOINT) {
		void *v = va_arg(ap, void *);
		rc = real_curl_easy_setopt(h, o, v);
	} else if (o < CURLOPTTYPE_OFF_T) {
		void (*v)(void) = va_arg(ap, void (*)(void));
		rc = real_curl_easy_setopt(h, o, v);
	} else if (o < CURLOPTTYPE_BLOB) {
		curl_off_t v = va_arg(ap, curl_off_t);
		rc = real_curl_easy_setopt(h, o, v);
	} else {
		void *v = va_arg(ap, void *);
		rc = real_curl_easy_setopt(h, o, v);
	}
	va_end(ap);
	return rc;
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO i, ...)
{
	if (!ready())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, i);
	void *out = va_arg(ap, void *);   /* every CURLINFO_* takes one pointer */
	va_end(ap);
	return real_curl_easy_getinfo(h, i, out);
}

CURLcode curl_easy_recv(CURL *h, void *buf, size_t n, size_t *got)
{
	return ready() ? real_curl_easy_recv(h, buf, n, got) : CURLE_FAILED_INIT;
}

CURLcode curl_easy_send(CURL *h, const void *buf, size_t n, size_t *sent)
{
	return ready() ? real_curl_easy_send(h, buf, n, sent) : CURLE_FAILED_INIT;
}

const char *curl_easy_strerror(CURLcode rc)
{
	if (!ready())
		return rc == CURLE_FAILED_INIT ? "libcurl (" CURL_SONAME ") could not be loaded" : "libcurl error";
	return real_curl_easy_strerror(rc);
}

char *curl_easy_escape(CURL *h, const char *s, int len)
{
	return ready() ? real_curl_easy_escape(h, s, len) : NULL;
}

void curl_free(void *p)
{
	if (p && ready())
		real_curl_free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	return ready() ? real_curl_slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
	if (l && ready())
		real_curl_slist_free_all(l);
}
