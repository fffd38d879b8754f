/* SPDX-License-Identifier: Apache-2.0
 * hosts(5) parser (hosts.h). The text is untrusted in the sense that every
 * length is bounded before use; the meaning is operator-trusted.
 */
#include "net/hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "net/egress.h"

#define LINE_MAX_BYTES 4096

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const hosts_entry *)a)->name, ((const hosts_entry *)b)->name);
}

void hosts_free(hosts_map *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].name);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Add (name, addr); merges duplicates after sorting. */
static bool add(hosts_map *m, size_t *cap, const char *name, uint32_t addr)
{
	if (m->n == HOSTS_MAX_NAMES)
		return false;
	if (m->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		m->v = xrealloc(m->v, *cap * sizeof *m->v);
	}
	hosts_entry *e = &m->v[m->n++];
	memset(e, 0, sizeof *e);
	e->name = xstrdup(name);
	e->addrs[0] = addr;
	e->n = 1;
	return true;
}

/* Sort and fold entries of the same name (file order of addresses kept). */
static bool fold(hosts_map *m, char *why, size_t whylen)
{
	/* stable: remember the original order in a side index by sorting pairs */
	for (size_t i = 0; i < m->n; i++)
		m->v[i].addrs[1] = (uint32_t)i;   /* temporary order key (n == 1 here) */
	if (m->n < 2)
		return true;   /* nothing to sort (and m->v may be NULL: qsort must not see it) */
	qsort(m->v, m->n, sizeof *m->v, cmp_entry);
	/* within equal names, restore file order */
	for (size_t i = 0; i < m->n;) {
		size_t j = i + 1;
		while (j < m->n && !strcmp(m->v[i].name, m->v[j].name))
			j++;
		for (size_t a = i + 1; a < j; a++)
			for (size_t b = a; b > i && m->v[b - 1].addrs[1] > m->v[b].addrs[1]; b--) {
				hosts_entry t = m->v[b];
				m->v[b] = m->v[b - 1];
				m->v[b - 1] = t;
			}
		i = j;
	}
	size_t o = 0;
	for (size_t i = 0; i < m->n; i++) {
		m->v[i].addrs[1] = 0;
		if (o && !strcmp(m->v[o - 1].name, m->v[i].name)) {
			hosts_entry *d = &m->v[o - 1];
			uint32_t a = m->v[i].addrs[0];
			free(m->v[i].name);
			bool dup = false;
			for (unsigned k = 0; k < d->n; k++)
				dup |= d->addrs[k] == a;
			if (dup)
				continue;
			if (d->n == HOSTS_MAX_ADDRS) {
				snprintf(why, whylen, "\"%.80s\" has more than %u addresses", d->name, HOSTS_MAX_ADDRS);
				for (size_t k = i + 1; k < m->n; k++)
					free(m->v[k].name);
				m->n = o;
				return false;
			}
			d->addrs[d->n++] = a;
			continue;
		}
		m->v[o++] = m->v[i];
	}
	m->n = o;
	return true;
}

bool hosts_parse(const char *text, size_t len, hosts_map *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	char dummy[8];
	if (!why) {
		why = dummy;
		whylen = sizeof dummy;
	}
	if (len > HOSTS_MAX_BYTES) {
		snprintf(why, whylen, "larger than %u bytes", HOSTS_MAX_BYTES);
		return false;
	}
	size_t cap = 0, lineno = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		lineno++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) > LINE_MAX_BYTES) {
			snprintf(why, whylen, "line %zu: longer than %d bytes", lineno, LINE_MAX_BYTES);
			goto fail;
		}
		if (memchr(p, '\0', (size_t)(le - p))) {
			snprintf(why, whylen, "line %zu: contains a NUL byte", lineno);
			goto fail;
		}
		char line[LINE_MAX_BYTES + 1];
		memcpy(line, p, (size_t)(le - p));
		line[le - p] = '\0';
		p = nl ? nl + 1 : end;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		/* fields */
		char *f[LINE_MAX_BYTES / 2];
		size_t nf = 0;
		for (char *q = line; *q;) {
			while (*q && is_space(*q))
				q++;
			if (!*q)
				break;
			f[nf++] = q;
			while (*q && !is_space(*q))
				q++;
			if (*q)
				*q++ = '\0';
		}
		if (nf == 0)
			continue;
		if (strchr(f[0], ':'))
			continue;   /* IPv6: sandbox networking is IPv4 only */
		struct in_addr a;
		if (inet_pton(AF_INET, f[0], &a) != 1) {
			snprintf(why, whylen, "line %zu: \"%.64s\" is not an IPv4 address", lineno, f[0]);
			goto fail;
		}
		if (nf < 2) {
			snprintf(why, whylen, "line %zu: an address without a name", lineno);
			goto fail;
		}
		for (size_t i = 1; i < nf; i++) {
			char name[EGRESS_NAME_MAX + 1];
			if (!egress_normalize_name(f[i], name, sizeof name)) {
				snprintf(why, whylen, "line %zu: \"%.64s\" is not a valid host name", lineno, f[i]);
				goto fail;
			}
			if (!add(out, &cap, name, ntohl(a.s_addr))) {
				snprintf(why, whylen, "line %zu: more than %u names", lineno, HOSTS_MAX_NAMES);
				goto fail;
			}
		}
	}
	if (!fold(out, why, whylen))
		goto fail;
	return true;
fail:
	hosts_free(out);
	return false;
}

bool hosts_load(const char *path, hosts_map *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return false;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)HOSTS_MAX_BYTES) {
		snprintf(why, whylen, "%s: not a regular file of at most %u bytes", path, HOSTS_MAX_BYTES);
		close(fd);
		return false;
	}
	char *buf = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	char inner[200];
	bool ok = hosts_parse(buf, got, out, inner, sizeof inner);
	if (!ok)
		snprintf(why, whylen, "%s: %s", path, inner);
	free(buf);
	return ok;
}

const hosts_entry *hosts_lookup(const hosts_map *m, const char *name)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->v[mid].name, name);
		if (c == 0)
			return &m->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
