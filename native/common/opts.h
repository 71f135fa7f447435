/* opts.h: a helper's command line, parsed from one table (as conmon's cli.c):
 * each option is declared once, with its values and their check, and the
 * usage line is made from the same table.
 *
 * Options come first, each its own word followed by its values ("--name V";
 * no "--name=V", no abbreviation); the first word that is no option ends them
 * ("--" too, which the caller sees).  A value is the next word, whatever it
 * is.  Anything wrong is a usage error (usage_die, exit 2) that names the
 * option, followed by the usage line. */
#if !defined(PSB_OPTS_H)
#define PSB_OPTS_H

#include <stdbool.h>     /* bool */
#include <stdint.h>      /* uint64_t */
#include <stdnoreturn.h> /* noreturn */

enum opt_kind {
  OPT_FLAG,   /* no value: *(bool *)to = true */
  OPT_STRING, /* *(const char **)to = the value */
  OPT_NUMBER, /* *(uint64_t *)to = the value, a decimal number in min..max */
  OPT_CALL,   /* call(o, values): nvalues words (at least 1), checked and kept by call */
};

struct opt {
  const char *name;   /* "--dir"; NULL ends the table */
  const char *values; /* what follows it in the usage line ("DIR", "MODE PATH"); NULL for a flag */
  enum opt_kind kind;
  void *to;
  uint64_t min, max; /* OPT_NUMBER */
  void (*call)(const struct opt *o, char **values);
  unsigned nvalues; /* OPT_CALL: words taken (0 means 1) */
  bool absolute;    /* every value must be an absolute path */
  bool required;
  bool many;      /* may be repeated (the usage line says "...") */
  unsigned given; /* set by opts_parse: how many times it came */
};

struct opts {
  struct opt *table;
  const char *operands; /* what follows the options, for the usage line ("-- RUNNER ARGV...") */
};

/* Parses argv[1...] and returns the index of the first word after the options. */
int opts_parse(const struct opts *o, char **argv);

/* The option named `name` in the table (it must be there). */
const struct opt *opts_find(const struct opts *o, const char *name);

/* "progname: <message>", then the usage line; exit 2. */
noreturn void opts_usage_die(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
