/* Smallest payload: one serial byte, then cli; hlt. Without an in-kernel irqchip
 * the HLT exits to the VMM; with one it waits forever (the VMM's timeout ends it). */
	.code16
	.text
	.globl _start
_start:
	movw	$0x3f8, %dx
	movb	$'H', %al
	outb	%al, %dx
	movb	$'\n', %al
	outb	%al, %dx
	cli
	hlt
	jmp	_start
