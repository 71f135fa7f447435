/* initconfig.h: what sandbox-init learns from its creator, read from a sealed
 * memfd (fds.h: FD_INIT_CONFIG) rather than from its environment or argv.
 *
 * Those would pass through host processes (the supervisor and the runner,
 * which is dynamically linked) and show in /proc to every local user: the
 * sandbox's environment carries secrets and may come from a hostile image
 * (LD_PRELOAD), and its command line is the user's business.
 *
 * The memfd holds NUL-terminated records, each starting with a tag:
 *   "PSBC1"                the first record: format and version
 *   "E" KEY=VALUE          one variable of the sandbox's environment
 *   "A" ARG                the next word of the entrypoint's argv
 *   "V" DEV INO PATH       a volume the host opened: PATH must be a mount of
 *                          exactly that directory (st_dev, st_ino), checked
 *                          before anything runs, so a volume whose path was
 *                          swapped for a symlink after the host resolved it
 *                          never reaches the sandbox.
 * pysandbox/runtime/initconfig.py writes it. */
#if !defined(PSB_INITCONFIG_H)
#define PSB_INITCONFIG_H

#include <stddef.h>    /* size_t */
#include <sys/types.h> /* dev_t, ino_t */

#define INIT_CONFIG_MAGIC "PSBC1"
#define INIT_CONFIG_MAX (8u << 20) /* bytes; the creator's bound is lower */

struct volume_check {
  dev_t dev;
  ino_t ino;
  const char *path;
};

struct init_config {
  char **env;  /* NULL-terminated KEY=VALUE entries */
  char **argv; /* NULL-terminated; empty: no entrypoint */
  struct volume_check *volumes;
  size_t nvolumes;
};

/* Reads fd to its end and parses it, then closes it.  Dies on anything
 * malformed: a sandbox that cannot be configured must not run. */
void init_config_read(int fd, struct init_config *c);

/* Dies unless every volume's mount point is the directory the host opened. */
void init_config_check_volumes(const struct init_config *c);

#endif
