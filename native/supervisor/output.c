/* output.c: copying the entrypoint's output, and a runner's log, within its bound (output.h). */
#define _GNU_SOURCE 1
#include "output.h"

#include <errno.h>  /* errno */
#include <fcntl.h>  /* fcntl, fallocate, FALLOC_FL_* */
#include <poll.h>   /* poll */
#include <unistd.h> /* read, pwrite, close */

#include "util.h"

enum { CHUNK = 64 * 1024, PAGE = 4096, DRAIN_PATIENCE_MS = 2000 };

void output_init(struct output *o, int pipe, int file, const char *name, uint64_t max)
{
  *o = (struct output){.pipe = pipe, .file = file, .name = name, .max = max};
  int fl = fcntl(pipe, F_GETFL);
  if (fl < 0 || fcntl(pipe, F_SETFL, fl | O_NONBLOCK) < 0)
    pdie("output pipe");
}

void output_init_log(struct output *o, int pipe, int file, const char *name, uint64_t max)
{
  output_init(o, pipe, file, name, max);
  o->head_only = true;
}

/* Releases the oldest output once the file holds more than max bytes, down
 * to about half of it (so this runs once per max/2 bytes, not per write). */
static void keep_bound(struct output *o)
{
  if (o->size - o->released <= o->max)
    return;
  uint64_t from = (o->size - o->max / 2) & ~(uint64_t)(PAGE - 1);
  if (from <= o->released)
    return;
  if (fallocate(o->file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)o->released, (off_t)(from - o->released)) ==
      0) {
    o->released = from;
    return;
  }
  pwarnf("%s: cannot release old output: keeping the first %llu bytes only", o->name, (unsigned long long)o->max);
  o->dropping = true;
}

static void store(struct output *o, const char *buf, size_t len)
{
  if (o->dropping || o->failed)
    return;
  if (o->head_only && len >= o->max - o->size) {
    len = (size_t)(o->max - o->size);
    o->dropping = true; /* past this write: the log is full */
  }
  for (size_t done = 0; done < len;) {
    /* A log is shared with our own messages: appended, not written at an offset. */
    ssize_t n =
        o->head_only ? write(o->file, buf + done, len - done) : pwrite(o->file, buf + done, len - done, (off_t)o->size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      pwarnf("%s: output dropped", o->name);
      o->failed = true;
      return;
    }
    done += (size_t)n;
    o->size += (uint64_t)n;
  }
  if (!o->head_only)
    keep_bound(o);
}

bool output_copy(struct output *o)
{
  char buf[CHUNK];
  while (o->pipe >= 0) {
    ssize_t n = read(o->pipe, buf, sizeof buf);
    if (n > 0) {
      store(o, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return true;
    close(o->pipe); /* end of file, or an error no retry would cure */
    o->pipe = -1;
  }
  return false;
}

void output_drain(struct output *o)
{
  /* Every writer is gone by now; the deadline only guards against a bug. */
  int64_t deadline = now_ms() + DRAIN_PATIENCE_MS;
  while (output_copy(o)) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      warnf("%s: still open at teardown; the rest is dropped", o->name);
      break;
    }
    poll(&(struct pollfd){.fd = o->pipe, .events = POLLIN}, 1, (int)left);
  }
}
