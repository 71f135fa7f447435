/* opts.c: parsing a command line from its option table. */
#define _GNU_SOURCE 1
#include "opts.h"

#include <stdarg.h> /* va_list */
#include <stdio.h>  /* snprintf, vsnprintf */
#include <stdlib.h> /* exit */
#include <string.h> /* strcmp */

#include "util.h"

noreturn void opts_usage_die(const struct opts *o, const char *fmt, ...)
{
  char why[512], usage[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  size_t len = (size_t)snprintf(usage, sizeof usage, "usage: %s", progname);
  for (const struct opt *p = o->table; p->name != NULL && len < sizeof usage; p++)
    len += (size_t)snprintf(usage + len, sizeof usage - len, " %s%s%s%s%s%s", p->required ? "" : "[", p->name,
                            p->values != NULL ? " " : "", p->values != NULL ? p->values : "", p->required ? "" : "]",
                            p->many ? "..." : "");
  if (o->operands != NULL && len < sizeof usage)
    snprintf(usage + len, sizeof usage - len, " %s", o->operands);
  msg(0, "%s", why);
  msg(0, "%s", usage);
  exit(2);
}

const struct opt *opts_find(const struct opts *o, const char *name)
{
  const struct opt *p = o->table;
  while (strcmp(p->name, name) != 0)
    p++;
  return p;
}

/* One option's values, argv[0] being the option: returns how many it took. */
static int take(const struct opts *o, struct opt *p, char **argv)
{
  unsigned n = p->kind == OPT_FLAG ? 0 : p->kind == OPT_CALL && p->nvalues > 1 ? p->nvalues : 1;
  if (p->given > 0 && !p->many) /* a second value would silently win over the first */
    opts_usage_die(o, "%s given twice", p->name);
  for (unsigned k = 1; k <= n; k++) {
    if (argv[k] == NULL)
      opts_usage_die(o, "%s needs %s", p->name, p->values);
    if (p->absolute && argv[k][0] != '/')
      opts_usage_die(o, "%s needs an absolute path: %s", p->name, argv[k]);
  }
  uint64_t v;
  switch (p->kind) {
  case OPT_FLAG:
    *(bool *)p->to = true;
    break;
  case OPT_STRING:
    *(const char **)p->to = argv[1];
    break;
  case OPT_NUMBER:
    if (!parse_uint(argv[1], p->max, &v) || v < p->min)
      opts_usage_die(o, "bad %s: %s (a number in %llu..%llu)", p->name, argv[1], (unsigned long long)p->min,
                     (unsigned long long)p->max);
    *(uint64_t *)p->to = v;
    break;
  case OPT_CALL:
    p->call(p, argv + 1);
    break;
  }
  p->given++;
  return (int)n;
}

int opts_parse(const struct opts *o, char **argv)
{
  int i = 1;
  while (argv[i] != NULL && strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
    struct opt *p = o->table;
    while (p->name != NULL && strcmp(p->name, argv[i]) != 0)
      p++;
    if (p->name == NULL)
      opts_usage_die(o, "unknown option: %s", argv[i]);
    i += 1 + take(o, p, argv + i);
  }
  for (const struct opt *p = o->table; p->name != NULL; p++)
    if (p->required && p->given == 0)
      opts_usage_die(o, "%s is required", p->name);
  return i;
}
