/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm pieces that need no /dev/kvm: guest memory bounds, the I/O bus,
 * and the payload loaders' validation of hostile images.
 */
#include <elf.h>

#include "harness.h"
#include "vmm.h"

TEST(guest_mem_bounds)
{
	guest_mem m;
	silo_error err = {0};
	REQUIRE(guest_mem_create(&m, 2 << 20, &err) == 0);
	CHECK(guest_mem_ptr(&m, 0, 2 << 20) != NULL);
	CHECK(guest_mem_ptr(&m, (2 << 20) - 1, 1) != NULL);
	CHECK(guest_mem_ptr(&m, (2 << 20) - 1, 2) == NULL);
	CHECK(guest_mem_ptr(&m, 2 << 20, 0) != NULL); /* empty range at the end */
	CHECK(guest_mem_ptr(&m, (2 << 20) + 1, 0) == NULL);
	CHECK(guest_mem_ptr(&m, UINT64_MAX, 2) == NULL);
	CHECK(guest_mem_ptr(&m, 16, UINT64_MAX - 8) == NULL); /* would wrap */
	uint8_t b[4] = {1, 2, 3, 4}, o[4] = {0};
	CHECK(guest_mem_write(&m, 0x1000, b, 4) == 0);
	CHECK(guest_mem_read(&m, 0x1000, o, 4) == 0);
	CHECK(memcmp(b, o, 4) == 0);
	CHECK(guest_mem_write(&m, (2 << 20) - 2, b, 4) == -1);
	guest_mem_destroy(&m);
	CHECK(guest_mem_create(&m, 4095 + (1 << 20), &err) == -1);
	CHECK_CONTAINS(err.message, "mem:");
	CHECK(guest_mem_create(&m, 1 << 12, &err) == -1);
}

static int dev_writes;
static uint64_t dev_last_off;
static void dev_write(void *o, uint64_t off, const uint8_t *d, uint32_t len)
{
	dev_writes++;
	dev_last_off = off;
}
static void dev_read(void *o, uint64_t off, uint8_t *d, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(0x10 + off + i);
}
static const bus_device_ops dev_ops = {.name = "dev", .read = dev_read, .write = dev_write};
static const bus_device_ops dev2_ops = {.name = "dev2", .read = dev_read};

TEST(bus_dispatch_and_overlap)
{
	bus b;
	silo_error err = {0};
	bus_init(&b);
	REQUIRE(bus_register(&b, BUS_PIO, 0x3f8, 8, &dev_ops, NULL, &err) == 0);
	CHECK(bus_register(&b, BUS_PIO, 0x3ff, 2, &dev2_ops, NULL, &err) == -1);
	CHECK_CONTAINS(err.message, "overlaps dev");
	CHECK(bus_register(&b, BUS_PIO, 0xfff0, 0x20, &dev2_ops, NULL, &err) == -1);
	/* same numbers in the MMIO space do not collide with ports */
	CHECK(bus_register(&b, BUS_MMIO, 0x3f8, 8, &dev2_ops, NULL, &err) == 0);
	uint8_t d[8] = {0};
	CHECK(bus_access(&b, BUS_PIO, 0x3f9, d, 1, true));
	CHECK_INT_EQ(dev_writes, 1);
	CHECK_INT_EQ(dev_last_off, 1);
	CHECK(bus_access(&b, BUS_PIO, 0x3fa, d, 2, false));
	CHECK_INT_EQ(d[0], 0x12);
	CHECK_INT_EQ(d[1], 0x13);
	/* straddling the end: the device sees only what fits; the rest reads as ones */
	memset(d, 0, sizeof d);
	CHECK(bus_access(&b, BUS_PIO, 0x3ff, d, 4, false));
	CHECK_INT_EQ(d[0], 0x17);
	CHECK_INT_EQ(d[1], 0xff);
	/* unclaimed: reads all ones, counted */
	CHECK(!bus_access(&b, BUS_MMIO, 0x1000, d, 4, false));
	CHECK_INT_EQ(d[0], 0xff);
	CHECK_INT_EQ(b.unhandled, 1);
	CHECK(!bus_access(&b, BUS_PIO, 0x3f8, d, 9, false)); /* bad length */
	bus_destroy(&b);
}

static vm *mem_only_vm(void)
{
	static vm v;
	memset(&v, 0, sizeof v);
	silo_error err = {0};
	REQUIRE(guest_mem_create(&v.mem, 8 << 20, &err) == 0);
	return &v;
}

static size_t make_elf(uint8_t *buf, uint64_t paddr, uint64_t filesz, uint64_t memsz, uint64_t entry,
		       uint64_t off)
{
	memset(buf, 0, 4096);
	Elf64_Ehdr eh = {.e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
			 .e_entry = entry, .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
			 .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 1};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	Elf64_Phdr ph = {.p_type = PT_LOAD, .p_offset = off, .p_paddr = paddr, .p_vaddr = paddr,
			 .p_filesz = filesz, .p_memsz = memsz};
	memcpy(buf, &eh, sizeof eh);
	memcpy(buf + sizeof eh, &ph, sizeof ph);
	buf[0x200] = 0xf4; /* hlt */
	return 4096;
}

TEST(elf_loader_validates_everything)
{
	vm *v = mem_only_vm();
	silo_error err = {0};
	uint8_t img[4096];
	size_t n = make_elf(img, 0x200000, 0x10, 0x2000, 0x200000, 0x200);
	REQUIRE(loader_load_elf64(v, img, n, &err) == 0);
	CHECK_INT_EQ(v->boot.mode, BOOT_LONG_MODE);
	CHECK_INT_EQ(v->boot.entry, 0x200000);
	CHECK_INT_EQ(*(uint8_t *)guest_mem_ptr(&v->mem, 0x200000, 1), 0xf4);
	/* segment beyond RAM */
	n = make_elf(img, 0x7ff000, 0x10, 0x2000, 0x7ff000, 0x200);
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	CHECK_CONTAINS(err.message, "not within guest RAM");
	/* segment over our low-memory tables */
	n = make_elf(img, 0x9000, 0x10, 0x10, 0x9000, 0x200);
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	/* file range past the end of the image */
	n = make_elf(img, 0x200000, 0x1000, 0x1000, 0x200000, 0x200);
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	CHECK_CONTAINS(err.message, "file range out of bounds");
	/* filesz > memsz */
	n = make_elf(img, 0x200000, 0x20, 0x10, 0x200000, 0x200);
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	/* entry outside any segment */
	n = make_elf(img, 0x200000, 0x10, 0x10, 0x300000, 0x200);
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	CHECK_CONTAINS(err.message, "entry");
	/* program headers out of bounds, wrong class, truncated */
	n = make_elf(img, 0x200000, 0x10, 0x10, 0x200000, 0x200);
	((Elf64_Ehdr *)img)->e_phoff = 4090;
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	CHECK_CONTAINS(err.message, "program headers");
	n = make_elf(img, 0x200000, 0x10, 0x10, 0x200000, 0x200);
	img[EI_CLASS] = ELFCLASS32;
	CHECK(loader_load_elf64(v, img, n, &err) == -1);
	CHECK(loader_load_elf64(v, img, 10, &err) == -1);
	guest_mem_destroy(&v->mem);
}

TEST(flat_loader_bounds)
{
	vm *v = mem_only_vm();
	silo_error err = {0};
	static uint8_t big[0x90000];
	CHECK(loader_load_flat(v, big, 0, &err) == -1);
	CHECK(loader_load_flat(v, big, sizeof big, &err) == -1);
	CHECK_CONTAINS(err.message, "payload:");
	CHECK(loader_load_flat(v, big, 0x8f000, &err) == 0);
	CHECK_INT_EQ(v->boot.entry_cs, 0x1000);
	guest_mem_destroy(&v->mem);
}

TEST(bzimage_header_validation)
{
	vm *v = mem_only_vm();
	silo_error err = {0};
	static uint8_t img[0x4000];
	memset(img, 0, sizeof img);
	img[0x1fe] = 0x55;
	img[0x1ff] = 0xaa;
	memcpy(img + 0x202, "HdrS", 4);
	img[0x201] = 0x66;
	CHECK(linux_is_bzimage(img, sizeof img));
	CHECK(!linux_is_bzimage(img, 0x200));
	img[0x206] = 0x0b, img[0x207] = 0x02; /* 2.11 */
	CHECK(linux_load_bzimage(v, img, sizeof img, NULL, 0, "x", &err) == -1);
	CHECK_CONTAINS(err.message, "too old");
	img[0x206] = 0x0f; /* 2.15 */
	CHECK(linux_load_bzimage(v, img, sizeof img, NULL, 0, "x", &err) == -1);
	CHECK_CONTAINS(err.message, "XLF_KERNEL_64");
	img[0x236] = 1;
	img[0x1f1] = 0x7f; /* setup beyond the file */
	CHECK(linux_load_bzimage(v, img, sizeof img, NULL, 0, "x", &err) == -1);
	CHECK_CONTAINS(err.message, "setup_sects");
	img[0x1f1] = 4;
	img[0x238] = 16; /* cmdline_size 16 */
	CHECK(linux_load_bzimage(v, img, sizeof img, NULL, 0, "a command line that is too long", &err) == -1);
	CHECK_CONTAINS(err.message, "cmdline");
	static uint8_t initrd[16 << 20];
	img[0x22c] = 0xff, img[0x22d] = 0xff, img[0x22e] = 0xff, img[0x22f] = 0x7f;
	CHECK(linux_load_bzimage(v, img, sizeof img, initrd, sizeof initrd, "ok", &err) == -1);
	CHECK_CONTAINS(err.message, "initrd");
	CHECK(linux_load_bzimage(v, img, sizeof img, initrd, 4096, "console=ttyS0", &err) == 0);
	CHECK_INT_EQ(v->boot.mode, BOOT_LONG_MODE);
	CHECK_INT_EQ(v->boot.entry, 0x100200);
	uint8_t *bp = guest_mem_ptr(&v->mem, 0x7000, 4096);
	CHECK_INT_EQ(bp[0x1e8], 3);   /* e820 entries */
	CHECK_INT_EQ(bp[0x210], 0xff); /* type_of_loader */
	uint32_t rd;
	memcpy(&rd, bp + 0x218, 4);
	CHECK_INT_EQ(rd, (8 << 20) - 4096);
	CHECK_STR_EQ((char *)guest_mem_ptr(&v->mem, 0x20000, 1), "console=ttyS0");
	guest_mem_destroy(&v->mem);
}

TEST(pvh_note_parsing)
{
	uint8_t img[4096];
	make_elf(img, 0x200000, 0x10, 0x10, 0x200000, 0x200);
	uint32_t entry = 0;
	CHECK(!linux_elf_pvh_entry(img, sizeof img, &entry));
	/* add a PT_NOTE with a Xen PHYS32_ENTRY note */
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	eh->e_phnum = 2;
	Elf64_Phdr ph = {.p_type = PT_NOTE, .p_offset = 0x300, .p_filesz = 12 + 4 + 4};
	memcpy(img + sizeof *eh + sizeof ph, &ph, sizeof ph);
	Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = 4, .n_type = 18};
	memcpy(img + 0x300, &nh, sizeof nh);
	memcpy(img + 0x30c, "Xen", 4);
	uint32_t e = 0x1000abc;
	memcpy(img + 0x310, &e, 4);
	CHECK(linux_elf_pvh_entry(img, sizeof img, &entry));
	CHECK_INT_EQ(entry, 0x1000abc);
	/* a note whose descriptor runs past the segment is ignored */
	((Elf64_Nhdr *)(img + 0x300))->n_descsz = 400;
	CHECK(!linux_elf_pvh_entry(img, sizeof img, &entry));
}

TEST_MAIN(guest_mem_bounds, bus_dispatch_and_overlap, elf_loader_validates_everything, flat_loader_bounds,
	  bzimage_header_validation, pvh_note_parsing)
