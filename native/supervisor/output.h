/* output.h: the entrypoint's stdout and stderr, copied by the supervisor from
 * pipes into the files in the sandbox directory, each kept within a bound.
 *
 * The sandbox writes into a pipe, never into a host file: it cannot fill the
 * host's disk, and the file only ever holds the newest `max` bytes or so.
 * Older output is released with FALLOC_FL_PUNCH_HOLE, so the file keeps its
 * offsets (readers following it never see their position move) and readers
 * skip the holes with SEEK_DATA (streams.FollowSource).  Where the file system
 * cannot punch holes, output past the bound is dropped instead.  Nothing here
 * ever blocks: the pipes are non-blocking and a failed write drops data. */
#if !defined(PSB_OUTPUT_H)
#define PSB_OUTPUT_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint64_t */

struct output {
  int pipe;          /* read end, non-blocking; -1 at end of file */
  int file;          /* the file in the sandbox directory */
  const char *name;  /* for diagnostics */
  uint64_t max;      /* bytes kept */
  uint64_t size;     /* bytes written so far: the file's size */
  uint64_t released; /* bytes before this offset were punched out */
  bool head_only;    /* a log: keeps its first max bytes, appended (output_init_log) */
  bool dropping;     /* over the bound where holes cannot be punched, or a log's */
  bool failed;       /* a write failed (e.g. a full disk): said once */
};

/* pipe: the read end (made non-blocking here); file: the open file. */
void output_init(struct output *o, int pipe, int file, const char *name, uint64_t max);

/* A log (init's and the runner's messages under --handoff, into the sandbox's
 * supervisor.log, which the supervisor writes to as well): appended, keeping
 * the first max bytes of what came through the pipe, as readers want its first
 * lines (records.log_lines); the rest is dropped. */
void output_init_log(struct output *o, int pipe, int file, const char *name, uint64_t max);

/* Copies what the pipe holds now.  Returns false once it is at end of file
 * (the pipe is then closed). */
bool output_copy(struct output *o);

/* Copies until end of file: the sandbox is gone, so no writer is left. */
void output_drain(struct output *o);

#endif
