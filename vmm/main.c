/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm: one KVM microVM per process (docs/vmm.md).
 *
 *   silo-vmm (--kernel ELF | --payload FLAT) [--mem MiB] [--vcpus N]
 *            [--serial-log FILE [--serial-log-max BYTES]] [--boot-timer] [--no-irqchip] [--timeout-ms N]
 *            [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]
 *            [--vsock-uds PATH [--vsock-cid N]] [--net fd=N[,mac=M]] [--jail DIR]
 *   silo-vmm --config FILE [--serial-log FILE] [--boot-timer] [--jail DIR] ...
 *            (Firecracker-style JSON: boot-source, machine-config, drives, vsock)
 *   silo-vmm --api-sock PATH [--id ID] [--config FILE] [--serial-log FILE] [--jail DIR] ...
 *            (Firecracker-compatible control API, control_api.c; without --config the VM is
 *            configured and started over the API: PUT /actions InstanceStart)
 *   jail options: --jail DIR [--uid N --gid N] [--cgroup NAME] [--hold-fd N] [--fsize BYTES]
 *                 [--netns new|PATH]
 *
 * Order (docs/vmm.md "Start-up"): parse; with --jail clone into the jail's namespaces
 * (jail.c: the parent stays as the relay); open every host file the command line names
 * (files.c) and /dev/kvm; with a VM to boot now, build it (KVM VM, RAM, irqchip, vCPUs);
 * enter the jail (cgroup, pivot_root, uid, capabilities, seccomp); load the guest and start
 * the vCPUs. With the API, the jail is entered before the first request is read, so every
 * path a request names is resolved inside the jail root.
 *
 * --kernel takes a bzImage (64-bit boot protocol), an ELF vmlinux with a PVH
 * note (32-bit PVH entry), or a plain ELF64 executable (direct 64-bit entry).
 *
 * virtio-mmio devices sit at 0xd0001000 + i*0x1000 with IOAPIC pin 5 + i, in
 * order: drives, rng, vsock, net.
 *
 * On exit it prints one line to stderr:
 *   silo-vmm: metrics {"exit_reason":"halt","exit_code":0,...}
 * Exit status: the debug-exit value for debug-exit, 0 for halt/reset/shutdown/signal,
 * 124 for timeout, 1 for errors, 2 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "common/sigset.h"
#include "common/util.h"
#include "control_api.h"
#include "config.h"
#include "files.h"
#include "snapshot.h"
#include "devices/virtio/virtio.h"
#include "vmm.h"

static void usage(FILE *f)
{
	fputs("usage: silo-vmm (--kernel ELF64 | --payload FLAT.bin) [--mem MiB] [--vcpus N]\n"
	      "                [--serial-log FILE [--serial-log-max BYTES]] [--boot-timer] [--no-irqchip] [--timeout-ms N]\n"
	      "                [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]\n"
	      "                [--vsock-uds PATH [--vsock-cid N]] [--net fd=N[,mac=M]] [--jail DIR]\n"
	      "       silo-vmm --config FIRECRACKER.json [--serial-log FILE] [--boot-timer] [--jail DIR]\n"
	      "       silo-vmm --api-sock PATH [--id ID] [--config FILE] [--serial-log FILE] [--jail DIR]\n"
	      "                [--mem MiB] [--vcpus N] [--drive PATH[,ro]]... [--vsock-uds PATH]\n"
	      "jail: --jail DIR [--uid N --gid N] [--cgroup NAME] [--hold-fd N] [--fsize BYTES] [--netns new|PATH]\n",
	      f);
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || !*s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "silo-vmm: %s: \"%s\" is not a number in %llu..%llu\n", opt, s,
			(unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

/* PATH[,ro][,id=ID] (the path is everything before the first comma). */
static int parse_drive_opt(const char *arg, size_t index, vmm_config_drive *d, silo_error *err)
{
	char spec[4096];
	if (strlen(arg) >= sizeof spec)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--drive: longer than %zu bytes", sizeof spec - 1);
	snprintf(spec, sizeof spec, "%s", arg);
	char *save = NULL, *p = strtok_r(spec, ",", &save);
	if (!p)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--drive \"%s\": no path", arg);
	d->path = xstrdup(p);
	/* Default ids "silo", "silo1", ... (the guest reads them with GET_ID); id=ID replaces it. */
	d->id = index ? xasprintf("silo%zu", index) : xstrdup("silo");
	for (char *o = strtok_r(NULL, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "ro")) {
			d->read_only = true;
		} else if (!strncmp(o, "id=", 3) && o[3] && strlen(o + 3) <= 20) {
			free(d->id);
			d->id = xstrdup(o + 3);
		} else {
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "--drive %s: unknown option \"%s\" (ro, id=ID up to 20 chars)", arg, o);
		}
	}
	return 0;
}

/* What a restore loads (PUT /snapshot/load). */
typedef struct restore_req {
	const vmm_snapshot *snap;
	int mem_fd;
	const char *mem_name;
	bool resume;
} restore_req;

/* --net fd=N[,mac=aa:bb:cc:dd:ee:ff]: virtio-net on an inherited, connected
 * stream socket (passt's end; docs/network.md). The device is made before the jail
 * (preopen: it checks the socket's type, which the seccomp filter does not allow) and
 * attached when the VM is built; the VM owns it from then on. */
static int net_fd = -1;
static uint8_t net_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static vnet_dev *net_dev;

static int parse_net(const char *arg)
{
	char buf[128];
	if (strlen(arg) >= sizeof buf) {
		fprintf(stderr, "silo-vmm: --net: too long\n");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", arg);
	bool have_fd = false;
	for (char *save = NULL, *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		unsigned m[6];
		char *end;
		if (!strncmp(o, "fd=", 3)) {
			long v = strtol(o + 3, &end, 10);
			if (!o[3] || *end || v < 3 || v > 1023) {
				fprintf(stderr, "silo-vmm: --net: fd must be 3..1023\n");
				return -1;
			}
			net_fd = (int)v;
			have_fd = true;
		} else if (!strncmp(o, "mac=", 4) &&
			   sscanf(o + 4, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 &&
			   strlen(o + 4) == 17) {
			for (int i = 0; i < 6; i++)
				net_mac[i] = (uint8_t)m[i];
		} else {
			fprintf(stderr, "silo-vmm: --net: unknown option \"%s\" (fd=N, mac=aa:bb:cc:dd:ee:ff)\n", o);
			return -1;
		}
	}
	if (!have_fd) {
		fprintf(stderr, "silo-vmm: --net: fd=N is required\n");
		return -1;
	}
	return 0;
}

/* The jail's envelope (jailed: the cgroup was sized for it; larger machines are refused). */
static struct {
	bool jailed;
	uint64_t mem_mib, vcpus;
} envelope;

/* Step 1: the machine (restore: the snapshot's), checked against the jail's envelope, and the
 * KVM VM with its RAM, irqchip and vCPUs. Nothing of the guest is loaded yet. */
static int build_vm(vm *v, vm_config *cfg, const vmm_file_config *fc, const restore_req *rr, silo_error *err)
{
	cfg->vcpus = (int)fc->vcpus;
	cfg->mem_bytes = fc->mem_mib << 20;
	if (rr) {
		/* Restore: the machine is the snapshot's; RAM maps its memory file copy-on-write. */
		cfg->vcpus = rr->snap->vcpus;
		cfg->mem_bytes = rr->snap->mem_bytes;
		cfg->irqchip = rr->snap->irqchip;
		cfg->mem_fd = rr->mem_fd;
		cfg->mem_name = rr->mem_name;
	}
	if (!cfg->irqchip && cfg->vcpus > 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "vcpus: more than 1 needs the in-kernel irqchip (APs wait for INIT/SIPI in its LAPIC)");
	if (envelope.jailed && (cfg->mem_bytes > envelope.mem_mib << 20 || (uint64_t)cfg->vcpus > envelope.vcpus))
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "machine-config: %llu MiB and %d vCPUs do not fit the jail, sized for %llu MiB and %llu "
				 "vCPUs (start silo-vmm with a larger --mem/--vcpus)",
				 (unsigned long long)(cfg->mem_bytes >> 20), cfg->vcpus, (unsigned long long)envelope.mem_mib,
				 (unsigned long long)envelope.vcpus);
	if (vm_create(v, cfg, err) < 0) {
		vm_destroy(v);
		return -1;
	}
	return 0;
}

/* build_vm in its own thread, while the main thread enters the jail. */
typedef struct build_job {
	vm *v;
	vm_config *cfg;
	const vmm_file_config *fc;
	silo_error err;
	int rc;
} build_job;

static void *build_thread(void *arg)
{
	build_job *j = arg;
	vmm_step_thread_begin();
	j->rc = build_vm(j->v, j->cfg, j->fc, NULL, &j->err);
	return NULL;
}

/* Step 2: devices, then the guest (kernel/payload, or the snapshot's state), then registers. */
static int load_guest(vm *v, const vm_config *cfg, const vmm_file_config *fc, const char *payload, bool rng,
		      int serial_fd, uint64_t t0, const restore_req *rr, silo_error *err)
{
	const char *kernel = fc->kernel;
	const char *cmdline = fc->cmdline ? fc->cmdline : "console=ttyS0 reboot=k panic=1 pci=off";
	const uint8_t *img = NULL, *initrd = NULL;
	size_t img_len = 0, initrd_len = 0;
	cleanup_free char *full_cmdline = NULL;
	int rc = -1;
	v->t_process_start = t0;
	if (serial_attach(v, serial_fd, cfg->serial_log_max, err) < 0 || i8042_attach(v, err) < 0 ||
	    debug_exit_attach(v, err) < 0 || (cfg->boot_timer && boot_timer_attach(v, err) < 0))
		goto out;
	uint64_t vbase = GPA_VIRTIO_BASE;
	uint32_t virq = VIRTIO_IRQ_BASE;
	for (size_t i = 0; i < fc->ndrives; i++, vbase += 0x1000, virq++) {
		const vmm_config_drive *d = &fc->drives[i];
		void *dev = virtio_blk_create(d->path, d->read_only, d->id, err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, d->read_only ? &virtio_blk_ro_ops : &virtio_blk_ops, dev,
					       NULL, err) < 0)
			goto out;
	}
	if (rng) {
		void *dev = virtio_rng_create(err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, &virtio_rng_ops, dev, NULL, err) < 0)
			goto out;
		vbase += 0x1000, virq++;
	}
	if (fc->vsock_uds) {
		vsock_dev *dev = vsock_create(fc->vsock_uds, fc->vsock_cid, err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, &virtio_vsock_ops, dev, NULL, err) < 0)
			goto out;
		vbase += 0x1000, virq++;
	}
	if (net_dev) {
		vnet_dev *dev = net_dev;
		net_dev = NULL; /* the VM owns it (a failed attach destroyed it) */
		if (virtio_mmio_attach(v, vbase, virq, &virtio_net_ops, dev, NULL, err) < 0)
			goto out;
		vbase += 0x1000, virq++;
	}
	vmm_step("devices");
	if (rr) {
		if (vmm_snapshot_apply(v, rr->snap, err) < 0)
			goto out;
		if (!rr->resume) {
			/* Park the vCPUs before their first KVM_RUN: PATCH /vm Resumed starts them. */
			atomic_store(&v->pause_req, true);
			v->paused = true;
		}
		vmm_step("snapshot_state");
		rc = 0;
		goto out;
	}
	/* Linux finds virtio-mmio devices on its command line. */
	full_cmdline = xstrdup(cmdline);
	for (int i = 0; i < v->nvirtio; i++) {
		char *n2 = xasprintf("%s virtio_mmio.device=4K@0x%llx:%u", full_cmdline,
				     (unsigned long long)v->virtio[i]->base, v->virtio[i]->irq);
		free(full_cmdline);
		full_cmdline = n2;
	}
	/* the image is mapped, not read: one copy, into guest RAM */
	const char *path = kernel ? kernel : payload;
	if (vmm_map(path, 256u << 20, kernel ? "kernel" : "payload", &img, &img_len, err) < 0 ||
	    (fc->initrd && vmm_map(fc->initrd, 1u << 30, "initrd", &initrd, &initrd_len, err) < 0))
		goto out;
	uint32_t pvh_entry;
	int lr;
	if (!kernel) {
		lr = loader_load_flat(v, img, img_len, err);
	} else if (linux_is_bzimage(img, img_len)) {
		lr = linux_load_bzimage(v, img, img_len, initrd, initrd_len, full_cmdline, err);
	} else if (linux_elf_pvh_entry(img, img_len, &pvh_entry)) {
		lr = linux_load_pvh(v, img, img_len, initrd, initrd_len, full_cmdline, err);
	} else {
		if (fc->initrd) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "initrd: the kernel is neither a bzImage nor a PVH vmlinux");
			goto out;
		}
		lr = loader_load_elf64(v, img, img_len, err);
	}
	if (lr < 0)
		goto out;
	for (int i = 0; i < v->nvcpus; i++) {
		/* With the in-kernel LAPIC, KVM keeps APs in wait-for-SIPI (UNINITIALIZED):
		 * only the BSP (vcpu 0) runs the entry; the guest starts the others. */
		if (vcpu_setup_regs(&v->vcpus[i], &v->boot, err) < 0)
			goto out;
	}
	vmm_step("guest_loaded");
	rc = 0;
out:
	vmm_unmap(img, img_len);
	vmm_unmap(initrd, initrd_len);
	return rc;
}

/* Build and start the VM described by fc (or the snapshot in rr) inside an already entered
 * jail (or without one). On failure v is destroyed and nothing irreversible happened: the
 * API stays configurable. */
static int start_vm(vm *v, vm_config cfg, const vmm_file_config *fc, const char *payload, bool rng, int serial_fd,
		    uint64_t t0, const restore_req *rr, silo_error *err)
{
	if (build_vm(v, &cfg, fc, rr, err) < 0)
		return -1;
	if (load_guest(v, &cfg, fc, payload, rng, serial_fd, t0, rr, err) < 0 || vcpus_start(v, err) < 0) {
		vm_destroy(v);
		return -1;
	}
	return 0;
}

/* PUT /snapshot/load: check the snapshot (its files were opened by the API), rebuild its
 * machine with RAM mapped from the memory file, load the saved state. The API then reports
 * the snapshot's configuration. */
static int restore_from_api(vmm_api *api, vm *v, vm_config cfg, int serial_fd, uint64_t t0, silo_error *err)
{
	vmm_snapshot snap;
	vmm_snap_file st = {.fd = api->load_state_fd, .name = api->load_state},
		      mem = {.fd = api->load_mem_fd, .name = api->load_mem};
	if (vmm_snapshot_open(&st, &mem, api->load_verify, &snap, err) < 0)
		return -1;
	vmm_step("snapshot_open");
	if (api->load_vsock_uds && snap.cfg.vsock_uds) {
		free(snap.cfg.vsock_uds);
		snap.cfg.vsock_uds = xstrdup(api->load_vsock_uds);
	}
	restore_req rr = {.snap = &snap, .mem_fd = api->load_mem_fd, .mem_name = api->load_mem, .resume = api->load_resume};
	int r = start_vm(v, cfg, &snap.cfg, NULL, snap.rng, serial_fd, t0, &rr, err);
	if (r == 0) {
		vmm_config_free(&api->cfg);
		api->cfg = snap.cfg;
		memset(&snap.cfg, 0, sizeof snap.cfg);
		api->rng = snap.rng;
		api->have_boot_source = true;
	}
	vmm_snapshot_free(&snap);
	return r;
}

/* Before InstanceStart: serve the API; SIGTERM/SIGINT end the process. Returns 0 once the
 * VM runs, 1 on a signal, -1 on a fatal error (reported in err). A failed start is answered
 * and the VMM stays configurable. */
static int api_wait_start(vmm_api *api, vm *v, vm_config cfg, bool rng, int serial_fd, uint64_t t0, silo_error *err)
{
	sigset_t s = sigset_of(SIGINT, SIGTERM, 0);
	api->rng = rng;
	int sfd = signalfd(-1, &s, SFD_CLOEXEC);
	if (sfd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "signalfd");
	int rc;
	for (;;) {
		if (vmm_api_poll(api, sfd) == VMM_API_EV_EXTRA) {
			rc = 1;
			break;
		}
		vmm_step("api_start_request");
		silo_error e = {0};
		int r;
		if (api->load_state)
			r = restore_from_api(api, v, cfg, serial_fd, t0, &e);
		else
			r = start_vm(v, cfg, &api->cfg, NULL, api->rng, serial_fd, t0, NULL, &e);
		if (r == 0) {
			api->v = v; /* before answering: a pipelined second InstanceStart is refused */
			vmm_api_reply_start(api, NULL);
			rc = 0;
			break;
		}
		vmm_api_reply_start(api, &e);
	}
	close(sfd);
	return rc;
}

/* Every host file the command line names, opened before the jail (files.c): the kernel,
 * initrd or payload of a VM booted now, the drives (read-only ones read-only), the vsock
 * socket (bound and listening), /dev/kvm, the virtio-net device on --net's socket. With the API and no VM to boot, --drive and
 * --vsock-uds only open: a configuration or snapshot naming the same path uses them. */
static int preopen(const vmm_file_config *fc, const char *payload, bool boot_now, silo_error *err)
{
	if (vmm_kvm_fd(err) < 0)
		return -1;
	if (boot_now && (vmm_files_preopen(fc->kernel ? fc->kernel : payload, false, err) < 0 ||
			 (fc->initrd && vmm_files_preopen(fc->initrd, false, err) < 0)))
		return -1;
	for (size_t i = 0; i < fc->ndrives; i++)
		if (vmm_files_preopen(fc->drives[i].path, !fc->drives[i].read_only, err) < 0)
			return silo_error_prefix(err, "--drive"), -1;
	if (fc->vsock_uds && vmm_files_prebind(fc->vsock_uds, err) < 0)
		return silo_error_prefix(err, "--vsock-uds"), -1;
	if (net_fd >= 0 && !(net_dev = vnet_create(net_fd, net_mac, err)))
		return silo_error_prefix(err, "--net"), -1;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t t0 = vmm_now_ns();
	vmm_steps_begin(t0);
	vm_config cfg = {.irqchip = true, .serial_log_max = SERIAL_LOG_MAX_DEFAULT};
	const char *payload = NULL;
	enum { OPT_NO_IRQCHIP = 256, OPT_TIMEOUT, OPT_BOOT_TIMER, OPT_SERIAL, OPT_DRIVE, OPT_RNG, OPT_INITRD, OPT_CMDLINE, OPT_VSOCK, OPT_VSOCK_CID, OPT_JAIL, OPT_CONFIG, OPT_API, OPT_ID, OPT_SERIAL_MAX,
	       OPT_UID, OPT_GID, OPT_CGROUP, OPT_HOLD_FD, OPT_FSIZE, OPT_NETNS, OPT_NET };
	const char *config_path = NULL, *api_path = NULL, *vm_id = "silo-vmm";
	static vmm_file_config fc; /* from the command line, --config or the API */
	static vmm_api api = {.listen_fd = -1, .stop_fd = -1};
	const char *jail_dir = NULL;
	jail_opts jo = {.hold_fd = -1, .fsize = 1ull << 34};
	bool rng = false, cli_boot = false, have_gid = false;
	char vsock_path[4096] = ""; /* the pre-bound vsock socket, removed at exit (without a jail) */
	fc.vcpus = 1;
	fc.mem_mib = 128;
	fc.vsock_cid = 3;
	silo_error err = {0};
	char ebuf[1024];
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"payload", required_argument, NULL, 'p'},
		{"mem", required_argument, NULL, 'm'},
		{"vcpus", required_argument, NULL, 'c'},
		{"serial-log", required_argument, NULL, OPT_SERIAL},
		{"serial-log-max", required_argument, NULL, OPT_SERIAL_MAX},
		{"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
		{"no-irqchip", no_argument, NULL, OPT_NO_IRQCHIP},
		{"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
		{"drive", required_argument, NULL, OPT_DRIVE},
		{"rng", no_argument, NULL, OPT_RNG},
		{"initrd", required_argument, NULL, OPT_INITRD},
		{"cmdline", required_argument, NULL, OPT_CMDLINE},
		{"vsock-uds", required_argument, NULL, OPT_VSOCK},
		{"vsock-cid", required_argument, NULL, OPT_VSOCK_CID},
		{"net", required_argument, NULL, OPT_NET},
		{"jail", required_argument, NULL, OPT_JAIL},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"api-sock", required_argument, NULL, OPT_API},
		{"id", required_argument, NULL, OPT_ID},
		{"uid", required_argument, NULL, OPT_UID},
		{"gid", required_argument, NULL, OPT_GID},
		{"cgroup", required_argument, NULL, OPT_CGROUP},
		{"hold-fd", required_argument, NULL, OPT_HOLD_FD},
		{"fsize", required_argument, NULL, OPT_FSIZE},
		{"netns", required_argument, NULL, OPT_NETNS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o, status = 2;
	uint64_t n;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'k':
			free(fc.kernel);
			fc.kernel = xstrdup(optarg);
			cli_boot = true;
			break;
		case 'p': payload = optarg; cli_boot = true; break;
		case 'm':
			if (parse_u64("--mem", optarg, 1, GPA_MMIO_GAP_START >> 20, &n) < 0)
				goto out;
			fc.mem_mib = n;
			break;
		case 'c':
			if (parse_u64("--vcpus", optarg, 1, VMM_MAX_VCPUS, &n) < 0)
				goto out;
			fc.vcpus = n;
			break;
		case OPT_SERIAL: cfg.serial_log = optarg; break;
		case OPT_SERIAL_MAX:
			if (parse_u64("--serial-log-max", optarg, 64u << 10, 1ull << 40, &cfg.serial_log_max) < 0)
				goto out;
			break;
		case OPT_BOOT_TIMER: cfg.boot_timer = true; break;
		case OPT_NO_IRQCHIP: cfg.irqchip = false; break;
		case OPT_TIMEOUT:
			if (parse_u64("--timeout-ms", optarg, 1, 86400000, &cfg.timeout_ms) < 0)
				goto out;
			break;
		case OPT_DRIVE:
			if (fc.ndrives == VMM_CONFIG_MAX_DRIVES) {
				fprintf(stderr, "silo-vmm: --drive: at most 8 drives\n");
				goto out;
			}
			size_t di = fc.ndrives++; /* counted first: vmm_config_free frees a partial entry */
			if (parse_drive_opt(optarg, di, &fc.drives[di], &err) < 0) {
				fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
				status = 1;
				goto out;
			}
			break;
		case OPT_RNG: rng = true; break;
		case OPT_INITRD:
			free(fc.initrd);
			fc.initrd = xstrdup(optarg);
			break;
		case OPT_CMDLINE:
			free(fc.cmdline);
			fc.cmdline = xstrdup(optarg);
			break;
		case OPT_VSOCK:
			free(fc.vsock_uds);
			fc.vsock_uds = xstrdup(optarg);
			break;
		case OPT_JAIL: jail_dir = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_API: api_path = optarg; break;
		case OPT_ID:
			if (!*optarg || strlen(optarg) > 64) {
				fprintf(stderr, "silo-vmm: --id: 1 to 64 bytes\n");
				goto out;
			}
			vm_id = optarg;
			break;
		case OPT_VSOCK_CID:
			if (parse_u64("--vsock-cid", optarg, 3, UINT32_MAX - 1, &fc.vsock_cid) < 0)
				goto out;
			break;
		case OPT_NET:
			if (parse_net(optarg) < 0)
				goto out;
			break;
		case OPT_UID:
			if (parse_u64("--uid", optarg, 1, UINT32_MAX - 1, &n) < 0)
				goto out;
			jo.uid = (uid_t)n, jo.have_uid = true;
			break;
		case OPT_GID:
			if (parse_u64("--gid", optarg, 1, UINT32_MAX - 1, &n) < 0)
				goto out;
			jo.gid = (gid_t)n, have_gid = true;
			break;
		case OPT_CGROUP:
			if (!*optarg || strlen(optarg) > 64 || strchr(optarg, '/') || optarg[0] == '.') {
				fprintf(stderr, "silo-vmm: --cgroup: 1 to 64 bytes, no '/', not starting with '.'\n");
				goto out;
			}
			jo.cgroup = optarg;
			break;
		case OPT_HOLD_FD:
			if (parse_u64("--hold-fd", optarg, 3, 1u << 20, &n) < 0)
				goto out;
			jo.hold_fd = (int)n;
			break;
		case OPT_NETNS:
			if (strcmp(optarg, "new") && optarg[0] != '/') {
				fprintf(stderr, "silo-vmm: --netns: \"new\" or the absolute path of a network namespace\n");
				goto out;
			}
			jo.netns = optarg;
			break;
		case OPT_FSIZE:
			if (parse_u64("--fsize", optarg, 1u << 20, 1ull << 50, &jo.fsize) < 0)
				goto out;
			break;
		case 'h': usage(stdout); status = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "silo-vmm: unexpected argument \"%s\"\n", argv[optind]);
		goto out;
	}
	if (config_path) {
		if (cli_boot || fc.ndrives || fc.vsock_uds) {
			fprintf(stderr, "silo-vmm: --config cannot be combined with --kernel/--payload/--drive/--vsock-uds\n");
			goto out;
		}
		vmm_config_free(&fc);
		if (vmm_config_load(config_path, &fc, &err) < 0) {
			fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
			goto out;
		}
	}
	/* With --api-sock, --config or --kernel/--payload boot at once (the API then serves the
	 * running VM); otherwise the VM is configured and started over the API. */
	bool boot_now = config_path || !api_path || fc.kernel || payload;
	if (boot_now && !!fc.kernel == !!payload) {
		fprintf(stderr, "silo-vmm: give exactly one of --kernel or --payload%s\n",
			api_path ? " (or neither, and configure the VM over --api-sock)" : "");
		usage(stderr);
		goto out;
	}
	if (api_path && !boot_now && (fc.initrd || fc.cmdline || rng)) {
		fprintf(stderr, "silo-vmm: with --api-sock and neither --config nor --kernel/--payload, the VM is "
				"configured over the API (PUT /boot-source, /drives, /vsock); --drive and --vsock-uds "
				"only open the files the API may then name\n");
		goto out;
	}
	if (!jail_dir && (jo.have_uid || have_gid || jo.cgroup || jo.hold_fd >= 0 || jo.netns)) {
		fprintf(stderr, "silo-vmm: --uid, --gid, --cgroup, --hold-fd and --netns need --jail\n");
		goto out;
	}
	if (jo.have_uid != have_gid) {
		fprintf(stderr, "silo-vmm: give --uid and --gid together\n");
		goto out;
	}
	if (jo.hold_fd >= 0 && fcntl(jo.hold_fd, F_GETFD) < 0) {
		fprintf(stderr, "silo-vmm: --hold-fd %d: not an open descriptor\n", jo.hold_fd);
		goto out;
	}

	if (!cfg.irqchip && fc.vcpus > 1) {
		fprintf(stderr, "silo-vmm: --vcpus > 1 needs the in-kernel irqchip (APs wait for INIT/SIPI in its LAPIC)\n");
		goto out;
	}

	status = 1;
	vmm_step("config_parsed");
	const char *cleanup[3] = {NULL, NULL, NULL};
	int nc = 0;
	if (api_path)
		cleanup[nc++] = api_path;
	if (fc.vsock_uds) {
		snprintf(vsock_path, sizeof vsock_path, "%s", fc.vsock_uds);
		cleanup[nc++] = vsock_path;
	}
	if (jail_dir) {
		jo.dir = jail_dir;
		jo.id = vm_id;
		jo.mem_mib = fc.mem_mib;
		jo.vcpus = fc.vcpus;
		jo.cleanup = cleanup;
		envelope.jailed = true;
		envelope.mem_mib = fc.mem_mib;
		envelope.vcpus = fc.vcpus;
		if (jail_start(&jo, &err) < 0) { /* the parent never returns: it is the relay */
			fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
			goto out;
		}
		vmm_files_set_jail(jail_dir);
	}

	/* Signals are taken synchronously by the main thread; vcpu threads inherit the mask. */
	sigset_t s = sigset_of(SIGINT, SIGTERM, SIGUSR2, SIGUSR1, 0);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	signal(SIGPIPE, SIG_IGN);

	int serial_fd = STDOUT_FILENO;
	if (cfg.serial_log) {
		/* read-write: the cap keeps the tail by moving it to the front (logcap.h) */
		serial_fd = open(cfg.serial_log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (serial_fd < 0) {
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, errno, "--serial-log %s", cfg.serial_log);
			goto fail;
		}
	}
	if (preopen(&fc, payload, boot_now, &err) < 0 || (api_path && vmm_api_open(&api, api_path, vm_id, &err) < 0))
		goto fail;
	if (api_path) {
		/* what would otherwise open files (inside the jail) on first use */
		if (sodium_init() < 0) {
			silo_fail(&err, SILO_ERR_INTERNAL, 0, "libsodium");
			goto fail;
		}
		json_object_seed(0);
	}
	vmm_step("files_open");

	static vm v; /* large (vcpu array); keep it off the stack */
	vm_prefetch_cpuid();
	if (boot_now) {
		/* The VM is built (in its own thread when jailed) while the jail is entered (the
		 * relay makes the cgroup and the network namespace meanwhile); the guest is loaded
		 * after this thread joined the cgroup. */
		if (jail_dir) {
			build_job job = {.v = &v, .cfg = &cfg, .fc = &fc};
			pthread_t bt;
			bool threaded = pthread_create(&bt, NULL, build_thread, &job) == 0;
			if (!threaded)
				build_thread(&job);
			/* the builder keeps root (credentials are per thread): it ends here, before
			 * the guest is loaded (jail.c, "Rules") */
			int jr = jail_enter(&err);
			if (threaded)
				pthread_join(bt, NULL);
			vm_cpuid_join();
			vmm_step("vm_joined");
			if (job.rc < 0) {
				if (jr == 0)
					err = job.err;
				goto fail;
			}
			if (jr < 0) {
				vm_destroy(&v);
				goto fail;
			}
		} else if (build_vm(&v, &cfg, &fc, NULL, &err) < 0) {
			goto fail;
		}
		if (load_guest(&v, &cfg, &fc, payload, rng, serial_fd, t0, NULL, &err) < 0 || vcpus_start(&v, &err) < 0) {
			vm_destroy(&v);
			goto fail;
		}
		if (api_path) {
			/* The API reports what --config (or the command line) configured. */
			vmm_file_config tmp = api.cfg;
			api.cfg = fc;
			fc = tmp;
			api.have_boot_source = true;
			api.rng = rng;
		}
	} else {
		/* Every request is read inside the jail: the paths it names resolve there. */
		vm_cpuid_join();
		if (jail_dir && jail_enter(&err) < 0)
			goto fail;
		int r = api_wait_start(&api, &v, cfg, rng, serial_fd, t0, &err);
		if (r < 0)
			goto fail;
		if (r > 0) {
			status = 0; /* SIGTERM/SIGINT before InstanceStart */
			goto out_close;
		}
	}
	if (api_path && vmm_api_start_thread(&api, &v, &err) < 0) {
		vm_request_stop(&v, VM_EXIT_ERROR, 1);
		fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
	}
	vm_exit_reason r = vm_run(&v);
	int code = atomic_load(&v.exit_code);
	uint64_t exits = 0;
	for (int i = 0; i < v.nvcpus; i++)
		exits += v.vcpus[i].exits;
	unsigned long long tb = atomic_load(&v.t_boot_timer), tp = atomic_load(&v.t_first_post);
	char steps[1024], took[1024];
	vmm_steps_json(t0, false, steps, sizeof steps);
	vmm_steps_json(t0, true, took, sizeof took);
	/* process_start_mono_us, first_post_mono_us: CLOCK_MONOTONIC of main() and of the first
	 * guest instruction, for a caller that timed its fork() (bench/vmm_boot.c: exec); steps:
	 * us since process start, step_us: what each took (docs/vmm.md "Start-up") */
	fprintf(stderr,
		"silo-vmm: metrics {\"exit_reason\":\"%s\",\"exit_code\":%d,\"vm_setup_us\":%llu,"
		"\"first_post_us\":%lld,\"process_start_mono_us\":%llu,\"first_post_mono_us\":%lld,"
		"\"boot_timer_us\":%lld,\"boot_timer_since_process_us\":%lld,\"exits\":%llu,\"unhandled_io\":%llu,"
		"\"jailed\":%s,\"steps\":{%s},\"step_us\":{%s}}\n",
		vm_exit_reason_name(r), code, (unsigned long long)((v.t_vm_start - t0) / 1000),
		tp ? (long long)((tp - v.t_vm_start) / 1000) : -1LL, (unsigned long long)(t0 / 1000),
		tp ? (long long)(tp / 1000) : -1LL, tb ? (long long)((tb - v.t_vm_start) / 1000) : -1LL,
		tb ? (long long)((tb - t0) / 1000) : -1LL, (unsigned long long)exits, (unsigned long long)v.bus.unhandled,
		jail_dir ? "true" : "false", steps, took);
	switch (r) {
	case VM_EXIT_DEBUG_EXIT: status = code; break;
	case VM_EXIT_TIMEOUT: status = 124; break;
	case VM_EXIT_ERROR: status = 1; break;
	default: status = 0; break;
	}
	if (api_path)
		vmm_api_close(&api); /* before vm_destroy: the API thread may be pausing the VM */
	vm_destroy(&v);
	goto out_close;
fail:
	fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
	status = 1;
out_close:
	if (api_path)
		vmm_api_close(&api);
	if (serial_fd != STDOUT_FILENO)
		close(serial_fd);
	if (vsock_path[0] && !jail_dir)
		unlink(vsock_path); /* jailed, the relay removes it */
out:
	vmm_config_free(&fc);
	vnet_destroy(net_dev); /* never attached (NULL: attached or none) */
	if (jail_dir) {
		/* jailed, exit-time handlers (a sanitizer's leak check: ptrace) are not allowed */
		fflush(NULL);
		_exit(status);
	}
	return status;
}
