/* SPDX-License-Identifier: Apache-2.0
 * The operator's hosts file (`silod --egress-hosts FILE`, `silo run
 * --egress-hosts FILE`; docs/network.md): hosts(5) lines "ADDRESS NAME
 * [ALIAS...]", '#' comments, blank lines. Sandboxes resolve names here first,
 * then through the host's resolver. The file is operator-trusted: its
 * addresses may be loopback or private (a test's HTTP server on 127.0.0.1),
 * which DNS answers from anywhere else may not.
 *
 * IPv4 lines only (sandbox networking is IPv4); IPv6 lines are skipped, so
 * a copy of /etc/hosts parses. Bounded: 1 MiB, 16384 names, 4096-byte lines,
 * 16 addresses per name. Errors name the line: "line 3: bad address \"1.2\"".
 * Fuzzed by tests/fuzz/fuzz_hosts.c.
 */
#ifndef SILO_NET_HOSTS_H
#define SILO_NET_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOSTS_MAX_BYTES (1u << 20)
#define HOSTS_MAX_NAMES 16384u
#define HOSTS_MAX_ADDRS 16u

typedef struct hosts_entry {
	char *name;                      /* normalized (lowercase, no trailing dot) */
	uint32_t addrs[HOSTS_MAX_ADDRS]; /* host order, in file order, no duplicates */
	uint8_t n;
} hosts_entry;

typedef struct hosts_map {
	hosts_entry *v;                  /* sorted by name */
	size_t n;
} hosts_map;

/* Parse text (len bytes, NUL not required). false with why on bad input
 * (out is left empty). */
bool hosts_parse(const char *text, size_t len, hosts_map *out, char *why, size_t whylen);
/* Read and parse a file (bounded). false with why naming the file. */
bool hosts_load(const char *path, hosts_map *out, char *why, size_t whylen);
/* Addresses of name (normalized), NULL if absent. */
const hosts_entry *hosts_lookup(const hosts_map *m, const char *name);
void hosts_free(hosts_map *m);

#endif
