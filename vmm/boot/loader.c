/* SPDX-License-Identifier: Apache-2.0
 * Payload loaders: raw flat binaries (entered in real mode) and plain ELF64
 * executables (unikernel-style direct boot in long mode), plus the GDT and
 * identity page tables every protected/long-mode entry uses.
 * Every load address and size comes from the image: all of it is checked.
 */
#include <elf.h>
#include <string.h>

#include "vmm.h"

int loader_setup_long_mode_tables(vm *v, silo_error *err)
{
	/* GDT: null, 0x08 code64, 0x10 data, 0x18 TSS (unused, keeps VT-x happy), 0x20 code32. */
	static const uint64_t gdt[5] = {0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
					0x008f8b000000ffffULL, 0x00cf9b000000ffffULL};
	if (guest_mem_write(&v->mem, GPA_GDT, gdt, sizeof gdt) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "boot: GDT outside guest RAM");
	uint64_t pml4[512] = {0}, pdpt[512] = {0}, pd[4][512];
	pml4[0] = GPA_PDPT | 0x3;
	for (int i = 0; i < 4; i++) {
		pdpt[i] = (GPA_PD + (uint64_t)i * 0x1000) | 0x3;
		for (int j = 0; j < 512; j++)
			pd[i][j] = (((uint64_t)i << 30) + ((uint64_t)j << 21)) | 0x83; /* P|RW|PS */
	}
	if (guest_mem_write(&v->mem, GPA_PML4, pml4, sizeof pml4) < 0 ||
	    guest_mem_write(&v->mem, GPA_PDPT, pdpt, sizeof pdpt) < 0 ||
	    guest_mem_write(&v->mem, GPA_PD, pd, sizeof pd) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "boot: page tables outside guest RAM");
	return 0;
}

int loader_load_flat(vm *v, const uint8_t *img, size_t len, silo_error *err)
{
	/* Real mode reaches 1 MiB; the payload must fit below 0x9f000 with its stack. */
	if (len == 0 || len > 0x9f000 - GPA_FLAT_LOAD)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "payload: flat binary of %zu bytes must be 1..%llu bytes", len,
				 (unsigned long long)(0x9f000 - GPA_FLAT_LOAD));
	if (guest_mem_write(&v->mem, GPA_FLAT_LOAD, img, len) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "payload: does not fit in guest RAM");
	v->boot = (boot_state){.mode = BOOT_REAL_MODE, .entry_cs = GPA_FLAT_LOAD >> 4, .entry = 0,
			       .rsp = 0xfff0};
	return 0;
}

int loader_load_segments(vm *v, const uint8_t *img, size_t len, uint64_t *end, bool *entry_in, silo_error *err)
{
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	int loaded = 0;
	*end = 0x100000;
	*entry_in = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "kernel: ELF segment %u: file range out of bounds", i);
		uint64_t pa = ph.p_paddr;
		/* Low memory holds our GDT, page tables and boot data: segments go at or above 1 MiB. */
		if (pa < 0x100000 || !guest_mem_ptr(&v->mem, pa, ph.p_memsz))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "kernel: ELF segment %u [0x%llx+0x%llx] is not within guest RAM above 1 MiB "
					 "(more --mem?)",
					 i, (unsigned long long)pa, (unsigned long long)ph.p_memsz);
		guest_mem_write(&v->mem, pa, img + ph.p_offset, ph.p_filesz);
		memset(guest_mem_ptr(&v->mem, pa + ph.p_filesz, ph.p_memsz - ph.p_filesz), 0,
		       ph.p_memsz - ph.p_filesz);
		if (eh.e_entry >= pa && eh.e_entry - pa < ph.p_memsz)
			*entry_in = true;
		if (pa + ph.p_memsz > *end)
			*end = pa + ph.p_memsz;
		loaded++;
	}
	return loaded;
}

int loader_load_elf64(vm *v, const uint8_t *img, size_t len, silo_error *err)
{
	if (len < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: not an ELF file");
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF is not x86-64 little-endian ELF64");
	if (eh.e_type != ET_EXEC)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF e_type %u is not ET_EXEC", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64 ||
	    eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF program headers out of bounds");
	bool entry_ok = false;
	uint64_t end;
	int loaded = loader_load_segments(v, img, len, &end, &entry_ok, err);
	if (loaded < 0)
		return -1;
	if (!loaded)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF has no PT_LOAD segment");
	if (!entry_ok)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "kernel: ELF entry 0x%llx is not in a loaded segment",
				 (unsigned long long)eh.e_entry);
	if (loader_setup_long_mode_tables(v, err) < 0)
		return -1;
	v->boot = (boot_state){.mode = BOOT_LONG_MODE, .entry = eh.e_entry, .rsp = 0x8ff0};
	return 0;
}
