/* initconfig.c: reading and checking sandbox-init's configuration (initconfig.h). */
#define _GNU_SOURCE 1
#include "initconfig.h"

#include <errno.h>    /* errno */
#include <stdlib.h>   /* calloc, malloc, strtoull */
#include <string.h>   /* memchr, strcmp, strchr, strlen */
#include <sys/stat.h> /* fstat, lstat */
#include <unistd.h>   /* pread, close */

#include "util.h"

static char *read_whole(int fd, size_t *len)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    pdie("init config");
  if (st.st_size <= 0 || (size_t)st.st_size > INIT_CONFIG_MAX)
    die("init config: bad size %lld", (long long)st.st_size);
  *len = (size_t)st.st_size;
  char *buf = malloc(*len);
  if (buf == NULL)
    die("init config: out of memory");
  for (size_t got = 0; got < *len;) {
    ssize_t n = pread(fd, buf + got, *len - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      pdie("init config: short read");
    got += (size_t)n;
  }
  close(fd);
  if (buf[*len - 1] != '\0')
    die("init config: the last record is not terminated");
  return buf;
}

/* "DEV INO /PATH" */
static void parse_volume(char *rec, struct volume_check *v)
{
  char *end;
  errno = 0;
  unsigned long long dev = strtoull(rec, &end, 10);
  if (errno != 0 || end == rec || *end != ' ')
    die("init config: bad volume record");
  rec = end + 1;
  unsigned long long ino = strtoull(rec, &end, 10);
  if (errno != 0 || end == rec || *end != ' ' || end[1] != '/')
    die("init config: bad volume record");
  *v = (struct volume_check){.dev = (dev_t)dev, .ino = (ino_t)ino, .path = end + 1};
}

void init_config_read(int fd, struct init_config *c)
{
  size_t len;
  char *buf = read_whole(fd, &len);
  size_t nrec = 0;
  for (size_t i = 0; i < len; i++)
    nrec += buf[i] == '\0';
  /* Each list gets room for every record, plus its NULL. */
  c->env = calloc(nrec + 1, sizeof *c->env);
  c->argv = calloc(nrec + 1, sizeof *c->argv);
  c->volumes = calloc(nrec + 1, sizeof *c->volumes);
  if (c->env == NULL || c->argv == NULL || c->volumes == NULL)
    die("init config: out of memory");
  size_t nenv = 0, nargv = 0;
  c->nvolumes = 0;
  bool first = true;
  for (char *rec = buf; rec < buf + len; rec += strlen(rec) + 1) {
    if (first) {
      if (strcmp(rec, INIT_CONFIG_MAGIC) != 0)
        die("init config: not version %s", INIT_CONFIG_MAGIC);
      first = false;
      continue;
    }
    switch (rec[0]) {
    case 'E':
      if (rec[1] == '=' || strchr(rec + 1, '=') == NULL)
        die("init config: bad environment record");
      c->env[nenv++] = rec + 1;
      break;
    case 'A':
      c->argv[nargv++] = rec + 1;
      break;
    case 'V':
      parse_volume(rec + 1, &c->volumes[c->nvolumes++]);
      break;
    default:
      die("init config: unknown record");
    }
  }
  if (first)
    die("init config: empty");
}

void init_config_check_volumes(const struct init_config *c)
{
  for (size_t i = 0; i < c->nvolumes; i++) {
    const struct volume_check *v = &c->volumes[i];
    struct stat st;
    if (lstat(v->path, &st) < 0)
      pdie("volume %s", v->path);
    if (!S_ISDIR(st.st_mode) || st.st_dev != v->dev || st.st_ino != v->ino)
      die("volume %s: the mount is not the directory the host opened (its path was changed meanwhile)", v->path);
  }
}
