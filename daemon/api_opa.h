/* SPDX-License-Identifier: Apache-2.0
 * Optional external policy decision point: the OPA REST data API over libcurl
 * (docs/policy.md). Consulted after the local policy allowed an operation.
 */
#ifndef SILO_DAEMON_API_OPA_H
#define SILO_DAEMON_API_OPA_H

#include <jansson.h>

#include "common/error.h"

typedef struct opa_client opa_client;

/* url: the data API document, e.g. http://127.0.0.1:8181/v1/data/silo/allow;
 * timeout_ms <= 0 = 2000. */
int opa_open(const char *url, long timeout_ms, opa_client **out, silo_error *err);
void opa_close(opa_client *c);
/* 0 = allowed; -1 with POLICY_DENIED (rule allow: denied or undefined; rule
 * decision: no usable answer). Takes ownership of input. Thread-safe. */
int opa_decide(const opa_client *c, json_t *input, silo_error *err);

#endif
