/* SPDX-License-Identifier: Apache-2.0
 * Guest RAM: one memfd mapped MAP_SHARED|MAP_NORESERVE, sized but never touched here
 * (pages are allocated on the guest's first write; no prefault, no hugepages), or on
 * restore a snapshot memory file mapped MAP_PRIVATE; and the only ways the VMM touches
 * it: bounds-checked pointer and copies.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm.h"

int guest_mem_create(guest_mem *m, uint64_t size, silo_error *err)
{
	m->memfd = -1;
	m->host = NULL;
	m->size = 0;
	if (size < (1ULL << 20) || size > GPA_MMIO_GAP_START || (size & 0xfff))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "mem: size %llu bytes must be a multiple of 4 KiB between 1 MiB and %llu MiB",
				 (unsigned long long)size, (unsigned long long)(GPA_MMIO_GAP_START >> 20));
	int fd = memfd_create("silo-vmm-ram", MFD_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "memfd_create guest RAM");
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "ftruncate guest RAM to %llu bytes",
				 (unsigned long long)size);
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "mmap guest RAM");
	}
	madvise(p, size, MADV_DONTDUMP);
	m->memfd = fd;
	m->host = p;
	m->size = size;
	return 0;
}

int guest_mem_map_file(guest_mem *m, int fd, const char *name, uint64_t size, silo_error *err)
{
	m->memfd = -1;
	m->host = NULL;
	m->size = 0;
	if (size < (1ULL << 20) || size > GPA_MMIO_GAP_START || (size & 0xfff))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "mem: snapshot size %llu bytes is not valid",
				 (unsigned long long)size);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < size)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "memory file %s: shorter than the %llu bytes of RAM",
				 name, (unsigned long long)size);
	/* Private: the guest's writes go to its own copy-on-write pages; every VM restored from
	 * the same file shares the pages nobody wrote. Nothing is read or faulted here: pages
	 * come in on the guest's first touch. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "mmap memory file %s", name);
	madvise(p, size, MADV_DONTDUMP);
	m->host = p;
	m->size = size;
	return 0;
}

void guest_mem_destroy(guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	m->host = NULL;
	m->memfd = -1;
	m->size = 0;
}

void *guest_mem_ptr(const guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (!m->host || gpa > m->size || len > m->size - gpa)
		return NULL;
	return m->host + gpa;
}

int guest_mem_write(const guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -1;
	if (len)
		memcpy(p, src, len);
	return 0;
}

int guest_mem_read(const guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -1;
	if (len)
		memcpy(dst, p, len);
	return 0;
}
