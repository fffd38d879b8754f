/* Unikernel-style ELF64 payload: silo-vmm loads its PT_LOAD segment at 2 MiB and
 * enters it directly in 64-bit mode (identity-mapped 4 GiB, flat segments).
 * Prints a line, writes the boot-timer magic, exits through port 0xf4 with 42. */
	.code64
	.text
	.globl _start
_start:	outb	%al, $0x80
	leaq	msg(%rip), %rsi
	movw	$0x3f8, %dx
1:	lodsb
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	jmp	1b
2:	movq	$0xd0000000, %rbx
	movb	$123, (%rbx)
	movb	$42, %al
	outb	%al, $0xf4
3:	hlt
	jmp	3b
msg:	.asciz	"silo elf64 payload OK\n"
