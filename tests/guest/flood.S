/* ELF64 payload that floods the serial port: 128 lines of 4 KiB (512 KiB) with
 * `rep outsb` (one I/O exit carries many bytes), then "FLOOD-END\n", then exit
 * status 0 through port 0xf4. A guest that never stops writing its console is
 * what the serial log cap (vmm/logcap.h) must survive. */
	.code64
	.text
	.globl _start
_start:	outb	%al, $0x80
	movq	$128, %rbx
	movw	$0x3f8, %dx
1:	leaq	line(%rip), %rsi
	movq	$4096, %rcx
	rep outsb
	decq	%rbx
	jnz	1b
	leaq	end(%rip), %rsi
	movq	$10, %rcx
	rep outsb
	xorb	%al, %al
	outb	%al, $0xf4
2:	hlt
	jmp	2b
line:	.fill	4095, 1, 'f'
	.byte	'\n'
end:	.ascii	"FLOOD-END\n"
