/* SPDX-License-Identifier: Apache-2.0
 * Linux boot: PVH entry of an ELF vmlinux (XEN_ELFNOTE_PHYS32_ENTRY,
 * hvm_start_info + memory map + initrd module) and the 64-bit bzImage boot
 * protocol (setup header, boot_params, e820, command line, initramfs).
 * Documentation/x86/boot.rst and xen/include/public/arch-x86/hvm/start_info.h
 * describe the formats; every offset and size read from the image is checked.
 */
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "vmm.h"

#define GPA_START_INFO 0x6000ULL
#define GPA_MODLIST 0x6800ULL
#define GPA_MEMMAP 0x6c00ULL
#define GPA_BOOT_PARAMS 0x7000ULL
#define GPA_CMDLINE 0x20000ULL
#define CMDLINE_MAX 4096
#define EBDA_START 0x9fc00ULL
#define HIMEM_START 0x100000ULL
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define E820_RAM 1
#define E820_RESERVED 2

static int put_cmdline(vm *v, const char *cmdline, uint32_t max, silo_error *err)
{
	size_t n = strlen(cmdline) + 1;
	if (n > max || n > CMDLINE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "cmdline: %zu bytes, the kernel accepts at most %u",
				 n - 1, (max < CMDLINE_MAX ? max : CMDLINE_MAX) - 1);
	guest_mem_write(&v->mem, GPA_CMDLINE, cmdline, n);
	return 0;
}

/* Place the initrd page-aligned at the top of RAM below limit; returns its GPA. */
static int put_initrd(vm *v, const uint8_t *initrd, size_t len, uint64_t limit, uint64_t kernel_end,
		      uint64_t *gpa, silo_error *err)
{
	uint64_t top = v->mem.size < limit ? v->mem.size : limit;
	if (len == 0 || len > top)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "initrd: %zu bytes do not fit in guest RAM", len);
	uint64_t at = (top - len) & ~0xfffULL;
	if (at < kernel_end)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "initrd: %zu bytes overlap the kernel; give the VM more memory", len);
	guest_mem_write(&v->mem, at, initrd, len);
	*gpa = at;
	return 0;
}

/* ---- PVH ---- */

bool linux_elf_pvh_entry(const uint8_t *img, size_t len, uint32_t *entry)
{
	if (len < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0 || img[EI_CLASS] != ELFCLASS64)
		return false;
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len || eh.e_phnum > 64 ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
		if (ph.p_type != PT_NOTE || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			continue;
		uint64_t off = ph.p_offset, end = ph.p_offset + ph.p_filesz;
		while (end - off >= sizeof(Elf64_Nhdr)) {
			Elf64_Nhdr nh;
			memcpy(&nh, img + off, sizeof nh);
			uint64_t name_off = off + sizeof nh;
			uint64_t desc_off = name_off + (((uint64_t)nh.n_namesz + 3) & ~3ULL);
			uint64_t next = desc_off + (((uint64_t)nh.n_descsz + 3) & ~3ULL);
			if (desc_off > end || next > end)
				break;
			if (nh.n_namesz == 4 && !memcmp(img + name_off, "Xen", 4) &&
			    nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_descsz >= 4) {
				memcpy(entry, img + desc_off, 4);
				return true;
			}
			off = next;
		}
	}
	return false;
}

int linux_load_pvh(vm *v, const uint8_t *img, size_t len, const uint8_t *initrd, size_t initrd_len,
		   const char *cmdline, silo_error *err)
{
	uint32_t entry;
	if (!linux_elf_pvh_entry(img, len, &entry))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF has no XEN_ELFNOTE_PHYS32_ENTRY (PVH) note");
	uint64_t kernel_end;
	bool entry_in;
	if (loader_load_segments(v, img, len, &kernel_end, &entry_in, err) < 0)
		return -1;
	if (put_cmdline(v, cmdline, CMDLINE_MAX, err) < 0)
		return -1;
	struct {
		uint32_t magic, version, flags, nr_modules;
		uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
		uint32_t memmap_entries, reserved;
	} si = {.magic = 0x336ec578, .version = 1, .cmdline_paddr = GPA_CMDLINE,
		.memmap_paddr = GPA_MEMMAP, .memmap_entries = 3};
	struct {
		uint64_t addr, size;
		uint32_t type, reserved;
	} mm[3] = {{0, EBDA_START, E820_RAM, 0},
		   {EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED, 0},
		   {HIMEM_START, v->mem.size - HIMEM_START, E820_RAM, 0}};
	guest_mem_write(&v->mem, GPA_MEMMAP, mm, sizeof mm);
	if (initrd) {
		uint64_t at;
		if (put_initrd(v, initrd, initrd_len, v->mem.size, kernel_end, &at, err) < 0)
			return -1;
		uint64_t mod[4] = {at, initrd_len, 0, 0};
		guest_mem_write(&v->mem, GPA_MODLIST, mod, sizeof mod);
		si.nr_modules = 1;
		si.modlist_paddr = GPA_MODLIST;
	}
	guest_mem_write(&v->mem, GPA_START_INFO, &si, sizeof si);
	if (loader_setup_long_mode_tables(v, err) < 0) /* writes the GDT (code32 at 0x20) */
		return -1;
	v->boot = (boot_state){.mode = BOOT_PROT32, .entry = entry, .rbx = GPA_START_INFO};
	return 0;
}

/* ---- bzImage ---- */

bool linux_is_bzimage(const uint8_t *img, size_t len)
{
	return len > 0x264 && !memcmp(img + 0x202, "HdrS", 4) && img[0x1fe] == 0x55 && img[0x1ff] == 0xaa;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int linux_load_bzimage(vm *v, const uint8_t *img, size_t len, const uint8_t *initrd, size_t initrd_len,
		       const char *cmdline, silo_error *err)
{
	if (!linux_is_bzimage(img, len))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: no bzImage setup header (\"HdrS\" at 0x202)");
	uint16_t version = le16(img + 0x206);
	if (version < 0x20c)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "kernel: boot protocol %u.%02u is too old (need 2.12 for the 64-bit entry)",
				 version >> 8, version & 0xff);
	if (!(le16(img + 0x236) & 1))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: bzImage lacks XLF_KERNEL_64 (no 64-bit entry)");
	unsigned setup_sects = img[0x1f1] ? img[0x1f1] : 4;
	uint64_t setup_size = (setup_sects + 1ULL) * 512;
	if (setup_size >= len)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: setup_sects %u exceeds the file", setup_sects);
	uint64_t kernel_size = len - setup_size;
	uint64_t load = HIMEM_START;
	if (!guest_mem_ptr(&v->mem, load, kernel_size))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: %llu bytes do not fit in guest RAM",
				 (unsigned long long)kernel_size);
	guest_mem_write(&v->mem, load, img + setup_size, kernel_size);
	/* init_size: the decompressor needs that much room at the load address. */
	uint64_t init_size = le32(img + 0x260);
	uint64_t kernel_end = load + (init_size > kernel_size ? init_size : kernel_size);
	if (kernel_end > v->mem.size)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "kernel: needs %llu MiB of RAM to decompress",
				 (unsigned long long)(kernel_end >> 20) + 1);

	uint8_t bp[4096];
	memset(bp, 0, sizeof bp);
	/* Copy the setup header: from 0x1f1 to the end given by the jump at 0x200. */
	uint64_t hdr_end = 0x202 + (uint64_t)img[0x201];
	if (hdr_end > sizeof bp || hdr_end > len)
		hdr_end = 0x268 < len ? 0x268 : len;
	memcpy(bp + 0x1f1, img + 0x1f1, hdr_end - 0x1f1);
	bp[0x210] = 0xff;                /* type_of_loader: undefined */
	bp[0x211] |= 0x80;               /* CAN_USE_HEAP */
	bp[0x224] = 0x00, bp[0x225] = 0xfe; /* heap_end_ptr 0xfe00 */
	uint32_t cmdline_size = version >= 0x206 ? le32(img + 0x238) + 1 : 256;
	if (put_cmdline(v, cmdline, cmdline_size, err) < 0)
		return -1;
	uint32_t cl = GPA_CMDLINE;
	memcpy(bp + 0x228, &cl, 4);
	if (initrd) {
		uint64_t limit = (uint64_t)le32(img + 0x22c) + 1, at;
		if (put_initrd(v, initrd, initrd_len, limit, kernel_end, &at, err) < 0)
			return -1;
		uint32_t a32 = (uint32_t)at, l32 = (uint32_t)initrd_len;
		memcpy(bp + 0x218, &a32, 4);
		memcpy(bp + 0x21c, &l32, 4);
	}
	struct __attribute__((packed)) {
		uint64_t addr, size;
		uint32_t type;
	} e820[3] = {{0, EBDA_START, E820_RAM},
		     {EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED},
		     {HIMEM_START, v->mem.size - HIMEM_START, E820_RAM}};
	memcpy(bp + 0x2d0, e820, sizeof e820);
	bp[0x1e8] = 3;
	guest_mem_write(&v->mem, GPA_BOOT_PARAMS, bp, sizeof bp);
	if (loader_setup_long_mode_tables(v, err) < 0)
		return -1;
	v->boot = (boot_state){.mode = BOOT_LONG_MODE, .entry = load + 0x200, .rsi = GPA_BOOT_PARAMS,
			       .rsp = 0x8ff0};
	return 0;
}
