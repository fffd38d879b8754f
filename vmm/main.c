/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm: one KVM microVM per process (docs/vmm.md).
 *
 *   silo-vmm (--kernel ELF | --payload FLAT) [--mem MiB] [--vcpus N]
 *            [--serial-log FILE [--serial-log-max BYTES]] [--boot-timer] [--no-irqchip] [--timeout-ms N]
 *            [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]
 *            [--vsock-uds PATH [--vsock-cid N]] [--jail DIR]
 *   silo-vmm --config FILE [--serial-log FILE] [--boot-timer] [--jail DIR] ...
 *            (Firecracker-style JSON: boot-source, machine-config, drives, vsock)
 *   silo-vmm --api-sock PATH [--id ID] [--config FILE] [--serial-log FILE] [--jail DIR] ...
 *            (Firecracker-compatible control API, control_api.c; without --config the VM is
 *            configured and started over the API: PUT /actions InstanceStart)
 *
 * --kernel takes a bzImage (64-bit boot protocol), an ELF vmlinux with a PVH
 * note (32-bit PVH entry), or a plain ELF64 executable (direct 64-bit entry).
 *
 * virtio-mmio devices sit at 0xd0001000 + i*0x1000 with IOAPIC pin 5 + i, in
 * order: drives, rng, vsock.
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

#include "common/util.h"
#include "control_api.h"
#include "config.h"
#include "snapshot.h"
#include "devices/virtio/virtio.h"
#include "vmm.h"

static void usage(FILE *f)
{
	fputs("usage: silo-vmm (--kernel ELF64 | --payload FLAT.bin) [--mem MiB] [--vcpus N]\n"
	      "                [--serial-log FILE [--serial-log-max BYTES]] [--boot-timer] [--no-irqchip] [--timeout-ms N]\n"
	      "                [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]\n"
	      "                [--vsock-uds PATH [--vsock-cid N]] [--jail DIR]\n"
	      "       silo-vmm --config FIRECRACKER.json [--serial-log FILE] [--boot-timer] [--jail DIR]\n"
	      "       silo-vmm --api-sock PATH [--id ID] [--config FILE] [--serial-log FILE] [--jail DIR]\n",
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

/* Build the VM described by fc (kernel or flat payload, devices), load the guest,
 * enter the jail and start the vCPUs. On failure *fatal says whether the process
 * can still be reconfigured (false: nothing irreversible happened; v is destroyed). */
typedef struct restore_req {
	const vmm_snapshot *snap;
	const char *mem_file;
	bool resume;
} restore_req;

static int start_vm(vm *v, vm_config cfg, const vmm_file_config *fc, const char *payload, bool rng,
		    const char *jail_dir, int serial_fd, uint64_t t0, const restore_req *rr, bool *fatal,
		    silo_error *err)
{
	*fatal = false;
	const char *kernel = fc->kernel;
	const char *cmdline = fc->cmdline ? fc->cmdline : "console=ttyS0 reboot=k panic=1 pci=off";
	cfg.vcpus = (int)fc->vcpus;
	cfg.mem_bytes = fc->mem_mib << 20;
	if (rr) {
		/* Restore: the machine is the snapshot's; RAM maps its memory file copy-on-write. */
		cfg.vcpus = rr->snap->vcpus;
		cfg.mem_bytes = rr->snap->mem_bytes;
		cfg.irqchip = rr->snap->irqchip;
		cfg.mem_file = rr->mem_file;
	}
	if (!cfg.irqchip && cfg.vcpus > 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "vcpus: more than 1 needs the in-kernel irqchip (APs wait for INIT/SIPI in its LAPIC)");
	cleanup_free char *img = NULL, *initrd = NULL, *full_cmdline = NULL;
	size_t img_len = 0, initrd_len = 0;
	const char *path = kernel ? kernel : payload;
	if (!rr && read_file(path, 256u << 20, &img, &img_len, err) < 0)
		return -1;
	if (!rr && fc->initrd && read_file(fc->initrd, 1u << 30, &initrd, &initrd_len, err) < 0)
		return -1;
	if (vm_create(v, &cfg, err) < 0)
		goto fail;
	v->t_process_start = t0;
	if (serial_attach(v, serial_fd, cfg.serial_log_max, err) < 0 || i8042_attach(v, err) < 0 || debug_exit_attach(v, err) < 0 ||
	    (cfg.boot_timer && boot_timer_attach(v, err) < 0))
		goto fail;
	uint64_t vbase = GPA_VIRTIO_BASE;
	uint32_t virq = VIRTIO_IRQ_BASE;
	for (size_t i = 0; i < fc->ndrives; i++, vbase += 0x1000, virq++) {
		const vmm_config_drive *d = &fc->drives[i];
		void *dev = virtio_blk_create(d->path, d->read_only, d->id, err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, d->read_only ? &virtio_blk_ro_ops : &virtio_blk_ops, dev,
					       NULL, err) < 0)
			goto fail;
	}
	if (rng) {
		void *dev = virtio_rng_create(err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, &virtio_rng_ops, dev, NULL, err) < 0)
			goto fail;
		vbase += 0x1000, virq++;
	}
	if (fc->vsock_uds) {
		vsock_dev *dev = vsock_create(fc->vsock_uds, fc->vsock_cid, err);
		if (!dev || virtio_mmio_attach(v, vbase, virq, &virtio_vsock_ops, dev, NULL, err) < 0)
			goto fail;
		vbase += 0x1000, virq++;
	}
	/* Linux finds virtio-mmio devices on its command line. */
	full_cmdline = xstrdup(cmdline);
	for (int i = 0; i < v->nvirtio; i++) {
		char *n2 = xasprintf("%s virtio_mmio.device=4K@0x%llx:%u", full_cmdline,
				     (unsigned long long)v->virtio[i]->base, v->virtio[i]->irq);
		free(full_cmdline);
		full_cmdline = n2;
	}
	if (rr) {
		if (vmm_snapshot_apply(v, rr->snap, err) < 0)
			goto fail;
		if (!rr->resume) {
			/* Park the vCPUs before their first KVM_RUN: PATCH /vm Resumed starts them. */
			atomic_store(&v->pause_req, true);
			v->paused = true;
		}
		goto launch;
	}
	uint32_t pvh_entry;
	const uint8_t *im = (const uint8_t *)img;
	int lr;
	if (!kernel) {
		lr = loader_load_flat(v, im, img_len, err);
	} else if (linux_is_bzimage(im, img_len)) {
		lr = linux_load_bzimage(v, im, img_len, (uint8_t *)initrd, initrd_len, full_cmdline, err);
	} else if (linux_elf_pvh_entry(im, img_len, &pvh_entry)) {
		lr = linux_load_pvh(v, im, img_len, (uint8_t *)initrd, initrd_len, full_cmdline, err);
	} else {
		if (fc->initrd) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "initrd: the kernel is neither a bzImage nor a PVH vmlinux");
			goto fail;
		}
		lr = loader_load_elf64(v, im, img_len, err);
	}
	if (lr < 0)
		goto fail;
	for (int i = 0; i < v->nvcpus; i++) {
		/* With the in-kernel LAPIC, KVM keeps APs in wait-for-SIPI (UNINITIALIZED):
		 * only the BSP (vcpu 0) runs the entry; the guest starts the others. */
		if (vcpu_setup_regs(&v->vcpus[i], &v->boot, err) < 0)
			goto fail;
	}
launch:
	if (jail_dir && jail_set_memory(cfg.mem_bytes >> 20, (uint64_t)cfg.vcpus, err) < 0)
		goto fail;
	if (jail_dir) {
		*fatal = true; /* pivot_root and seccomp cannot be undone */
		if (jail_enter(jail_dir, err) < 0)
			goto fail;
	}
	if (vcpus_start(v, err) < 0) {
		*fatal = true;
		goto fail;
	}
	return 0;
fail:
	vm_destroy(v);
	/* The vsock socket file is ours to remove when the VM never ran. */
	if (fc->vsock_uds && !*fatal)
		unlink(fc->vsock_uds);
	return -1;
}

/* PUT /snapshot/load: open and check the snapshot, rebuild its machine with RAM mapped from the
 * memory file, load the saved state. The API then reports the snapshot's configuration. */
static int restore_from_api(vmm_api *api, vm *v, vm_config cfg, const char *jail_dir, int serial_fd, uint64_t t0,
			    bool *fatal, silo_error *err)
{
	*fatal = false;
	vmm_snapshot snap;
	if (vmm_snapshot_open(api->load_state, api->load_mem, api->load_verify, &snap, err) < 0)
		return -1;
	if (api->load_vsock_uds && snap.cfg.vsock_uds) {
		free(snap.cfg.vsock_uds);
		snap.cfg.vsock_uds = xstrdup(api->load_vsock_uds);
	}
	restore_req rr = {.snap = &snap, .mem_file = api->load_mem, .resume = api->load_resume};
	int r = start_vm(v, cfg, &snap.cfg, NULL, snap.rng, jail_dir, serial_fd, t0, &rr, fatal, err);
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
 * VM runs, 1 on a signal, -1 on a fatal start error (reported in err). */
static int api_wait_start(vmm_api *api, vm *v, vm_config cfg, bool rng, const char *jail_dir, int serial_fd,
			  uint64_t t0, silo_error *err)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
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
		bool fatal = false;
		silo_error e = {0};
		int r;
		if (api->load_state) {
			r = restore_from_api(api, v, cfg, jail_dir, serial_fd, t0, &fatal, &e);
		} else {
			r = start_vm(v, cfg, &api->cfg, NULL, api->rng, jail_dir, serial_fd, t0, NULL, &fatal, &e);
		}
		if (r == 0) {
			api->v = v; /* before answering: a pipelined second InstanceStart is refused */
			vmm_api_reply_start(api, NULL);
			rc = 0;
			break;
		}
		vmm_api_reply_start(api, &e);
		if (fatal) {
			*err = e;
			rc = -1;
			break;
		}
	}
	close(sfd);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t t0 = vmm_now_ns();
	vm_config cfg = {.irqchip = true, .serial_log_max = SERIAL_LOG_MAX_DEFAULT};
	const char *payload = NULL;
	enum { OPT_NO_IRQCHIP = 256, OPT_TIMEOUT, OPT_BOOT_TIMER, OPT_SERIAL, OPT_DRIVE, OPT_RNG, OPT_INITRD, OPT_CMDLINE, OPT_VSOCK, OPT_VSOCK_CID, OPT_JAIL, OPT_CONFIG, OPT_API, OPT_ID, OPT_SERIAL_MAX };
	const char *config_path = NULL, *api_path = NULL, *vm_id = "silo-vmm";
	static vmm_file_config fc; /* from the command line, --config or the API */
	static vmm_api api = {.listen_fd = -1, .stop_fd = -1};
	const char *jail_dir = NULL;
	bool rng = false, cli_boot = false;
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
		{"jail", required_argument, NULL, OPT_JAIL},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"api-sock", required_argument, NULL, OPT_API},
		{"id", required_argument, NULL, OPT_ID},
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
			cli_boot = true;
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
			cli_boot = true;
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
		case 'h': usage(stdout); status = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "silo-vmm: unexpected argument \"%s\"\n", argv[optind]);
		goto out;
	}
	if (config_path) {
		if (cli_boot) {
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
	if (api_path && !boot_now && (cli_boot || fc.initrd || fc.cmdline)) {
		fprintf(stderr, "silo-vmm: with --api-sock and neither --config nor --kernel/--payload, the VM is "
				"configured over the API (PUT /boot-source, /drives, /vsock)\n");
		goto out;
	}
	if (!cfg.irqchip && fc.vcpus > 1) {
		fprintf(stderr, "silo-vmm: --vcpus > 1 needs the in-kernel irqchip (APs wait for INIT/SIPI in its LAPIC)\n");
		goto out;
	}

	status = 1;
	const char *cleanup[3] = {NULL, NULL, NULL};
	int nc = 0;
	if (api_path)
		cleanup[nc++] = api_path;
	if (fc.vsock_uds)
		cleanup[nc++] = fc.vsock_uds;
	if (jail_dir && jail_prepare(cleanup, vm_id, fc.mem_mib, fc.vcpus, &err) < 0) {
		fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
		goto out;
	}

	/* Signals are taken synchronously by the main thread; vcpu threads inherit the mask. */
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	signal(SIGPIPE, SIG_IGN);

	int serial_fd = STDOUT_FILENO;
	if (cfg.serial_log) {
		/* read-write: the cap keeps the tail by moving it to the front (logcap.h) */
		serial_fd = open(cfg.serial_log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (serial_fd < 0) {
			fprintf(stderr, "silo-vmm: --serial-log %s: %s\n", cfg.serial_log, strerror(errno));
			goto out;
		}
	}
	if (api_path && vmm_api_open(&api, api_path, vm_id, &err) < 0)
		goto fail;

	static vm v; /* large (vcpu array); keep it off the stack */
	bool fatal;
	if (boot_now) {
		if (start_vm(&v, cfg, &fc, payload, rng, jail_dir, serial_fd, t0, NULL, &fatal, &err) < 0)
			goto fail;
		if (api_path) {
			/* The API reports what --config (or the command line) configured. */
			vmm_file_config tmp = api.cfg;
			api.cfg = fc;
			fc = tmp;
			api.have_boot_source = true;
			api.rng = rng;
		}
	} else {
		int r = api_wait_start(&api, &v, cfg, rng, jail_dir, serial_fd, t0, &err);
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
	vm_exit_reason r = vm_run_until_stop(&v);
	int code = atomic_load(&v.exit_code);
	uint64_t exits = 0;
	for (int i = 0; i < v.nvcpus; i++)
		exits += v.vcpus[i].exits;
	unsigned long long tb = atomic_load(&v.t_boot_timer), tp = atomic_load(&v.t_first_post);
	fprintf(stderr,
		"silo-vmm: metrics {\"exit_reason\":\"%s\",\"exit_code\":%d,\"vm_setup_us\":%llu,"
		"\"first_post_us\":%lld,\"boot_timer_us\":%lld,\"boot_timer_since_process_us\":%lld,"
		"\"exits\":%llu,\"unhandled_io\":%llu}\n",
		vm_exit_reason_name(r), code, (unsigned long long)((v.t_vm_start - t0) / 1000),
		tp ? (long long)((tp - v.t_vm_start) / 1000) : -1LL,
		tb ? (long long)((tb - v.t_vm_start) / 1000) : -1LL, tb ? (long long)((tb - t0) / 1000) : -1LL,
		(unsigned long long)exits, (unsigned long long)v.bus.unhandled);
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
out:
	vmm_config_free(&fc);
	return status;
}
