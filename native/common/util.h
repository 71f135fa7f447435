/* util.h: diagnostics and small helpers shared by sandbox-init and
 * sandbox-supervisor. */
#if !defined(PSB_UTIL_H)
#define PSB_UTIL_H

#include <errno.h>   /* errno */
#include <stdbool.h> /* bool */
#include <stdint.h>  /* int64_t, uint64_t */
#include <stdlib.h>  /* exit */

/* Set by each program's main file; prefixes every diagnostic. */
extern const char *const progname;

/* Writes "progname: <message>[: strerror(err)]\n" to fd 2 in one write(), so
 * lines from different processes sharing a log file do not interleave.
 * err == 0 leaves out the strerror part. */
void msg(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define warnf(...) msg(0, __VA_ARGS__)
#define pwarnf(...) msg(errno, __VA_ARGS__)
#define die(...) \
  do { \
    msg(0, __VA_ARGS__); \
    exit(1); \
  } while (0)
#define pdie(...) \
  do { \
    msg(errno, __VA_ARGS__); \
    exit(1); \
  } while (0)
/* Bad command line: nothing has been done yet. */
#define usage_die(...) \
  do { \
    msg(0, __VA_ARGS__); \
    exit(2); \
  } while (0)

/* The whole environment of every host process the supervisor starts (the
 * runner, slirp4netns, nft): fixed, so nothing a caller, an image or a
 * secret sets (LD_PRELOAD and the like) ever reaches a host process. */
extern char *const host_env[];

/* CLOCK_MONOTONIC in milliseconds. */
int64_t now_ms(void);

/* Parses a decimal number in 0..max with nothing else around it. */
bool parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif
