/* Guest-side virtio-blk driver (virtio-mmio v2 at 0xd0001000, split queue of 8):
 * negotiates VERSION_1, sets up queue 0, then
 *   1. reads sector 0 and prints it (a NUL-terminated line the test put there),
 *   2. GET_ID and prints "id=<id>",
 *   3. writes "written by guest\n" to sector 1 and prints "write status=<n>",
 *   4. FLUSH and prints "flush status=<n>",
 * polling the used ring (no interrupts), then exits through port 0xf4 with 0.
 * Any failed check prints "virtio FAIL <step>" and exits with 3. */
	.include "lmboot.inc"

	.set	DEV, 0xd0001000
	.set	DESC, 0x80000
	.set	AVAIL, 0x81000
	.set	USED, 0x82000
	.set	HDR, 0x84000
	.set	DATA, 0x85000
	.set	STATUS, 0x86000

main64:
	movq	$DEV, %rbx
	movb	$'1', %r15b
	cmpl	$0x74726976, 0x000(%rbx)
	jne	fail
	movb	$'2', %r15b
	cmpl	$2, 0x004(%rbx)
	jne	fail
	movb	$'3', %r15b
	cmpl	$2, 0x008(%rbx)
	jne	fail
	/* zero rings and buffers 0x80000..0x87000 */
	movq	$DESC, %rdi
	xorl	%eax, %eax
	movl	$(7 * 4096 / 8), %ecx
	rep stosq
	movl	$0, 0x070(%rbx)		/* reset */
	movl	$1, 0x070(%rbx)		/* ACK */
	movl	$3, 0x070(%rbx)		/* DRIVER */
	movl	$1, 0x024(%rbx)		/* DriverFeaturesSel 1 */
	movl	$1, 0x020(%rbx)		/* VERSION_1 */
	movl	$0, 0x024(%rbx)
	movl	$0, 0x020(%rbx)
	movl	$0xb, 0x070(%rbx)	/* FEATURES_OK */
	movb	$'4', %r15b
	testl	$8, 0x070(%rbx)
	jz	fail
	movl	$0, 0x030(%rbx)		/* QueueSel 0 */
	movb	$'5', %r15b
	cmpl	$8, 0x034(%rbx)
	jb	fail
	movl	$8, 0x038(%rbx)
	movl	$DESC, 0x080(%rbx)
	movl	$0, 0x084(%rbx)
	movl	$AVAIL, 0x090(%rbx)
	movl	$0, 0x094(%rbx)
	movl	$USED, 0x0a0(%rbx)
	movl	$0, 0x0a4(%rbx)
	movl	$1, 0x044(%rbx)		/* QueueReady */
	movb	$'6', %r15b
	cmpl	$1, 0x044(%rbx)
	jne	fail
	movl	$0xf, 0x070(%rbx)	/* DRIVER_OK */
	/* descriptor 0: header (read), 1: data, 2: status (write) */
	movq	$HDR, DESC + 0
	movl	$16, DESC + 8
	movw	$1, DESC + 12
	movw	$1, DESC + 14
	movq	$DATA, DESC + 16
	movq	$STATUS, DESC + 32
	movl	$1, DESC + 40
	movw	$2, DESC + 44

	/* 1: IN sector 0, 512 bytes */
	movl	$0, HDR
	movq	$0, HDR + 8
	movl	$512, DESC + 24
	movw	$3, DESC + 28		/* NEXT | WRITE */
	movw	$2, DESC + 30
	movb	$'7', %r15b
	call	submit
	cmpb	$0, STATUS
	jne	fail
	movq	$DATA, %rsi
	call	puts

	/* 2: GET_ID into 20 bytes */
	movq	$0, DATA
	movq	$0, DATA + 8
	movq	$0, DATA + 16
	movl	$8, HDR
	movl	$20, DESC + 24
	movb	$'8', %r15b
	call	submit
	cmpb	$0, STATUS
	jne	fail
	leaq	id_msg(%rip), %rsi
	call	puts
	movq	$DATA, %rsi
	call	puts
	leaq	nl(%rip), %rsi
	call	puts

	/* 3: OUT sector 1 */
	leaq	wdata(%rip), %rsi
	movq	$DATA, %rdi
	movl	$512, %ecx
	rep movsb
	movl	$1, HDR
	movq	$1, HDR + 8
	movl	$512, DESC + 24
	movw	$1, DESC + 28		/* NEXT, device reads */
	movb	$'9', %r15b
	call	submit
	leaq	wst_msg(%rip), %rsi
	call	puts
	call	print_status

	/* 4: FLUSH (header + status only) */
	movl	$4, HDR
	movq	$0, HDR + 8
	movw	$2, DESC + 14		/* header -> status directly */
	movb	$'F', %r15b
	call	submit
	leaq	fst_msg(%rip), %rsi
	call	puts
	call	print_status

	xorl	%eax, %eax
	outb	%al, $0xf4
1:	hlt
	jmp	1b

/* submit: publish descriptor 0 as the next avail entry, notify, poll used idx. */
submit:	movb	$0xff, STATUS
	movzwl	AVAIL + 2, %eax
	movl	%eax, %ecx
	andl	$7, %ecx
	movw	$0, AVAIL + 4(,%rcx,2)
	incl	%eax
	mfence
	movw	%ax, AVAIL + 2
	mfence
	movl	$0, 0x050(%rbx)		/* QueueNotify 0 */
	movl	$1000000, %ecx
2:	cmpw	%ax, USED + 2
	je	3f
	pause
	loop	2b
	jmp	fail
3:	ret

print_status:
	movzbl	STATUS, %eax
	addb	$'0', %al
	movb	%al, stbuf(%rip)
	leaq	stbuf(%rip), %rsi
	call	puts
	ret

fail:	leaq	fail_msg(%rip), %rsi
	call	puts
	movb	%r15b, stbuf(%rip)
	leaq	stbuf(%rip), %rsi
	call	puts
	movb	$3, %al
	outb	%al, $0xf4
	jmp	1b

fail_msg: .asciz "virtio FAIL "
id_msg:	.asciz	"id="
wst_msg: .asciz	"write status="
fst_msg: .asciz	"flush status="
nl:	.asciz	"\n"
stbuf:	.byte	0, '\n', 0
wdata:	.asciz	"written by guest\n"
	.fill	512, 1, 0
