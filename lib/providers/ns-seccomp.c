/* SPDX-License-Identifier: Apache-2.0
 * seccomp deny-list for namespace sandboxes (the list itself is reviewed data
 * in ns-seccomp-deny.h).
 */
#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <linux/seccomp.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/util.h"

#include "providers/ns.h"

#define DENY(name, why) {#name, why},
#define DENY_SOCKET(family, err, why)
#define ALLOW_NETLINK(proto, why)
const ns_deny_entry ns_seccomp_deny[] = {
#include "providers/ns-seccomp-deny.h"
};
const size_t ns_seccomp_deny_count = sizeof ns_seccomp_deny / sizeof ns_seccomp_deny[0];
#undef DENY
#undef DENY_SOCKET
#undef ALLOW_NETLINK

#define DENY(name, why)
#define DENY_SOCKET(family, err, why) {family, err, #family, why},
#define ALLOW_NETLINK(proto, why)
const ns_socket_rule ns_seccomp_socket_deny[] = {
#include "providers/ns-seccomp-deny.h"
};
const size_t ns_seccomp_socket_deny_count = ARRAY_SIZE(ns_seccomp_socket_deny);
#undef DENY_SOCKET
#undef ALLOW_NETLINK

#define DENY_SOCKET(family, err, why)
#define ALLOW_NETLINK(proto, why) {proto, 0, #proto, why},
const ns_socket_rule ns_seccomp_netlink_allow[] = {
#include "providers/ns-seccomp-deny.h"
};
const size_t ns_seccomp_netlink_allow_count = ARRAY_SIZE(ns_seccomp_netlink_allow);
#undef DENY
#undef DENY_SOCKET
#undef ALLOW_NETLINK

#ifndef MAX_LINKS
#define MAX_LINKS 32   /* netlink protocols are 0..MAX_LINKS-1 (net/netlink/af_netlink.h) */
#endif

static bool netlink_allowed(int proto)
{
	for (size_t i = 0; i < ns_seccomp_netlink_allow_count; i++)
		if (ns_seccomp_netlink_allow[i].value == proto)
			return true;
	return false;
}

/* socket(2) rules: families denied outright, netlink protocols not allowed. */
static int socket_rules(scmp_filter_ctx ctx)
{
	const scmp_datum_t low = 0xffffffffu;
	for (size_t i = 0; i < ns_seccomp_socket_deny_count; i++) {
		const ns_socket_rule *r = &ns_seccomp_socket_deny[i];
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)r->err), SCMP_SYS(socket), 1,
					  SCMP_A0(SCMP_CMP_MASKED_EQ, low, (scmp_datum_t)r->value));
		if (rc < 0)
			return rc;
	}
	for (int proto = 0; proto < MAX_LINKS; proto++) {
		if (netlink_allowed(proto))
			continue;
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPROTONOSUPPORT), SCMP_SYS(socket), 2,
					  SCMP_A0(SCMP_CMP_MASKED_EQ, low, AF_NETLINK),
					  SCMP_A2(SCMP_CMP_MASKED_EQ, low, (scmp_datum_t)proto));
		if (rc < 0)
			return rc;
	}
	/* On the i386 ABI libseccomp adds socketcall(SYS_SOCKET, args) for these
	 * rules: its arguments are in memory, so that call is denied as a whole
	 * (with the first rule's errno). 32-bit programs create sockets with the
	 * direct socket(2) syscall (Linux >= 4.3) or not at all. */
	return 0;
}

/* Build the filter into ctx. 0 or -errno. */
static int build_ctx(scmp_filter_ctx ctx)
{
	/* Cover the 32-bit and x32 ABIs too, so int 0x80 cannot bypass the list;
	 * rules added below apply to every architecture in the filter. */
	int rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	for (size_t i = 0; i < ns_seccomp_deny_count; i++) {
		int nr = seccomp_syscall_resolve_name(ns_seccomp_deny[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;   /* unknown to this libseccomp */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0 && rc != -EEXIST && rc != -EDOM)
			return rc;
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
			return rc;
	}
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc < 0 && rc != -EDOM)
		return rc;
	return socket_rules(ctx);
}

/* Compiled in the parent: libseccomp allocates, and a child forked from a
 * multi-threaded process must not (another thread may have held the
 * allocator's lock at fork). The child only calls prctl(). */
int ns_seccomp_build(ns_bpf *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "seccomp: init");
	int fd = -1, rc = build_ctx(ctx);
	if (rc < 0)
		goto fail;
	fd = memfd_create("silo-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		goto fail;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) || size > 65536 * (off_t)sizeof(struct sock_filter)) {
		rc = -EINVAL;
		goto fail;
	}
	struct sock_filter *f = xmalloc((size_t)size);
	if (pread(fd, f, (size_t)size, 0) != size) {
		free(f);
		rc = -EIO;
		goto fail;
	}
	out->prog.len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	out->prog.filter = f;
	close(fd);
	seccomp_release(ctx);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return silo_fail(err, SILO_ERR_INTERNAL, -rc, "seccomp: building the filter");
}

void ns_seccomp_free(ns_bpf *b)
{
	free(b->prog.filter);
	b->prog.filter = NULL;
	b->prog.len = 0;
}

int ns_seccomp_apply(const ns_bpf *b)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &b->prog, 0, 0) < 0)
		return -errno;
	return 0;
}

int ns_seccomp_install(void)
{
	ns_bpf b;
	silo_error err;
	if (ns_seccomp_build(&b, &err) < 0)
		return -(err.sys_errno ? err.sys_errno : EINVAL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		int e = errno;
		ns_seccomp_free(&b);
		return -e;
	}
	int rc = ns_seccomp_apply(&b);
	ns_seccomp_free(&b);
	return rc;
}
