/* SPDX-License-Identifier: Apache-2.0
 * seccomp deny-list for namespace sandboxes (the list itself is reviewed data
 * in ns-seccomp-deny.h).
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>

#include "providers/ns.h"

const ns_deny_entry ns_seccomp_deny[] = {
#include "providers/ns-seccomp-deny.h"
};
const size_t ns_seccomp_deny_count = sizeof ns_seccomp_deny / sizeof ns_seccomp_deny[0];

int ns_seccomp_install(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	/* Cover the 32-bit and x32 ABIs too, so int 0x80 cannot bypass the list;
	 * rules added below apply to every architecture in the filter. */
	int rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
	if (rc < 0 && rc != -EEXIST)
		goto out;
	rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
	if (rc < 0 && rc != -EEXIST)
		goto out;
	for (size_t i = 0; i < ns_seccomp_deny_count; i++) {
		int nr = seccomp_syscall_resolve_name(ns_seccomp_deny[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;   /* unknown to this libseccomp */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0 && rc != -EEXIST && rc != -EDOM)
			goto out;
	}
	/* clone() is needed (fork, threads) but not with namespace flags: the
	 * deny of unshare/setns would otherwise be bypassed by clone(CLONE_NEWUSER).
	 * clone3 passes flags in memory, which seccomp cannot inspect: ENOSYS makes
	 * libc fall back to clone(). */
	static const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
						 CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME};
	for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
		if (rc < 0)
			goto out;
	}
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc < 0 && rc != -EDOM)
		goto out;
	rc = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return rc;
}
