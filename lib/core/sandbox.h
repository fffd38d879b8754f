/* SPDX-License-Identifier: Apache-2.0
 * A sandbox: one isolated environment (VM or namespace set) running silo-agent,
 * plus the channel to it. The lifecycle here is provider-independent; the
 * manager (lib/core/manager.c, used by silod and by embedded `silo run`) adds
 * registry, limits, events and audit on top.
 */
#ifndef SILO_CORE_SANDBOX_H
#define SILO_CORE_SANDBOX_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/channel.h"
#include "core/provider.h"
#include "spec/spec.h"

typedef enum sb_state {
	SB_PROVISIONING = 0,
	SB_RUNNING,
	SB_PAUSED,
	SB_STOPPING,
	SB_TERMINATED,
	SB_ERROR,
	SB__STATE_COUNT
} sb_state;

const char *sb_state_name(sb_state s);               /* "provisioning", ... */
int sb_state_from_name(const char *name);            /* -1 if unknown */
/* Is old -> new a legal transition? (docs/architecture.md has the diagram) */
bool sb_state_transition_ok(sb_state from, sb_state to);

typedef struct sandbox sandbox;
struct net_sb;
/* An egress denial record (docs/network.md "Denials"), JSON text. */
typedef void (*sb_net_cb)(void *ud, sandbox *sb, const char *json_record);

/* Who a sandbox belongs to (lib/core/owner.h): nobody tracked (tests,
 * benches), the creating process (it dies with that process: embedded
 * `silo run`, the public C API), or a silod (it survives silod restarts). */
typedef enum sb_owner { SB_OWNER_NONE = 0, SB_OWNER_PROCESS, SB_OWNER_DAEMON } sb_owner;
struct owner_state;

typedef void (*sb_state_cb)(void *ud, sandbox *sb, sb_state old, sb_state new_state,
			    const char *reason);

typedef struct cleanup_report {
	bool terminated;
	bool host_clean;
	char **residual_paths;         /* strv, NULL if clean */
} cleanup_report;
void cleanup_report_free(cleanup_report *r);

struct sandbox {
	char id[SILO_ID_MAX];
	vm_spec spec;
	const provider_ops *ops;
	char rundir[PATH_MAX];         /* $SILO_RUNTIME_DIR/sandboxes/<id> */
	pid_t pid;                     /* supervising host process */
	void *prov;                    /* provider-private */
	chan *ch;                      /* connected agent channel (NULL before ready) */
	struct proc_table *procs;      /* its processes over ch (lib/core/proc.h); NULL with ch */
	agent_info agent;

	pthread_mutex_t lock;
	sb_state state;
	char state_reason[256];
	sb_state_cb on_state;
	void *on_state_ud;
	/* Networking (lib/core/sandbox_net.c): the supervisor, the guest end of the
	 * stack's socket during spawn (PROVIDER_NET_STREAM, else -1), denials. */
	struct net_sb *net;
	int net_fd;
	sb_net_cb on_net;
	void *on_net_ud;

	/* Chosen by falling back from an unavailable vm provider to a non-vm one
	 * (provider_choice): the reasons, for the warning, event and state. */
	bool fell_back;
	char fallback_why[512];

	/* Default credentials of execs that name none: the spec's user (or the
	 * image's User) resolved in the sandbox (core/defaults.h); -1 = root. */
	int64_t exec_uid, exec_gid;

	/* Templates (lib/core/template.c): the template snapshot this sandbox was
	 * restored from, or the one its cold boot saved; "" = none. */
	char template_id[SILO_ID_MAX];
	bool from_template;            /* restored from template_id (else booted cold) */

	uint64_t created_ms;           /* wall clock */
	uint64_t spawn_ns;             /* provider spawn duration */
	uint64_t ready_ns;             /* create -> agent handshake done */
	struct owner_state *own;       /* ownership record + watchdog (owner.c), NULL if none */
	/* Held (sandbox_hold): state paused, guest not stopped by the provider;
	 * the resume only flips the state. Guarded by lock. */
	bool held;
};

typedef struct sandbox_opts {
	const char *id;                /* NULL = generate */
	const char *fallback;          /* provider fallback order, NULL = default */
	/* Non-NULL: refuse isolation weaker than "vm" (no namespace provider, by
	 * choice, fallback or restore), naming who asks, e.g. "--isolation vm".
	 * A spec with [vm] isolation = "vm" asks by itself. */
	const char *require_vm;
	int boot_timeout_ms;           /* 0 = spec or provider default */
	int heartbeat_ms;              /* 0 = default (1000) */
	sb_state_cb on_state;
	void *on_state_ud;
	sb_net_cb on_net;              /* egress denials (network = true) */
	void *on_net_ud;
	/* Restore instead of spawning (lib/core/sandbox_snap.c, docs/snapshots.md):
	 * the payload directory of a verified snapshot, its id (recorded in the
	 * run directory so the store keeps it while the sandbox lives) and the
	 * provider that wrote it (no fallback). */
	const char *restore_dir;
	const char *restore_id;
	const char *restore_provider;
	/* Ownership (lib/core/owner.h): SB_OWNER_DAEMON needs owner_state_dir,
	 * the silod's state dir. */
	sb_owner owner;
	const char *owner_state_dir;
	pid_t owner_client;            /* SB_OWNER_DAEMON: bound to this client process, 0 = none */
	/* Boot cold: neither restore from nor save a template (`silo run --cold`). */
	bool cold;
} sandbox_opts;

/* Spawn and wait until the agent answers the handshake (BOOT_TIMEOUT with the
 * provider's diagnostics otherwise; nothing is left behind on failure). */
int sandbox_create(const vm_spec *spec, const sandbox_opts *opts, sandbox **out, silo_error *err);
/* Templates (lib/core/template.c, docs/snapshots.md "Templates"): a VM sandbox
 * whose provider can snapshot and restore starts from the template snapshot of
 * its image + machine shape when one exists (restored, then the agent handshake
 * as for any start); otherwise it boots cold and its ready state is saved as
 * that template. The key covers the provider, the spec's shape and the identity
 * of what boots (kernel, initramfs with the agent, root disk, VMM binary).
 * Disabled by opts->cold or SILO_TEMPLATES=0. */
typedef struct tpl_plan {
	bool use;                      /* eligible: key is set */
	char key[65];
	char shape[65];                /* the key without the boot identity: finds stale templates */
	char why[160];                 /* why not, when !use */
} tpl_plan;
int tpl_prepare(const provider_ops *ops, const vm_spec *spec, tpl_plan *out, silo_error *err);
/* Find and open (verified, held) the template for key: 1 found, 0 none. */
int tpl_find(const char *key, char id[SILO_ID_MAX], char payload[PATH_MAX + 16], char *hold, size_t hold_len);
/* Save sb (just booted cold and ready) as the template of plan, and remove the
 * templates of the same shape whose boot identity is gone (unless in use);
 * failures are logged. */
void tpl_save(sandbox *sb, const tpl_plan *plan);
/* Remove a template that failed to restore (unless a live sandbox uses it). */
void tpl_discard(const char *id);
/* The template store's bound: SILO_TEMPLATE_MAX_MB (MiB), default 2048. */
uint64_t tpl_max_bytes(void);
/* Collect templates (none in use or being restored): with stale, those whose
 * key no longer matches today's image, kernel, agent and VMM; then the least
 * recently used ones until the store fits tpl_max_bytes(). Removed ids are
 * appended to removed (a JSON array, may be NULL). */
struct json_t;
int tpl_gc(bool stale, struct json_t *removed, silo_error *err);

/* Terminate (grace then force), verify cleanup, free. rep may be NULL. */
int sandbox_destroy(sandbox *sb, int grace_ms, cleanup_report *rep, silo_error *err);
/* Re-open a sandbox left by a previous manager process (silod restart).
 * Its network supervisor is reconnected separately, once the caller has set
 * on_net: sandbox_net_reattach. */
int sandbox_reattach(const char *id, const vm_spec *spec, const char *provider, pid_t pid,
		     sandbox **out, silo_error *err);
void sandbox_set_state(sandbox *sb, sb_state s, const char *reason);
sb_state sandbox_get_state(sandbox *sb);

/* Snapshots (sandbox_snap.c): pause (provider pause op, state paused), let
 * the provider write its state into payload_dir, resume unless keep_paused.
 * NOT_SUPPORTED when the provider has no snapshot op. */
int sandbox_snapshot(sandbox *sb, const char *payload_dir, bool keep_paused, silo_error *err);
int sandbox_pause(sandbox *sb, silo_error *err);
int sandbox_resume(sandbox *sb, silo_error *err);
/* Put a running sandbox in state paused without the provider's pause: for a
 * guest that costs nothing idle and runs no user code (a pooled namespace
 * sandbox, lib/core/mgr_pool.c). Every operation a paused sandbox refuses is
 * refused; sandbox_resume only sets it running again. */
int sandbox_hold(sandbox *sb, silo_error *err);

/* Networking (sandbox_net.c), called by the lifecycle above: before spawn
 * (VM providers: start the stack, set sb->net_fd), after spawn, once the
 * agent answers (configure the guest), at reattach, and to stop it. */
int sandbox_net_prepare(sandbox *sb, silo_error *err);
int sandbox_net_spawned(sandbox *sb, silo_error *err);
int sandbox_net_ready(sandbox *sb, silo_error *err);
int sandbox_net_reattach(sandbox *sb, silo_error *err);
void sandbox_net_stop(sandbox *sb);
/* The channel's DNS callback (chan_opts.on_dns; ud = the sandbox). */
void sandbox_net_on_dns(void *ud, uint32_t tag, const uint8_t *msg, size_t len);
/* Close the process table (sessions are killed; with kill_background every
 * process, else background processes run on without a handle) and then the
 * channel. */
void sandbox_close_channel(sandbox *sb, bool kill_background);
/* Terminate what a dead owner left of sandbox id through its provider's
 * terminate op without provider state (files, cgroups, a supervisor matched by
 * pid and start time); unknown providers are skipped. */
void sandbox_terminate_orphan(const char *id, const char *provider);
/* SB_OWNER_PROCESS: have the watchdog tear the sandbox down ms from now even
 * if this process is still alive but stuck (0 clears it). */
void sandbox_set_deadline(sandbox *sb, uint64_t ms);

/* Scan rundir/pids/cgroups left by the provider; fills rep. */
void sandbox_verify_cleanup(sandbox *sb, cleanup_report *rep);

#endif
