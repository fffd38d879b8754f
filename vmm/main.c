/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm: one KVM microVM per process (docs/vmm.md).
 *
 *   silo-vmm (--kernel ELF | --payload FLAT) [--mem MiB] [--vcpus N]
 *            [--serial-log FILE] [--boot-timer] [--no-irqchip] [--timeout-ms N]
 *            [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]
 *            [--vsock-uds PATH [--vsock-cid N]] [--jail DIR]
 *   silo-vmm --config FILE [--serial-log FILE] [--boot-timer] [--jail DIR] ...
 *            (Firecracker-style JSON: boot-source, machine-config, drives, vsock)
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
#include <unistd.h>

#include "common/util.h"
#include "config.h"
#include "devices/virtio/virtio.h"
#include "vmm.h"

static void usage(FILE *f)
{
	fputs("usage: silo-vmm (--kernel ELF64 | --payload FLAT.bin) [--mem MiB] [--vcpus N]\n"
	      "                [--serial-log FILE] [--boot-timer] [--no-irqchip] [--timeout-ms N]\n"
	      "                [--drive PATH[,ro][,id=ID]]... [--rng] [--initrd FILE] [--cmdline STR]\n"
	      "                [--vsock-uds PATH [--vsock-cid N]] [--jail DIR]\n"
	      "       silo-vmm --config FIRECRACKER.json [--serial-log FILE] [--boot-timer] [--jail DIR]\n",
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

int main(int argc, char **argv)
{
	uint64_t t0 = vmm_now_ns();
	vm_config cfg = {.mem_bytes = 128ULL << 20, .vcpus = 1, .irqchip = true};
	const char *kernel = NULL, *payload = NULL;
	enum { OPT_NO_IRQCHIP = 256, OPT_TIMEOUT, OPT_BOOT_TIMER, OPT_SERIAL, OPT_DRIVE, OPT_RNG, OPT_INITRD, OPT_CMDLINE, OPT_VSOCK, OPT_VSOCK_CID, OPT_JAIL, OPT_CONFIG };
	const char *config_path = NULL;
	static vmm_file_config fc;
	static char drive_specs[8][4200];
	const char *vsock_uds = NULL, *jail_dir = NULL;
	uint64_t vsock_cid = 3;
	const char *initrd_path = NULL, *cmdline = "console=ttyS0 reboot=k panic=1 pci=off";
	const char *drives[8];
	int ndrives = 0;
	bool rng = false;
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"payload", required_argument, NULL, 'p'},
		{"mem", required_argument, NULL, 'm'},
		{"vcpus", required_argument, NULL, 'c'},
		{"serial-log", required_argument, NULL, OPT_SERIAL},
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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;
	uint64_t n;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'k': kernel = optarg; break;
		case 'p': payload = optarg; break;
		case 'm':
			if (parse_u64("--mem", optarg, 1, GPA_MMIO_GAP_START >> 20, &n) < 0)
				return 2;
			cfg.mem_bytes = n << 20;
			break;
		case 'c':
			if (parse_u64("--vcpus", optarg, 1, VMM_MAX_VCPUS, &n) < 0)
				return 2;
			cfg.vcpus = (int)n;
			break;
		case OPT_SERIAL: cfg.serial_log = optarg; break;
		case OPT_BOOT_TIMER: cfg.boot_timer = true; break;
		case OPT_NO_IRQCHIP: cfg.irqchip = false; break;
		case OPT_TIMEOUT:
			if (parse_u64("--timeout-ms", optarg, 1, 86400000, &cfg.timeout_ms) < 0)
				return 2;
			break;
		case OPT_DRIVE:
			if (ndrives == 8) {
				fprintf(stderr, "silo-vmm: --drive: at most 8 drives\n");
				return 2;
			}
			drives[ndrives++] = optarg;
			break;
		case OPT_RNG: rng = true; break;
		case OPT_INITRD: initrd_path = optarg; break;
		case OPT_CMDLINE: cmdline = optarg; break;
		case OPT_VSOCK: vsock_uds = optarg; break;
		case OPT_JAIL: jail_dir = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_VSOCK_CID:
			if (parse_u64("--vsock-cid", optarg, 3, UINT32_MAX - 1, &vsock_cid) < 0)
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "silo-vmm: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (config_path) {
		silo_error cerr = {0};
		char cbuf[1024];
		if (kernel || payload || ndrives || vsock_uds) {
			fprintf(stderr, "silo-vmm: --config cannot be combined with --kernel/--payload/--drive/--vsock-uds\n");
			return 2;
		}
		if (vmm_config_load(config_path, &fc, &cerr) < 0) {
			fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&cerr, cbuf, sizeof cbuf));
			return 2;
		}
		kernel = fc.kernel;
		if (fc.cmdline)
			cmdline = fc.cmdline;
		initrd_path = fc.initrd;
		cfg.vcpus = (int)fc.vcpus;
		cfg.mem_bytes = fc.mem_mib << 20;
		for (size_t i = 0; i < fc.ndrives; i++) {
			snprintf(drive_specs[i], sizeof drive_specs[i], "%s%s,id=%s", fc.drives[i].path,
				 fc.drives[i].read_only ? ",ro" : "", fc.drives[i].id);
			drives[ndrives++] = drive_specs[i];
		}
		vsock_uds = fc.vsock_uds;
		vsock_cid = fc.vsock_cid;
	}
	if (!cfg.irqchip && cfg.vcpus > 1) {
		fprintf(stderr, "silo-vmm: --vcpus > 1 needs the in-kernel irqchip (APs wait for INIT/SIPI in its LAPIC)\n");
		return 2;
	}
	if (!!kernel == !!payload) {
		fprintf(stderr, "silo-vmm: give exactly one of --kernel or --payload\n");
		usage(stderr);
		return 2;
	}

	silo_error jerr = {0};
	char jbuf[512];
	if (jail_dir && jail_prepare(vsock_uds, &jerr) < 0) {
		fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&jerr, jbuf, sizeof jbuf));
		return 1;
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

	const char *path = kernel ? kernel : payload;
	cleanup_free char *img = NULL;
	size_t img_len = 0;
	silo_error err = {0};
	char ebuf[1024];
	if (read_file(path, 256u << 20, &img, &img_len, &err) < 0) {
		fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
		return 1;
	}
	int serial_fd = STDOUT_FILENO;
	if (cfg.serial_log) {
		serial_fd = open(cfg.serial_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (serial_fd < 0) {
			fprintf(stderr, "silo-vmm: --serial-log %s: %s\n", cfg.serial_log, strerror(errno));
			return 1;
		}
	}

	static vm v; /* large (vcpu array); keep it off the stack */
	cleanup_free char *full_cmdline = NULL;
	cleanup_free char *initrd = NULL;
	size_t initrd_len = 0;
	int status = 1;
	if (vm_create(&v, &cfg, &err) < 0)
		goto fail;
	v.t_process_start = t0;
	if (serial_attach(&v, serial_fd, &err) < 0 || i8042_attach(&v, &err) < 0 ||
	    debug_exit_attach(&v, &err) < 0 || (cfg.boot_timer && boot_timer_attach(&v, &err) < 0))
		goto fail;
	uint64_t vbase = GPA_VIRTIO_BASE;
	uint32_t virq = VIRTIO_IRQ_BASE;
	for (int i = 0; i < ndrives; i++, vbase += 0x1000, virq++) {
		/* PATH[,ro][,id=ID]: the path is everything before the first comma. */
		char spec[4096];
		snprintf(spec, sizeof spec, "%s", drives[i]);
		bool ro = false;
		const char *id = NULL;
		char *save = NULL, *p = strtok_r(spec, ",", &save);
		for (char *o2 = strtok_r(NULL, ",", &save); o2; o2 = strtok_r(NULL, ",", &save)) {
			if (!strcmp(o2, "ro"))
				ro = true;
			else if (!strncmp(o2, "id=", 3) && strlen(o2 + 3) <= 20)
				id = o2 + 3;
			else {
				silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0,
					  "--drive %s: unknown option \"%s\" (ro, id=ID up to 20 chars)", drives[i], o2);
				goto fail;
			}
		}
		void *dev = p ? virtio_blk_create(p, ro, id, &err) : NULL;
		if (!dev || virtio_mmio_attach(&v, vbase, virq, ro ? &virtio_blk_ro_ops : &virtio_blk_ops, dev, NULL, &err) < 0)
			goto fail;
	}
	if (rng) {
		void *dev = virtio_rng_create(&err);
		if (!dev || virtio_mmio_attach(&v, vbase, virq, &virtio_rng_ops, dev, NULL, &err) < 0)
			goto fail;
		vbase += 0x1000, virq++;
	}
	if (vsock_uds) {
		vsock_dev *dev = vsock_create(vsock_uds, vsock_cid, &err);
		if (!dev || virtio_mmio_attach(&v, vbase, virq, &virtio_vsock_ops, dev, NULL, &err) < 0)
			goto fail;
		vbase += 0x1000, virq++;
	}
	/* Linux finds virtio-mmio devices on its command line. */
	full_cmdline = xstrdup(cmdline);
	for (int i = 0; i < v.nvirtio; i++) {
		char *n2 = xasprintf("%s virtio_mmio.device=4K@0x%llx:%u", full_cmdline,
				     (unsigned long long)v.virtio[i]->base, v.virtio[i]->irq);
		free(full_cmdline);
		full_cmdline = n2;
	}
	if (initrd_path && read_file(initrd_path, 1u << 30, &initrd, &initrd_len, &err) < 0)
		goto fail;
	uint32_t pvh_entry;
	const uint8_t *im = (const uint8_t *)img;
	int lr;
	if (!kernel) {
		lr = loader_load_flat(&v, im, img_len, &err);
	} else if (linux_is_bzimage(im, img_len)) {
		lr = linux_load_bzimage(&v, im, img_len, (uint8_t *)initrd, initrd_len, full_cmdline, &err);
	} else if (linux_elf_pvh_entry(im, img_len, &pvh_entry)) {
		lr = linux_load_pvh(&v, im, img_len, (uint8_t *)initrd, initrd_len, full_cmdline, &err);
	} else {
		if (initrd_path) {
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--initrd: the kernel is neither a bzImage nor a PVH vmlinux");
			goto fail;
		}
		lr = loader_load_elf64(&v, im, img_len, &err);
	}
	if (lr < 0)
		goto fail;
	for (int i = 0; i < v.nvcpus; i++) {
		/* With the in-kernel LAPIC, KVM keeps APs in wait-for-SIPI (UNINITIALIZED):
		 * only the BSP (vcpu 0) runs the entry; the guest starts the others. */
		if (vcpu_setup_regs(&v.vcpus[i], &v.boot, &err) < 0)
			goto fail;
	}
	if (jail_dir && jail_enter(jail_dir, &err) < 0)
		goto fail;
	if (vcpus_start(&v, &err) < 0)
		goto fail;
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
	vm_destroy(&v);
	if (serial_fd != STDOUT_FILENO)
		close(serial_fd);
	vmm_config_free(&fc);
	return status;
fail:
	fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
	vm_destroy(&v);
	if (serial_fd != STDOUT_FILENO)
		close(serial_fd);
	vmm_config_free(&fc);
	return 1;
}
