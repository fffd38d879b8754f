/* Long-mode payload (flat binary, loaded at 0x10000, entered in real mode at
 * 1000:0000). It switches to protected mode, builds identity page tables for
 * 4 GiB with 2 MiB pages at 0x70000, enters 64-bit mode, then: prints to the
 * serial port, reads an unclaimed MMIO address (must read all ones), writes the
 * boot-timer magic to MMIO 0xd0000000, and exits through the debug-exit port
 * 0xf4 with value 0. The first instruction writes POST code port 0x80. */
	.set	BASE, 0x10000
	.set	PML4, 0x70000
	.code16
	.text
	.globl _start
_start:
	outb	%al, $0x80
	cli
	lgdtl	gdtr
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x08, $(BASE + pm32)

	.code32
pm32:	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$0x90000, %esp
	/* zero PML4, PDPT and 4 PDs (6 pages) */
	movl	$PML4, %edi
	xorl	%eax, %eax
	movl	$(6 * 1024), %ecx
	cld
	rep stosl
	movl	$(PML4 + 0x1003), PML4
	movl	$(PML4 + 0x2003), %eax
	movl	$(PML4 + 0x1000), %edi
	movl	$4, %ecx
1:	movl	%eax, (%edi)
	addl	$0x1000, %eax
	addl	$8, %edi
	loop	1b
	/* 2048 PD entries: (i << 21) | P | RW | PS */
	movl	$(PML4 + 0x2000), %edi
	movl	$0x83, %eax
	movl	$2048, %ecx
2:	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	loop	2b
	movl	$PML4, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$0xc0000080, %ecx	/* EFER.LME */
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000000, %eax	/* PG */
	movl	%eax, %cr0
	ljmpl	$0x18, $(BASE + lm64)

	.code64
lm64:	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movq	$0x90000, %rsp
	leaq	msg(%rip), %rsi
	call	puts
	/* an MMIO read nobody claims returns all ones */
	movq	$0xe0000000, %rbx
	movl	(%rbx), %eax
	cmpl	$0xffffffff, %eax
	jne	bad
	leaq	mmio_ok(%rip), %rsi
	call	puts
	/* boot timer */
	movq	$0xd0000000, %rbx
	movb	$123, (%rbx)
	leaq	done(%rip), %rsi
	call	puts
	xorl	%eax, %eax
	outb	%al, $0xf4
3:	hlt
	jmp	3b
bad:	leaq	mmio_bad(%rip), %rsi
	call	puts
	movb	$3, %al
	outb	%al, $0xf4
	jmp	3b

puts:	movw	$0x3fd, %dx
4:	inb	%dx, %al
	testb	$0x20, %al
	jz	4b
	lodsb
	testb	%al, %al
	jz	5f
	movw	$0x3f8, %dx
	outb	%al, %dx
	jmp	puts
5:	ret

	.p2align 3
gdt:	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x08 code32 */
	.quad	0x00cf92000000ffff	/* 0x10 data */
	.quad	0x00af9a000000ffff	/* 0x18 code64 */
gdt_end:
gdtr:	.word	gdt_end - gdt - 1
	.long	BASE + gdt

msg:	.asciz	"silo long-mode payload OK\n"
mmio_ok: .asciz	"mmio read all-ones OK\n"
mmio_bad: .asciz "mmio read BAD\n"
done:	.asciz	"boot timer written, exiting\n"
