/* tree.c: the walk, the copy and the stream of a directory tree (tree.h). */
#define _GNU_SOURCE 1
#include "tree.h"

#include <dirent.h>   /* fdopendir, readdir */
#include <errno.h>    /* errno */
#include <fcntl.h>    /* openat, O_* */
#include <limits.h>   /* PATH_MAX, NAME_MAX */
#include <string.h>   /* strcmp, strlen, memcpy, memchr */
#include <sys/stat.h> /* statx, mkdirat, fchmod, mkfifoat */
#include <sys/vfs.h>  /* fstatfs */
#include <unistd.h>   /* read, fchown, symlinkat, readlinkat */

#include "fdutil.h"

/* Ownership, mode and times of `name` in `dir` (or of `fd` itself when name
 * is NULL), as the source had them; an owner this namespace cannot map (a
 * single-uid sandbox) stays the copier's. */
static void keep_attributes(int fd, int dir, const char *name, const struct stat *st)
{
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  if (name == NULL) {
    if (fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EINVAL && errno != EPERM)
      tree_fail(errno, "chown");
    if (fchmod(fd, st->st_mode & 07777) < 0)
      tree_fail(errno, "chmod");
    futimens(fd, times);
    return;
  }
  if (fchownat(dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL && errno != EPERM)
    tree_fail(errno, "chown");
  if (!S_ISLNK(st->st_mode) && fchmodat(dir, name, st->st_mode & 07777, 0) < 0)
    tree_fail(errno, "chmod");
  utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW);
}

static int local_enter(void *ctx, int parent, const char *name)
{
  (void)ctx;
  if (mkdirat(parent, name, 0700) < 0)
    tree_fail(errno, name);
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    tree_fail(errno, name);
  return fd;
}

static void local_leave(void *ctx, int dir, const struct stat *st, unsigned depth)
{
  (void)ctx;
  keep_attributes(dir, -1, NULL, st);
  if (depth > 0)
    close(dir);
}

static int local_file(void *ctx, int parent, const char *name)
{
  (void)ctx;
  int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    tree_fail(errno, name);
  return fd;
}

static void local_data(void *ctx, int file, const char *buf, size_t n)
{
  (void)ctx;
  if (write_all(file, buf, n) < 0)
    tree_fail(errno, "writing a file");
}

static void local_file_end(void *ctx, int file, const struct stat *st)
{
  local_leave(ctx, file, st, 1);
}

static void local_symlink(void *ctx, int parent, const char *name, const char *target, const struct stat *st)
{
  (void)ctx;
  if (symlinkat(target, parent, name) < 0)
    tree_fail(errno, name);
  keep_attributes(-1, parent, name, st);
}

static void local_fifo(void *ctx, int parent, const char *name, const struct stat *st)
{
  (void)ctx;
  if (mkfifoat(parent, name, 0600) < 0)
    tree_fail(errno, name);
  keep_attributes(-1, parent, name, st);
}

const struct tree_ops tree_local = {local_enter,    local_leave,   local_file, local_data,
                                    local_file_end, local_symlink, local_fifo};

/* The stream's side: each call one record. */
static void put(void *ctx, uint32_t kind, const char *name, const struct stat *st, uint64_t size)
{
  struct {
    struct tree_record r;
    char name[NAME_MAX + 1];
  } out = {.r = {.kind = kind, .size = size}};
  size_t len = name != NULL ? strlen(name) : 0;
  if (len > NAME_MAX)
    tree_fail(ENAMETOOLONG, name);
  memcpy(out.name, name != NULL ? name : "", len);
  out.r.name_len = (uint32_t)len;
  if (st != NULL) {
    out.r.mode = st->st_mode, out.r.uid = st->st_uid, out.r.gid = st->st_gid;
    out.r.atime_s = st->st_atim.tv_sec, out.r.atime_ns = (uint32_t)st->st_atim.tv_nsec;
    out.r.mtime_s = st->st_mtim.tv_sec, out.r.mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
  }
  if (write_all(*(int *)ctx, &out, sizeof out.r + len) < 0)
    tree_fail(errno, "writing the stream");
}

static void put_bytes(void *ctx, const void *buf, size_t n)
{
  if (write_all(*(int *)ctx, buf, n) < 0)
    tree_fail(errno, "writing the stream");
}

static int stream_enter(void *ctx, int parent, const char *name)
{
  (void)parent;
  put(ctx, TREE_DIR, name, NULL, 0);
  return 0;
}

static void stream_leave(void *ctx, int dir, const struct stat *st, unsigned depth)
{
  (void)dir, (void)depth;
  put(ctx, TREE_END, NULL, st, 0);
}

static int stream_file(void *ctx, int parent, const char *name)
{
  (void)parent;
  put(ctx, TREE_FILE, name, NULL, 0);
  return 0;
}

static void stream_data(void *ctx, int file, const char *buf, size_t n)
{
  (void)file;
  put(ctx, TREE_DATA, NULL, NULL, n);
  put_bytes(ctx, buf, n);
}

static void stream_file_end(void *ctx, int file, const struct stat *st)
{
  (void)file;
  put(ctx, TREE_DATA, NULL, st, 0);
}

static void stream_symlink(void *ctx, int parent, const char *name, const char *target, const struct stat *st)
{
  (void)parent;
  put(ctx, TREE_LINK, name, st, strlen(target));
  put_bytes(ctx, target, strlen(target));
}

static void stream_fifo(void *ctx, int parent, const char *name, const struct stat *st)
{
  (void)parent;
  put(ctx, TREE_FIFO, name, st, 0);
}

const struct tree_ops tree_stream = {stream_enter,    stream_leave,   stream_file, stream_data,
                                     stream_file_end, stream_symlink, stream_fifo};

int tree_source_refused(int src)
{
  struct statfs fs;
  if (fstatfs(src, &fs) < 0)
    return errno;
  return fs.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ || fs.f_type == 0x62656572 /* SYSFS_MAGIC */ ? EOPNOTSUPP : 0;
}

static void count_entry(struct tree_bounds *b)
{
  if (++b->entries > b->max_entries)
    tree_bound("entries");
}

static void count_bytes(struct tree_bounds *b, size_t n)
{
  b->bytes += n;
  if (b->bytes > b->max_bytes)
    tree_bound("bytes");
}

static void walk_file(int src, int file, const struct tree_ops *ops, void *ctx, struct tree_bounds *b)
{
  static char buf[TREE_CHUNK];
  ssize_t n;
  while ((n = read(src, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      tree_fail(errno, "reading a file");
    }
    count_bytes(b, (size_t)n);
    ops->data(ctx, file, buf, (size_t)n);
  }
}

static void walk(int src, int dst, const struct tree_ops *ops, void *ctx, struct tree_bounds *b, unsigned depth);

/* An entry that could not be opened (`err`): left out if sandbox code removed it or made it something else
 * since it was listed (a link: ELOOP; a socket: ENXIO; a file: ENOTDIR); any other error ends the walk,
 * naming the entry. */
static void unless_replaced(int err, const char *name)
{
  if (err != ENOENT && err != ELOOP && err != ENXIO && err != ENOTDIR)
    tree_fail(err, name);
}

/* One entry `name` of the directory `src` (on the device `dev`), into `dst`. */
static void walk_entry(int src, dev_t dev, int dst, const char *name, const struct tree_ops *ops, void *ctx,
                       struct tree_bounds *b, unsigned depth)
{
  struct statx sx;
  struct stat st;
  if (statx(src, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) < 0 ||
      fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) /* else removed while we copy */
      tree_fail(errno, name);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    /* Another mount (a volume, an image): not this directory's.  gVisor reports no mount roots, but
     * each of its mounts has a device of its own. */
    if ((sx.stx_attributes_mask & sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) || st.st_dev != dev)
      return;
    int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0) {
      unless_replaced(errno, name);
      return;
    }
    walk(s, ops->enter(ctx, dst, name), ops, ctx, b, depth + 1);
    close(s);
  } else if (S_ISREG(st.st_mode)) {
    int s = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
      unless_replaced(errno, name); /* never a file silently left out */
      return;
    }
    struct stat now;
    if (fstat(s, &now) < 0)
      tree_fail(errno, name);
    if (!S_ISREG(now.st_mode)) {
      close(s);
      return; /* replaced by something that is no file meanwhile */
    }
    int t = ops->file(ctx, dst, name);
    walk_file(s, t, ops, ctx, b);
    ops->file_end(ctx, t, &now);
    close(s);
  } else if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlinkat(src, name, target, sizeof target - 1);
    if (n < 0) {
      if (errno != EINVAL) /* EINVAL: no longer a link */
        unless_replaced(errno, name);
      return;
    }
    target[n] = '\0';
    ops->symlink(ctx, dst, name, target, &st);
  } else if (S_ISFIFO(st.st_mode)) {
    ops->fifo(ctx, dst, name, &st);
  } else if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISSOCK(st.st_mode)) {
    /* Devices and sockets are not an image's content; a type no file system should report is no reason to
     * leave an entry out silently. */
    tree_fail(EIO, name);
  }
}

static void walk(int src, int dst, const struct tree_ops *ops, void *ctx, struct tree_bounds *b, unsigned depth)
{
  if (depth > TREE_MAX_DEPTH)
    tree_fail(ELOOP, "directories nested deeper than 256");
  struct stat st;
  int listfd = dup(src);
  DIR *d = listfd < 0 ? NULL : fdopendir(listfd);
  if (d == NULL || fstat(src, &st) < 0)
    tree_fail(errno, "listing a directory");
  struct dirent *e;
  while ((errno = 0, e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    count_entry(b);
    walk_entry(src, st.st_dev, dst, e->d_name, ops, ctx, b, depth);
  }
  if (errno != 0)
    tree_fail(errno, "listing a directory");
  closedir(d);
  ops->leave(ctx, dst, &st, depth);
}

void tree_walk(int src, int dst, const struct tree_ops *ops, void *ctx, struct tree_bounds *b)
{
  walk(src, dst, ops, ctx, b, 0);
}

/* The reading side: nothing in the stream is trusted. */

static void read_exact(int in, void *buf, size_t n)
{
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(in, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      tree_fail(errno, "reading the stream");
    if (r == 0)
      tree_fail(EPROTO, "the stream ended early");
    got += (size_t)r;
  }
}

/* A record and its name: one component, for every kind that names an entry. */
static void get(int in, struct tree_record *r, char name[NAME_MAX + 1])
{
  read_exact(in, r, sizeof *r);
  if (r->name_len > NAME_MAX)
    tree_fail(EPROTO, "a name in the stream is too long");
  read_exact(in, name, r->name_len);
  name[r->name_len] = '\0';
  bool names = r->kind == TREE_DIR || r->kind == TREE_FILE || r->kind == TREE_LINK || r->kind == TREE_FIFO;
  if (names &&
      (r->name_len == 0 || memchr(name, '/', r->name_len) != NULL || memchr(name, '\0', r->name_len) != NULL ||
       strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
    tree_fail(EPROTO, "a name in the stream is not one path component");
}

static struct stat attributes(const struct tree_record *r, mode_t type)
{
  struct stat st = {0};
  st.st_mode = type | (r->mode & 07777);
  st.st_uid = r->uid, st.st_gid = r->gid;
  st.st_atim = (struct timespec){r->atime_s, r->atime_ns % 1000000000};
  st.st_mtim = (struct timespec){r->mtime_s, r->mtime_ns % 1000000000};
  return st;
}

/* A FAIL or BOUND record: what the walk reported (its text kept printable). */
static _Noreturn void reported(const struct tree_record *r, char *name)
{
  for (char *p = name; *p != '\0'; p++)
    if (*p < 0x20 || *p > 0x7e)
      *p = '?';
  if (r->kind == TREE_BOUND)
    tree_bound(strcmp(name, "bytes") == 0 ? "bytes" : "entries");
  tree_fail(r->size > 0 && r->size < 4096 ? (int)r->size : EPROTO, name);
}

static void unstream_file(int in, int file, struct tree_bounds *b)
{
  static char buf[TREE_CHUNK];
  char name[NAME_MAX + 1];
  for (;;) {
    struct tree_record r;
    get(in, &r, name);
    if (r.kind == TREE_FAIL || r.kind == TREE_BOUND)
      reported(&r, name);
    if (r.kind != TREE_DATA || r.size > TREE_CHUNK)
      tree_fail(EPROTO, "a file's data in the stream is malformed");
    if (r.size == 0) {
      struct stat st = attributes(&r, S_IFREG);
      tree_local.file_end(NULL, file, &st);
      return;
    }
    count_bytes(b, r.size);
    read_exact(in, buf, r.size);
    tree_local.data(NULL, file, buf, r.size);
  }
}

static void unstream(int in, int dst, struct tree_bounds *b, unsigned depth)
{
  char name[NAME_MAX + 1], target[PATH_MAX];
  if (depth > TREE_MAX_DEPTH)
    tree_fail(ELOOP, "directories nested deeper than 256");
  for (;;) {
    struct tree_record r;
    get(in, &r, name);
    struct stat st;
    switch (r.kind) {
    case TREE_END:
      st = attributes(&r, S_IFDIR);
      tree_local.leave(NULL, dst, &st, depth);
      return;
    case TREE_DIR:
      count_entry(b);
      unstream(in, tree_local.enter(NULL, dst, name), b, depth + 1);
      break;
    case TREE_FILE:
      count_entry(b);
      unstream_file(in, tree_local.file(NULL, dst, name), b);
      break;
    case TREE_LINK:
      count_entry(b);
      if (r.size == 0 || r.size >= sizeof target)
        tree_fail(EPROTO, "a symlink's target in the stream is malformed");
      read_exact(in, target, r.size);
      target[r.size] = '\0';
      if (strlen(target) != r.size)
        tree_fail(EPROTO, "a symlink's target in the stream is malformed");
      st = attributes(&r, S_IFLNK);
      tree_local.symlink(NULL, dst, name, target, &st);
      break;
    case TREE_FIFO:
      count_entry(b);
      st = attributes(&r, S_IFIFO);
      tree_local.fifo(NULL, dst, name, &st);
      break;
    case TREE_FAIL:
    case TREE_BOUND:
      reported(&r, name);
    default:
      tree_fail(EPROTO, "an unknown record in the stream");
    }
  }
}

void tree_unstream(int in, int dst, struct tree_bounds *b)
{
  unstream(in, dst, b, 0);
  char extra;
  ssize_t n;
  while ((n = read(in, &extra, 1)) < 0 && errno == EINTR)
    ;
  if (n != 0)
    tree_fail(EPROTO, "data in the stream after its end");
}
