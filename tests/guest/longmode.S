/* Long-mode payload (flat binary, loaded at 0x10000, entered in real mode at
 * 1000:0000). Through lmboot.inc it switches to protected mode, builds identity
 * page tables for 4 GiB with 2 MiB pages at 0x70000 and enters 64-bit mode, then:
 * prints to the serial port, reads an unclaimed MMIO address (must read all ones),
 * writes the boot-timer magic to MMIO 0xd0000000, and exits through the debug-exit
 * port 0xf4 with value 0. The first instruction writes POST code port 0x80. */
	.include "lmboot.inc"

main64:
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

msg:	.asciz	"silo long-mode payload OK\n"
mmio_ok: .asciz	"mmio read all-ones OK\n"
mmio_bad: .asciz "mmio read BAD\n"
done:	.asciz	"boot timer written, exiting\n"
