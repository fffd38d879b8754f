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

	.set	PML4, 0x70000
	.text
	.code32
	.globl _start
_start:
	outb	%al, $0x80
	cli
	lgdtl	gdtr
	ljmpl	$0x08, $1f
1:	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$0x90000, %esp
	movl	$PML4, %edi
	xorl	%eax, %eax
	movl	$(6 * 1024), %ecx
	cld
	rep stosl
	movl	$(PML4 + 0x1003), PML4
	movl	$(PML4 + 0x2003), %eax
	movl	$(PML4 + 0x1000), %edi
	movl	$4, %ecx
2:	movl	%eax, (%edi)
	addl	$0x1000, %eax
	addl	$8, %edi
	loop	2b
	movl	$(PML4 + 0x2000), %edi
	movl	$0x83, %eax
	movl	$2048, %ecx
3:	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	loop	3b
	movl	$PML4, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax
	movl	%eax, %cr4
	movl	$0xc0000080, %ecx
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000000, %eax
	movl	%eax, %cr0
	ljmpl	$0x18, $lm64

	.code64
lm64:	leaq	msg(%rip), %rsi
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

	.p2align 3
gdt:	.quad	0
	.quad	0x00cf9a000000ffff
	.quad	0x00cf92000000ffff
	.quad	0x00af9a000000ffff
gdt_end:
gdtr:	.word	gdt_end - gdt - 1
	.long	gdt
msg:	.asciz	"silo pvh payload OK\n"
