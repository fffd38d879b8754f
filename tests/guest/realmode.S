/* Real-mode payload (flat binary, loaded at 0x10000, entered at 1000:0000 with
 * DS=ES=SS=CS): POST code, a line on the serial port (polling LSR), the boot
 * timer port, then reset through the i8042 (0xFE to port 0x64). */
	.code16
	.text
	.globl _start
_start:
	outb	%al, $0x80
	cld
	movw	$msg, %si
	call	puts
	movw	$0x440, %dx
	movb	$123, %al
	outb	%al, %dx
	movb	$0xfe, %al
	outb	%al, $0x64
1:	hlt
	jmp	1b

puts:	movw	$0x3fd, %dx
2:	inb	%dx, %al
	testb	$0x20, %al
	jz	2b
	lodsb
	testb	%al, %al
	jz	3f
	movw	$0x3f8, %dx
	outb	%al, %dx
	jmp	puts
3:	ret

msg:	.asciz	"silo real-mode payload OK\n"
