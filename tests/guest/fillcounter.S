/* counter.S after dirtying 32 MiB of RAM: for the snapshot/fork memory benchmark
 * (bench/vmm_snapshot.c), where forks share those pages and cold VMs each own them. */
	.set	FILL, 32
	.include "counter.S"
