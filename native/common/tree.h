/* tree.h: copying a directory tree beneath directory fds, never following a
 * symlink (snapshot_directory): the walk of the source, the making of the copy,
 * and a byte stream between the two for a sandbox the host cannot enter
 * (gVisor: sandbox-init writes it, sandbox-untree reads it in a helper sandbox).
 *
 * The walk opens each entry one name at a time with O_NOFOLLOW relative to its
 * directory's fd, so a tree changed under it cannot redirect it; it copies
 * directories, regular files, symlinks (as symlinks) and FIFOs with their
 * modes, owners and times, never crossing into another mount, and skips what
 * vanished or changed kind meanwhile.
 *
 * The stream is a sequence of records (struct tree_record, then `name_len`
 * bytes of name, then for LINK `size` bytes of target and for DATA `size`
 * bytes of data): the root's entries, each directory's between its DIR and
 * END, a file's data as DATA records ended by an empty one, and last the root's
 * END.  The reader trusts none of it: names are one component, sizes and
 * depth are bounded, and the bounds are counted again.
 *
 * Every program that links tree.c defines tree_fail and tree_bound. */
#if !defined(PSB_TREE_H)
#define PSB_TREE_H

#include <stdbool.h>  /* bool */
#include <stddef.h>   /* size_t */
#include <stdint.h>   /* uint64_t */
#include <sys/stat.h> /* struct stat */

#define TREE_MAX_DEPTH 256 /* directories open at once */
#define TREE_CHUNK 65536   /* the most data one DATA record carries */

/* A failure: exits, reporting `err` and what failed.  A bound: exits 3,
 * reporting "bytes" or "entries". */
_Noreturn void tree_fail(int err, const char *what);
_Noreturn void tree_bound(const char *which);

struct tree_bounds {
  uint64_t max_bytes, max_entries;
  uint64_t bytes, entries; /* counted so far */
};

/* What a walk makes of what it finds: handles are the copy's directory and
 * file fds (a stream's are 0).  leave() and file_end() set the attributes of
 * `st` and close the handle (but the root's, depth 0). */
struct tree_ops {
  int (*enter)(void *ctx, int parent, const char *name);
  void (*leave)(void *ctx, int dir, const struct stat *st, unsigned depth);
  int (*file)(void *ctx, int parent, const char *name);
  void (*data)(void *ctx, int file, const char *buf, size_t n);
  void (*file_end)(void *ctx, int file, const struct stat *st);
  void (*symlink)(void *ctx, int parent, const char *name, const char *target, const struct stat *st);
  void (*fifo)(void *ctx, int parent, const char *name, const struct stat *st);
};

/* The copy beneath directory fds (ctx unused). */
extern const struct tree_ops tree_local;
/* The stream (ctx: a pointer to the int fd it is written to). */
extern const struct tree_ops tree_stream;

/* 0 if the directory `src` may be copied, else the errno to fail with: EOPNOTSUPP
 * for one on the kernel's views (/proc, /sys), whose files describe processes,
 * init's among them, that the copier may read and sandbox code may not. */
int tree_source_refused(int src);

/* Walks the directory `src` into `dst` (a handle of `ops`), its attributes last. */
void tree_walk(int src, int dst, const struct tree_ops *ops, void *ctx, struct tree_bounds *b);

/* Reads a stream from `in` and makes it beneath the directory `dst`. */
void tree_unstream(int in, int dst, struct tree_bounds *b);

/* The records (tree.c's). */
enum { TREE_DIR = 1, TREE_END, TREE_FILE, TREE_DATA, TREE_LINK, TREE_FIFO, TREE_FAIL, TREE_BOUND };

struct tree_record {
  uint32_t kind;
  uint32_t name_len; /* FAIL: the errno's message, BOUND: "bytes" or "entries" */
  uint32_t mode, uid, gid;
  uint32_t atime_ns, mtime_ns;
  uint32_t pad;
  int64_t atime_s, mtime_s;
  uint64_t size; /* LINK: the target's length; DATA: the data's; FAIL: the errno */
};

#endif
