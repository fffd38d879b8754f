/* PVH payload (ELF64 with a XEN_ELFNOTE_PHYS32_ENTRY note, loaded at 1 MiB):
 * the same program for silo-vmm and for QEMU (-M microvm -kernel), used by
 * bench/vmm_boot.c. Entered in 32-bit flat protected mode; writes POST port 0x80,
 * builds identity page tables, enters long mode, prints a line on COM1, writes
 * the boot-timer magic to MMIO 0xd0000000 and exits through port 0xf4 (silo-vmm
 * debug-exit / QEMU isa-debug-exit) with value 0. */
	.section .note.Xen, "a", @note
	.p2align 2
	.long	4, 4, 18		/* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.long	_start

	.set	PVH, 1
	.include "lmboot.inc"

/* main64: the line goes to COM1 without polling LSR, then the boot timer and exit 0. */
main64:	leaq	msg(%rip), %rsi
	movw	$0x3f8, %dx
4:	lodsb
	testb	%al, %al
	jz	5f
	outb	%al, %dx
	jmp	4b
5:	movq	$0xd0000000, %rbx
	movb	$123, (%rbx)
	xorl	%eax, %eax
	outb	%al, $0xf4
6:	hlt
	jmp	6b

msg:	.asciz	"silo pvh payload OK\n"
