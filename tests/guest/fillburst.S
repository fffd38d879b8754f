/* fillcounter.S without the delay between lines: the counter prints as fast as the port
 * exits allow, so a restored copy's first serial byte comes right after its first
 * instructions. bench/vmm_snapshot.c times restore -> ready with it (docs/vmm.md). */
	.set	FILL, 32
	.set	NODELAY, 1
	.include "counter.S"
