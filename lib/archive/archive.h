/* SPDX-License-Identifier: Apache-2.0
 * Tar streams of directory trees, both ways: `silo cp -r`, the archive API
 * (GET/PUT /v1/sandboxes/{id}/archive) and the agent's tar_out / tar_in
 * (docs/protocol.md). The same code runs on the host (the CLI) and in the
 * guest (built into the static silo-agent: libc only, plus the bounded reader
 * of lib/oci/tar.c), so both ends apply one set of rules.
 *
 * Writing (archive_write): POSIX ustar, with pax records for names over
 * 100/155 bytes, link targets over 100 bytes, sizes of 8 GiB and more, ids
 * over 2097151 and times out of the octal range. Entries are regular files,
 * directories and symlinks; the top entry is named o->name and everything
 * below it "name/rel/path" (directories end in '/'). Names in a directory are
 * written sorted, so the same tree gives the same stream. Nothing is followed:
 * not a symlink (the top one included: it is archived as a symlink), not a
 * mount point (a directory on another file system is written empty, with a
 * warning, as `tar --one-file-system` does; /proc would never end). Sockets,
 * FIFOs and devices are skipped with a warning. Hard links are written as
 * separate copies. A file that shrinks while it is read is padded with zeros,
 * one that grows is cut at the size first seen (the header was written), each
 * with a warning. Depth is bounded by ARCHIVE_MAX_DEPTH.
 *
 * Extracting (archive_extract), below a directory fd the caller opened:
 *   - names are normalized ("./a//b/" -> "a/b"); absolute names, "..",
 *     components over 255 bytes and paths deeper than ARCHIVE_MAX_DEPTH are
 *     refused, naming the entry;
 *   - every parent directory is opened one component at a time with
 *     O_NOFOLLOW | O_DIRECTORY from the root fd (missing ones are created
 *     0755): an entry is never written through a symlink, whether the archive
 *     made it or it was there before, and never outside the root;
 *   - an existing leaf is replaced, never written through: a file or symlink
 *     is unlinked first, then the new file is created with O_EXCL | O_NOFOLLOW;
 *     a directory entry over an existing directory merges into it; a file over
 *     a directory is refused;
 *   - symlink targets are stored as they are (never resolved here);
 *   - hard links must name a regular file this extraction created;
 *   - devices and FIFOs are refused;
 *   - permission bits are applied (& 07777, setuid/setgid dropped unless
 *     keep_setid), owners only with owners (an owner the system cannot take,
 *     EINVAL or EPERM, is left as the extractor's), mtimes always; a directory's mode
 *     and time are set after its contents (a read-only directory still fills);
 *   - with single_root, every entry must lie under the first entry's top
 *     component (what archive_write and GET .../archive produce), and with
 *     rename_root that component is renamed ("" puts its contents straight
 *     into the root fd);
 *   - entries and file bytes are counted against max_entries / max_bytes.
 * An error stops the extraction; what was extracted so far stays.
 */
#ifndef SILO_ARCHIVE_H
#define SILO_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "oci/tar.h"

#define ARCHIVE_MAX_DEPTH 256
#define ARCHIVE_MAX_ENTRIES (1u << 20)     /* default max_entries */
#define ARCHIVE_DIR_MAX (1u << 20)          /* names in one directory (writer) */

typedef struct archive_stats {
	uint64_t entries, files, dirs, symlinks, hardlinks, skipped;
	uint64_t bytes;                    /* regular file data */
} archive_stats;

/* Write n bytes of the stream: 0, or -1 with err. */
typedef int (*archive_out_fn)(void *ud, const void *buf, size_t n, silo_error *err);
/* A warning about the tree (an entry skipped, a file that changed size). */
typedef void (*archive_warn_fn)(void *ud, const char *msg);

typedef struct archive_wopts {
	const char *name;                  /* archive name of the top entry; NULL: the basename of path */
	bool zero_owner;                   /* record uid/gid 0 (a host tree going into a sandbox) */
	archive_warn_fn warn;              /* NULL: warnings are dropped (still counted in skipped) */
	void *warn_ud;
} archive_wopts;

/* Archive path (relative to dirfd, or absolute) and everything below it. */
int archive_write(int dirfd, const char *path, const archive_wopts *o, archive_out_fn out, void *ud,
		  archive_stats *st, silo_error *err);

typedef struct archive_xopts {
	bool single_root;                  /* every entry under the first entry's top component */
	const char *rename_root;           /* with single_root: its new name ("" = the root fd itself) */
	bool owners;                       /* apply recorded uid/gid (the agent, as root in the guest) */
	bool keep_setid;                   /* keep setuid/setgid bits */
	uint64_t max_entries;              /* 0 = ARCHIVE_MAX_ENTRIES */
	uint64_t max_bytes;                /* file data; 0 = no limit */
} archive_xopts;

/* Extract the archive r reads below rootfd (which stays open). Errors:
 * INVALID_CONFIG naming the entry (a refused name or type, a malformed
 * archive), RESOURCE_EXCEEDED (max_entries, max_bytes), IO_ERROR with errno. */
int archive_extract(tar_reader *r, int rootfd, const archive_xopts *o, archive_stats *st, silo_error *err);

/* Normalize an archive name into out ("" for the root): 0, or -1 with the
 * reason in *why, a predicate ("has a \"..\" component (path traversal
 * refused)", "is an absolute path (refused)", ...). */
int archive_norm_name(const char *in, char *out, size_t outlen, const char **why);

#endif
