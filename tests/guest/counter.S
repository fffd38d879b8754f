/* ELF64 payload for snapshot tests: a counter kept in guest RAM (at 3 MiB) is
 * incremented and printed as 8 hex digits and a newline on the serial port, with a
 * short delay loop between lines. Output that continues consecutively across a
 * snapshot/restore shows that RAM, registers and the serial device came back.
 * Exits through port 0xf4 with 7 after 2^20 lines. */
	.code64
	.text
	.globl _start
_start:	outb	%al, $0x80
.ifdef FILL
	/* fillcounter.S: first dirty FILL MiB of RAM from 4 MiB up (a guest that has done work). */
	movq	$0x400000, %rdi
	movq	$(FILL << 17), %rcx
	movabsq	$0x5a5a5a5a5a5a5a5a, %rax
	rep stosq
.endif
	movq	$0x300000, %rdi
	movq	$0, (%rdi)
1:	incq	(%rdi)
	movq	(%rdi), %rbx
	movl	$8, %ecx
	movw	$0x3f8, %dx
2:	roll	$4, %ebx
	movl	%ebx, %eax
	andl	$0xf, %eax
	leaq	digits(%rip), %rsi
	movb	(%rsi,%rax), %al
	outb	%al, %dx
	decl	%ecx
	jnz	2b
	movb	$'\n', %al
	outb	%al, %dx
.ifndef NODELAY
	movl	$20000, %ecx
3:	decl	%ecx
	jnz	3b
.endif
	cmpq	$0x100000, (%rdi)
	jb	1b
	movb	$7, %al
	outb	%al, $0xf4
4:	hlt
	jmp	4b
digits:	.ascii	"0123456789abcdef"
