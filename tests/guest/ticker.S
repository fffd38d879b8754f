/* ELF64 payload for pause/resume tests: prints a '.' on the serial port every few
 * thousand iterations, forever (or until 200000 ticks, then exits through port 0xf4
 * with 7 so a stuck test cannot run away). */
	.code64
	.text
	.globl _start
_start:	outb	%al, $0x80
	movq	$200000, %rbx
1:	movb	$'.', %al
	movw	$0x3f8, %dx
	outb	%al, %dx
	movl	$20000, %ecx
2:	decl	%ecx
	jnz	2b
	decq	%rbx
	jnz	1b
	movb	$7, %al
	outb	%al, $0xf4
3:	hlt
	jmp	3b
