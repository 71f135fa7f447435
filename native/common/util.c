/* util.c: diagnostics and number parsing. */
#define _GNU_SOURCE 1
#include "util.h"

#include <stdarg.h> /* va_list */
#include <stdio.h>  /* snprintf, vsnprintf */
#include <string.h> /* strerror */
#include <time.h>   /* clock_gettime */
#include <unistd.h> /* write */

char *const host_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

void msg(int err, const char *fmt, ...)
{
  char buf[1024];
  size_t len = (size_t)snprintf(buf, sizeof buf, "%s: ", progname);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
  va_end(ap);
  len = n < 0 ? len : len + (size_t)n;
  if (err != 0 && len < sizeof buf) {
    n = snprintf(buf + len, sizeof buf - len, ": %s", strerror(err));
    len = n < 0 ? len : len + (size_t)n;
  }
  /* Keep the newline even when the message was truncated. */
  if (len > sizeof buf - 1)
    len = sizeof buf - 1;
  buf[len++] = '\n';
  ssize_t unused = write(2, buf, len);
  (void)unused;
}

int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return false;
    unsigned d = (unsigned)(*s - '0');
    if (d > max || v > (max - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}
