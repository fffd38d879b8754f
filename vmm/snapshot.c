/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm snapshots (docs/vmm.md, "Snapshots").
 *
 * State file (little endian):
 *   "SILOSNAP" | u32 version | u32 flags (0) | u64 payload_len | payload | SHA-256(all before)
 *   payload = sections { u32 tag, u32 len, len bytes }:
 *     CONFIG  JSON: {"config": <--config document>, "rng", "irqchip", "mem_bytes", "vcpus",
 *             "snapshot_id", "mem_sha256", "vmm_version"}
 *     VM      kvm_pit_state2 | kvm_clock_data | 3 x kvm_irqchip (PIC master, slave, IOAPIC)
 *     VCPU    u32 index | mp_state | regs | sregs | u32 has_xsave | kvm_xsave or kvm_fpu |
 *             u32 has_xcrs | kvm_xcrs | debugregs | lapic | vcpu_events | u32 n | n x kvm_msr_entry
 *     SERIAL  SERIAL_STATE_LEN bytes
 *     VIRTIO  u32 index | u32 device_id | 6 x u32 transport registers | u64 driver_features |
 *             u32 nq | nq x {u16 size, u8 ready, u8 broken, u64 desc, avail, used, u16 last_avail, used_idx}
 * Memory file: guest RAM | trailer (4096 bytes): "SILOMEM1" | snapshot id (16) | u64 RAM bytes |
 *   SHA-256 of RAM | zeros.
 * Kernel structs are stored as the host's KVM ABI defines them; the version and every
 * section length are checked, so a file from another layout is refused, never misread.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "devices/virtio/virtio.h"
#include "snapshot.h"

enum { TAG_CONFIG = 1, TAG_VM = 2, TAG_VCPU = 3, TAG_SERIAL = 4, TAG_VIRTIO = 5 };
#define MAX_MSRS 1024

typedef struct sbuf {
	uint8_t *p;
	size_t len, cap;
} sbuf;

static void put(sbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t c = b->cap ? b->cap : 65536;
		while (c < b->len + n)
			c *= 2;
		b->p = xrealloc(b->p, c);
		b->cap = c;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put32(sbuf *b, uint32_t v)
{
	put(b, &v, 4);
}

static void put64(sbuf *b, uint64_t v)
{
	put(b, &v, 8);
}

/* Start a section; returns the offset of its length field (patched by end_section). */
static size_t begin_section(sbuf *b, uint32_t tag)
{
	put32(b, tag);
	size_t at = b->len;
	put32(b, 0);
	return at;
}

static void end_section(sbuf *b, size_t at)
{
	uint32_t len = (uint32_t)(b->len - at - 4);
	memcpy(b->p + at, &len, 4);
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int save_vcpu(vm *v, vcpu *c, sbuf *b, silo_error *err)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	memset(&xcrs, 0, sizeof xcrs);
	if (ioctl(c->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(c->fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0 || ioctl(c->fd, KVM_GET_DEBUGREGS, &dbg) < 0 ||
	    ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: vcpu %d registers", c->index);
	if (v->cfg.irqchip && ioctl(c->fd, KVM_GET_LAPIC, &lapic) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: vcpu %d LAPIC", c->index);
	if (!v->cfg.irqchip)
		memset(&lapic, 0, sizeof lapic);
	size_t at = begin_section(b, TAG_VCPU);
	put32(b, (uint32_t)c->index);
	put(b, &mp, sizeof mp);
	put(b, &regs, sizeof regs);
	put(b, &sregs, sizeof sregs);
	bool has_xsave = ioctl(v->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	put32(b, has_xsave);
	if (has_xsave) {
		struct kvm_xsave xs;
		if (ioctl(c->fd, KVM_GET_XSAVE, &xs) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: vcpu %d XSAVE", c->index);
		put(b, &xs, sizeof xs);
	} else {
		struct kvm_fpu fpu;
		if (ioctl(c->fd, KVM_GET_FPU, &fpu) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: vcpu %d FPU", c->index);
		put(b, &fpu, sizeof fpu);
	}
	bool has_xcrs = ioctl(v->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 && ioctl(c->fd, KVM_GET_XCRS, &xcrs) == 0;
	put32(b, has_xcrs);
	put(b, &xcrs, sizeof xcrs);
	put(b, &dbg, sizeof dbg);
	put(b, &lapic, sizeof lapic);
	put(b, &ev, sizeof ev);
	/* Every MSR KVM lists that reads back (one at a time: a bulk read stops at the first
	 * MSR this host cannot read). */
	cleanup_free struct kvm_msr_list *list = xcalloc(1, sizeof *list + MAX_MSRS * sizeof(uint32_t));
	list->nmsrs = MAX_MSRS;
	if (ioctl(v->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: KVM_GET_MSR_INDEX_LIST");
	cleanup_free struct kvm_msrs *one = xcalloc(1, sizeof *one + sizeof(struct kvm_msr_entry));
	size_t n_at = b->len;
	uint32_t n = 0;
	put32(b, 0);
	for (uint32_t i = 0; i < list->nmsrs && i < MAX_MSRS; i++) {
		memset(one, 0, sizeof *one + sizeof(struct kvm_msr_entry));
		one->nmsrs = 1;
		one->entries[0].index = list->indices[i];
		if (ioctl(c->fd, KVM_GET_MSRS, one) == 1) {
			put(b, &one->entries[0], sizeof one->entries[0]);
			n++;
		}
	}
	memcpy(b->p + n_at, &n, 4);
	end_section(b, at);
	return 0;
}

/* A snapshot target must be a regular file open for writing; start it empty. */
static int check_target(const vmm_snap_file *f, silo_error *err)
{
	struct stat st;
	int fl = fcntl(f->fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot: %s is not a regular file open for writing",
				 f->name);
	if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "snapshot: truncate %s", f->name);
	return 0;
}

int vmm_snapshot_create(vm *v, const vmm_file_config *cfg, bool rng, const vmm_snap_file *state,
			const vmm_snap_file *mem, silo_error *err)
{
	if (!vm_is_paused(v))
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "snapshot: pause the microVM first (PATCH /vm Paused)");
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "snapshot: libsodium");
	uint8_t id[16], mem_sha[32];
	randombytes_buf(id, sizeof id);

	if (check_target(mem, err) < 0 || check_target(state, err) < 0)
		return -1;
	/* Memory first: its hash goes into the state file. */
	int mfd = mem->fd;
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	for (uint64_t off = 0; off < v->mem.size; off += 1u << 20) {
		size_t n = v->mem.size - off < (1u << 20) ? (size_t)(v->mem.size - off) : (1u << 20);
		crypto_hash_sha256_update(&hs, v->mem.host + off, n);
		if (write_all(mfd, v->mem.host + off, n) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "snapshot: write %s", mem->name);
	}
	crypto_hash_sha256_final(&hs, mem_sha);
	uint8_t trailer[VMM_SNAPSHOT_TRAILER] = "SILOMEM1";
	memcpy(trailer + 8, id, 16);
	memcpy(trailer + 24, &v->mem.size, 8);
	memcpy(trailer + 32, mem_sha, 32);
	if (write_all(mfd, trailer, sizeof trailer) < 0 || fsync(mfd) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "snapshot: write %s", mem->name);

	sbuf b = {0};
	char idhex[33], shahex[65];
	hex(id, 16, idhex);
	hex(mem_sha, 32, shahex);
	json_t *meta = json_pack("{s:o,s:b,s:b,s:I,s:i,s:s,s:s,s:s,s:I}", "config", vmm_config_json(cfg), "rng", rng,
				 "irqchip", v->cfg.irqchip, "mem_bytes", (json_int_t)v->mem.size, "vcpus", v->nvcpus,
				 "snapshot_id", idhex, "mem_sha256", shahex, "vmm_version", SILO_VERSION,
				 "created_unix", (json_int_t)time(NULL));
	char *mj = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(meta);
	size_t at = begin_section(&b, TAG_CONFIG);
	put(&b, mj, strlen(mj));
	end_section(&b, at);
	free(mj);
	int rc = -1;
	if (v->cfg.irqchip) {
		struct kvm_pit_state2 pit;
		struct kvm_clock_data clk;
		memset(&clk, 0, sizeof clk);
		if (ioctl(v->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(v->vm_fd, KVM_GET_CLOCK, &clk) < 0) {
			silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: PIT/clock");
			goto out;
		}
		at = begin_section(&b, TAG_VM);
		put(&b, &pit, sizeof pit);
		put(&b, &clk, sizeof clk);
		for (uint32_t chip = 0; chip < 3; chip++) {
			struct kvm_irqchip ic = {.chip_id = chip};
			if (ioctl(v->vm_fd, KVM_GET_IRQCHIP, &ic) < 0) {
				silo_fail(err, SILO_ERR_INTERNAL, errno, "snapshot: irqchip %u", chip);
				goto out;
			}
			put(&b, &ic, sizeof ic);
		}
		end_section(&b, at);
	}
	for (int i = 0; i < v->nvcpus; i++)
		if (save_vcpu(v, &v->vcpus[i], &b, err) < 0)
			goto out;
	if (v->serial) {
		uint8_t st[SERIAL_STATE_LEN];
		serial_save(v->serial, st);
		at = begin_section(&b, TAG_SERIAL);
		put(&b, st, sizeof st);
		end_section(&b, at);
	}
	pthread_mutex_lock(&v->bus.lock); /* device threads (vsock) touch the queues */
	for (int i = 0; i < v->nvirtio; i++) {
		virtio_mmio *t = v->virtio[i];
		at = begin_section(&b, TAG_VIRTIO);
		put32(&b, (uint32_t)i);
		put32(&b, t->ops->device_id);
		uint32_t r[6] = {t->status, t->dev_feat_sel, t->drv_feat_sel, t->queue_sel, t->interrupt_status,
				 t->config_generation};
		put(&b, r, sizeof r);
		put64(&b, t->driver_features);
		put32(&b, t->ops->num_queues);
		for (int q = 0; q < t->ops->num_queues; q++) {
			const virtq *vq = &t->queues[q];
			uint8_t fl[2] = {vq->ready, vq->broken};
			put(&b, &vq->size, 2);
			put(&b, fl, 2);
			put64(&b, vq->desc);
			put64(&b, vq->avail);
			put64(&b, vq->used);
			put(&b, &vq->last_avail, 2);
			put(&b, &vq->used_idx, 2);
		}
		end_section(&b, at);
	}
	pthread_mutex_unlock(&v->bus.lock);

	sbuf f = {0};
	put(&f, "SILOSNAP", 8);
	put32(&f, VMM_SNAPSHOT_VERSION);
	put32(&f, 0);
	put64(&f, b.len);
	put(&f, b.p, b.len);
	uint8_t sum[32];
	crypto_hash_sha256(sum, f.p, f.len);
	put(&f, sum, sizeof sum);
	if (write_all(state->fd, f.p, f.len) < 0 || fsync(state->fd) < 0)
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "snapshot: write %s", state->name);
	else
		rc = 0;
	free(f.p);
out:
	free(b.p);
	return rc;
}

void vmm_snapshot_free(vmm_snapshot *s)
{
	vmm_config_free(&s->cfg);
	free(s->payload);
	memset(s, 0, sizeof *s);
}

static int bad_state(silo_error *err, const char *path, const char *what)
{
	return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot %s: %s", path, what);
}

/* The whole state file (at most VMM_SNAPSHOT_MAX_STATE bytes) from offset 0. */
static int read_state(const vmm_snap_file *f, char **out, size_t *len, silo_error *err)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "snapshot %s: not a regular file", f->name);
	if (st.st_size > VMM_SNAPSHOT_MAX_STATE)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, EFBIG, "snapshot %s: larger than %u bytes", f->name,
				 VMM_SNAPSHOT_MAX_STATE);
	char *buf = xmalloc((size_t)st.st_size + 1);
	ssize_t n = pread(f->fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(buf);
		return silo_fail(err, SILO_ERR_IO_ERROR, n < 0 ? errno : EIO, "snapshot: read %s", f->name);
	}
	*out = buf;
	*len = (size_t)n;
	return 0;
}

int vmm_snapshot_open(const vmm_snap_file *state, const vmm_snap_file *mem, bool verify_memory, vmm_snapshot *s,
		      silo_error *err)
{
	memset(s, 0, sizeof *s);
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "snapshot: libsodium");
	const char *state_path = state->name, *mem_path = mem->name;
	cleanup_free char *raw = NULL;
	size_t len = 0;
	if (read_state(state, &raw, &len, err) < 0)
		return -1;
	const uint8_t *d = (const uint8_t *)raw;
	if (len < 24 + 32 || memcmp(d, "SILOSNAP", 8))
		return bad_state(err, state_path, "not a silo-vmm snapshot state file (bad magic or too short)");
	uint32_t version;
	uint64_t plen;
	memcpy(&version, d + 8, 4);
	memcpy(&plen, d + 16, 8);
	if (version != VMM_SNAPSHOT_VERSION)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "snapshot %s: format version %u, this silo-vmm reads %u",
				 state_path, version, VMM_SNAPSHOT_VERSION);
	if (plen != len - 24 - 32)
		return bad_state(err, state_path, "truncated or extended (payload length does not match the file)");
	uint8_t sum[32];
	crypto_hash_sha256(sum, d, len - 32);
	if (sodium_memcmp(sum, d + len - 32, 32))
		return bad_state(err, state_path, "SHA-256 mismatch: the state file is corrupt");
	/* The CONFIG section comes first. */
	uint32_t tag, slen;
	const uint8_t *p = d + 24;
	memcpy(&tag, p, 4);
	memcpy(&slen, p + 4, 4);
	if (plen < 8 || tag != TAG_CONFIG || slen > plen - 8)
		return bad_state(err, state_path, "first section is not the configuration");
	json_error_t je;
	json_t *meta = json_loadb((const char *)p + 8, slen, JSON_REJECT_DUPLICATES, &je);
	if (!meta)
		return bad_state(err, state_path, "configuration is not JSON");
	int rc = -1;
	json_t *cfg = json_object_get(meta, "config"), *mb = json_object_get(meta, "mem_bytes"),
	       *vc = json_object_get(meta, "vcpus");
	const char *idhex = json_string_value(json_object_get(meta, "snapshot_id"));
	const char *shahex = json_string_value(json_object_get(meta, "mem_sha256"));
	uint8_t want_sha[32];
	if (!json_is_object(cfg) || !json_is_integer(mb) || !json_is_integer(vc) || unhex(idhex, s->id, 16) < 0 ||
	    unhex(shahex, want_sha, 32) < 0 || json_integer_value(vc) < 1 || json_integer_value(vc) > VMM_MAX_VCPUS ||
	    json_integer_value(mb) < (1 << 20) || (uint64_t)json_integer_value(mb) > GPA_MMIO_GAP_START) {
		bad_state(err, state_path, "configuration section lacks config/mem_bytes/vcpus/snapshot_id/mem_sha256");
		goto out;
	}
	if (vmm_config_parse(cfg, &s->cfg, err) < 0) {
		silo_error_prefix(err, "snapshot %s", state_path);
		goto out;
	}
	s->rng = json_is_true(json_object_get(meta, "rng"));
	s->irqchip = json_is_true(json_object_get(meta, "irqchip"));
	s->mem_bytes = (uint64_t)json_integer_value(mb);
	s->vcpus = (int)json_integer_value(vc);

	/* Memory file: RAM + trailer naming this snapshot. */
	int fd = mem->fd;
	struct stat st;
	uint8_t tr[VMM_SNAPSHOT_TRAILER];
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != s->mem_bytes + VMM_SNAPSHOT_TRAILER ||
	    pread(fd, tr, sizeof tr, (off_t)s->mem_bytes) != (ssize_t)sizeof tr) {
		bad_state(err, mem_path, "size does not match the state file (truncated, or another snapshot's memory)");
		goto out;
	}
	uint64_t tsize;
	memcpy(&tsize, tr + 24, 8);
	if (memcmp(tr, "SILOMEM1", 8) || memcmp(tr + 8, s->id, 16) || tsize != s->mem_bytes ||
	    memcmp(tr + 32, want_sha, 32)) {
		bad_state(err, mem_path, "trailer does not belong to this state file (another snapshot's memory?)");
		goto out;
	}
	if (verify_memory) {
		crypto_hash_sha256_state hs;
		crypto_hash_sha256_init(&hs);
		static uint8_t chunk[1u << 20];
		for (uint64_t off = 0; off < s->mem_bytes;) {
			size_t n = s->mem_bytes - off < sizeof chunk ? (size_t)(s->mem_bytes - off) : sizeof chunk;
			ssize_t r = pread(fd, chunk, n, (off_t)off);
			if (r <= 0) {
				silo_fail(err, SILO_ERR_IO_ERROR, errno, "snapshot: read %s", mem_path);
				goto out;
			}
			crypto_hash_sha256_update(&hs, chunk, (size_t)r);
			off += (uint64_t)r;
		}
		uint8_t got[32];
		crypto_hash_sha256_final(&hs, got);
		if (sodium_memcmp(got, want_sha, 32)) {
			bad_state(err, mem_path, "SHA-256 of guest memory does not match: the memory file is corrupt");
			goto out;
		}
	}
	s->payload_len = (size_t)plen;
	s->payload = xmalloc(s->payload_len);
	memcpy(s->payload, d + 24, s->payload_len);
	rc = 0;
out:
	json_decref(meta);
	if (rc < 0)
		vmm_snapshot_free(s);
	return rc;
}

/* Bounded reader over one section. */
typedef struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
} rd;

static void get(rd *r, void *out, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
}

static uint32_t get32(rd *r)
{
	uint32_t v;
	get(r, &v, 4);
	return v;
}

static int apply_vcpu(vm *v, rd *r, bool *seen, silo_error *err)
{
	uint32_t idx = get32(r);
	if (r->bad || idx >= (uint32_t)v->nvcpus || seen[idx])
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: vcpu section with bad index %u", idx);
	seen[idx] = true;
	vcpu *c = &v->vcpus[idx];
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	get(r, &mp, sizeof mp);
	get(r, &regs, sizeof regs);
	get(r, &sregs, sizeof sregs);
	uint32_t has_xsave = get32(r);
	if (has_xsave)
		get(r, &xs, sizeof xs);
	else
		get(r, &fpu, sizeof fpu);
	uint32_t has_xcrs = get32(r);
	get(r, &xcrs, sizeof xcrs);
	get(r, &dbg, sizeof dbg);
	get(r, &lapic, sizeof lapic);
	get(r, &ev, sizeof ev);
	uint32_t n = get32(r);
	if (r->bad || n > MAX_MSRS || (size_t)n * sizeof(struct kvm_msr_entry) != r->left)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: vcpu %u section has the wrong size", idx);
	cleanup_free struct kvm_msrs *msrs = xcalloc(1, sizeof *msrs + n * sizeof(struct kvm_msr_entry));
	msrs->nmsrs = n;
	get(r, msrs->entries, n * sizeof(struct kvm_msr_entry));
	/* Firecracker's order: mp_state, regs, sregs, xsave, xcrs, debugregs, lapic, msrs, events. */
	const char *what = NULL;
	if (ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0)
		what = "KVM_SET_MP_STATE";
	else if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		what = "KVM_SET_REGS";
	else if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
		what = "KVM_SET_SREGS";
	else if (has_xsave ? ioctl(c->fd, KVM_SET_XSAVE, &xs) < 0 : ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
		what = has_xsave ? "KVM_SET_XSAVE" : "KVM_SET_FPU";
	else if (has_xcrs && ioctl(c->fd, KVM_SET_XCRS, &xcrs) < 0)
		what = "KVM_SET_XCRS";
	else if (ioctl(c->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
		what = "KVM_SET_DEBUGREGS";
	else if (v->cfg.irqchip && ioctl(c->fd, KVM_SET_LAPIC, &lapic) < 0)
		what = "KVM_SET_LAPIC";
	if (what)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "restore: vcpu %u: %s", idx, what);
	int set = ioctl(c->fd, KVM_SET_MSRS, msrs);
	if (set < 0 || (uint32_t)set != n)
		return silo_fail(err, SILO_ERR_INTERNAL, set < 0 ? errno : 0, "restore: vcpu %u: MSR 0x%x refused", idx,
				 set >= 0 && (uint32_t)set < n ? msrs->entries[set].index : 0);
	if (ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "restore: vcpu %u: KVM_SET_VCPU_EVENTS", idx);
	return 0;
}

static int apply_virtio(vm *v, rd *r, silo_error *err)
{
	uint32_t idx = get32(r), dev_id = get32(r);
	if (r->bad || idx >= (uint32_t)v->nvirtio || v->virtio[idx]->ops->device_id != dev_id)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: virtio device %u does not match the configuration",
				 idx);
	virtio_mmio *t = v->virtio[idx];
	uint32_t regs[6];
	get(r, regs, sizeof regs);
	uint64_t feat;
	get(r, &feat, 8);
	uint32_t nq = get32(r);
	if (r->bad || nq != t->ops->num_queues || nq > 8)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: virtio device %u: queue count", idx);
	virtq qs[8];
	memset(qs, 0, sizeof qs);
	for (uint32_t q = 0; q < nq; q++) {
		uint8_t fl[2];
		get(r, &qs[q].size, 2);
		get(r, fl, 2);
		get(r, &qs[q].desc, 8);
		get(r, &qs[q].avail, 8);
		get(r, &qs[q].used, 8);
		get(r, &qs[q].last_avail, 2);
		get(r, &qs[q].used_idx, 2);
		qs[q].ready = fl[0];
		qs[q].broken = fl[1];
		/* Same rules as the guest's own writes: a ready queue has a valid layout. */
		if (qs[q].size > VIRTQ_MAX_SIZE || (qs[q].size & (qs[q].size - 1)) ||
		    (qs[q].ready && !virtq_layout_valid(&v->mem, &qs[q])))
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: virtio device %u queue %u is invalid",
					 idx, q);
	}
	if (r->bad || r->left)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: virtio device %u section size", idx);
	t->status = regs[0] & 0xff;
	t->dev_feat_sel = regs[1];
	t->drv_feat_sel = regs[2];
	t->queue_sel = regs[3];
	t->interrupt_status = regs[4] & 3;
	t->config_generation = regs[5];
	t->driver_features = feat;
	memcpy(t->queues, qs, sizeof qs);
	return 0;
}

int vmm_snapshot_apply(vm *v, const vmm_snapshot *s, silo_error *err)
{
	if (v->nvcpus != s->vcpus || v->mem.size != s->mem_bytes || v->cfg.irqchip != s->irqchip)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "restore: the VM does not match the snapshot");
	bool seen[VMM_MAX_VCPUS] = {false};
	int nvcpu = 0;
	bool vm_state = false;
	const uint8_t *p = s->payload, *end = s->payload + s->payload_len;
	while (p < end) {
		uint32_t tag, len;
		if (end - p < 8)
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: truncated section header");
		memcpy(&tag, p, 4);
		memcpy(&len, p + 4, 4);
		p += 8;
		if (len > (size_t)(end - p))
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: section %u overruns the file", tag);
		rd r = {.p = p, .left = len};
		p += len;
		switch (tag) {
		case TAG_CONFIG:
			break;
		case TAG_VM: {
			struct kvm_pit_state2 pit;
			struct kvm_clock_data clk;
			struct kvm_irqchip ic[3];
			get(&r, &pit, sizeof pit);
			get(&r, &clk, sizeof clk);
			get(&r, ic, sizeof ic);
			if (r.bad || r.left || !v->cfg.irqchip)
				return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: VM section size");
			clk.flags = 0;
			if (ioctl(v->vm_fd, KVM_SET_PIT2, &pit) < 0 || ioctl(v->vm_fd, KVM_SET_CLOCK, &clk) < 0)
				return silo_fail(err, SILO_ERR_INTERNAL, errno, "restore: PIT/clock");
			for (int i = 0; i < 3; i++)
				if (ic[i].chip_id != (uint32_t)i || ioctl(v->vm_fd, KVM_SET_IRQCHIP, &ic[i]) < 0)
					return silo_fail(err, SILO_ERR_INTERNAL, errno, "restore: irqchip %d", i);
			vm_state = true;
			break;
		}
		case TAG_VCPU:
			/* VM state (irqchip) before the vCPUs' LAPICs: it comes first in the file. */
			if (apply_vcpu(v, &r, seen, err) < 0)
				return -1;
			nvcpu++;
			break;
		case TAG_SERIAL: {
			uint8_t st[SERIAL_STATE_LEN];
			get(&r, st, sizeof st);
			if (r.bad || r.left || !v->serial)
				return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: serial section");
			serial_restore(v->serial, st);
			break;
		}
		case TAG_VIRTIO:
			if (apply_virtio(v, &r, err) < 0)
				return -1;
			break;
		default:
			return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: unknown section %u", tag);
		}
	}
	if (nvcpu != v->nvcpus || vm_state != v->cfg.irqchip)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "snapshot: %d of %d vCPU sections%s", nvcpu, v->nvcpus,
				 vm_state != v->cfg.irqchip ? ", VM section missing" : "");
	return 0;
}
