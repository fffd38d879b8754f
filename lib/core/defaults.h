/* SPDX-License-Identifier: Apache-2.0
 * Sandbox defaults from an image's config (defaults.c, docs/images.md).
 */
#ifndef SILO_CORE_DEFAULTS_H
#define SILO_CORE_DEFAULTS_H

#include <stdint.h>

#include "common/error.h"
#include "core/sandbox.h"
#include "spec/spec.h"

#define USER_DB_MAX (1u << 20)   /* bytes read of the sandbox's /etc/passwd and /etc/group */

/* Merge the defaults of spec->image (an imported image's Env, WorkingDir and
 * User) into spec where it does not set them: env by variable (the spec's
 * value wins), workdir and user when absent. A built or unknown image: no-op. */
int image_defaults_apply(vm_spec *spec, silo_error *err);
/* Entrypoint + Cmd of an imported image into *argv (strv, free with strv_free):
 * 1 when there is a command, 0 when none (then *argv is NULL). */
int image_default_argv(const char *image, char ***argv);
/* After the agent answered: make spec.workdir if missing, resolve spec.user in
 * the sandbox's /etc/passwd and /etc/group into sb->exec_uid/exec_gid (-1 = the
 * agent's default, root). INVALID_CONFIG naming the user or workdir. */
int sandbox_exec_defaults(sandbox *sb, silo_error *err);
/* "uid", "uid:gid", "name", "name:group", "uid:group", "name:gid" against the
 * texts of /etc/passwd and /etc/group (hostile, any bytes): a numeric uid
 * without a group takes the primary group of its passwd line, else 0; a name
 * must be listed. INVALID_CONFIG naming what is missing. */
int user_resolve(const char *user, const char *passwd, size_t plen, const char *group, size_t glen, int64_t *uid,
		 int64_t *gid, silo_error *err);

#endif
