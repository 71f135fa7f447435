/* protocol.h: the messages spoken between a pysandbox client and sandbox-init.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET connection to the listener that init
 * inherits as fd 3.  One datagram is one message; a request never spans two
 * datagrams, so one recvmsg() returns a whole request with its fds.
 *
 * Every message starts with struct psb_header.  Integers are host-endian (the
 * peer is always on the same machine).  Strings in a body are NUL-terminated
 * and packed one after another; the receiver bounds-checks every one.
 *
 * The Python side (pysandbox/agent.py) mirrors these numbers; change both.
 */
#if !defined(PSB_PROTOCOL_H)
#define PSB_PROTOCOL_H

#include <stdint.h> /* uint32_t, uint16_t, int32_t */

#define PSB_MAGIC 0x31425350u /* "PSB1" little-endian */
#define PSB_VERSION 1
#define PSB_MAX_MESSAGE (256 * 1024)

struct psb_header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t length; /* whole message, header included */
};

/* Requests (client -> init).  init.c lists them with their handlers and why
 * each is safe to serve, above handle_conn. */
enum {
  PSB_REQ_EXEC = 1, /* body: psb_exec + strings; 3 fds: stdin, stdout, stderr */
  /* 2 was a SIGNAL no client sent: now an unknown type, as any other number. */
  PSB_REQ_ENTRY_STDIN = 3,       /* no body; reply PSB_REP_FD with a dup of the entrypoint's stdin; or with
                                    1 fd, a pipe's read end: reply PSB_REP_OK, and a process of init's copies
                                    it into the entrypoint's stdin until its writers close it (gVisor) */
  PSB_REQ_ENTRY_STDIN_CLOSE = 4, /* no body; init drops its write end: the entrypoint sees EOF */
  /* 5 was a PING no client sent: now an unknown type, as any other number. */
  PSB_REQ_OPEN = 6,  /* body: psb_open + path; reply PSB_REP_FD with the open file */
  PSB_REQ_FSOP = 7,  /* body: psb_fsop + path; reply PSB_REP_OK (LIST: with entries) */
  PSB_REQ_PIDFD = 8, /* no body; reply PSB_REP_FD with a pidfd of init (mount_image: the host joins its namespaces),
                        the connection's one reply: init then closes it */
  PSB_REQ_FILE = 9,  /* body: psb_file (+ data for WRITE); on a connection whose OPEN init relays (below) */
};

/* Replies (init -> client). */
enum {
  PSB_REP_OK = 100,      /* no body */
  PSB_REP_STARTED = 101, /* body: uint32 pid (in the sandbox's pid namespace) */
  PSB_REP_EXITED = 102,  /* body: psb_exited; the connection's last message: init then closes it */
  PSB_REP_FD = 103,      /* no body; one fd attached */
  PSB_REP_ERROR = 199,   /* body: int32 errno, then a NUL-terminated message */
};

/* exec(pty=True): init makes the terminal, from the sandbox's devpts (so the
 * process can name it: tty, ttyname), and a process of init's relays it: the 3
 * fds are the read end of the process's input, the write end for its output
 * (stdout and stderr merged), and a SOCK_SEQPACKET socket whose datagrams are
 * struct winsize, the terminal's size (the first, sent before the request, its
 * size at the start; 24x80 without one).  Bit 1u is retired (a terminal of the
 * host's, which the sandbox's devpts does not show): init refuses it as any
 * unknown flag, with EINVAL. */
#define PSB_EXEC_FLAG_PTY 2u

struct psb_exec {
  uint32_t flags;
  uint32_t timeout_ms; /* 0: none.  At the deadline init kills the process group. */
  uint32_t argc;       /* >= 1 */
  uint32_t envc;
  /* then: cwd ("" = init's cwd), argv[argc], env[envc] ("KEY=VALUE") */
};

/* Open a file inside the sandbox, as the sandbox's user: the path resolves in
 * the sandbox's root, so no symlink or ".." planted in it can reach a host
 * file.  A relative path is relative to the sandbox's working directory. */
#define PSB_OPEN_FLAGS_ALLOWED 0x000006c3u /* O_ACCMODE|O_CREAT|O_EXCL|O_TRUNC|O_APPEND (Linux values) */

struct psb_open {
  uint32_t flags; /* a subset of PSB_OPEN_FLAGS_ALLOWED */
  uint32_t mode;  /* permission bits for O_CREAT */
  /* then: path */
};

/* Under --handoff (gVisor, which hands no descriptor out of the sandbox) OPEN
 * replies PSB_REP_OK with the file's psb_stat instead of PSB_REP_FD, and init
 * keeps a regular file open for the connection: FILE requests on it read,
 * write and seek it, one bounded chunk each, until the client hangs up. */
enum {
  PSB_FILE_READ = 1,  /* arg: bytes (<= PSB_FILE_CHUNK); reply body: the bytes read (none: end of file) */
  PSB_FILE_PEEK = 2,  /* as READ, without moving the offset (pread) */
  PSB_FILE_WRITE = 3, /* body's data (<= PSB_FILE_CHUNK); reply body: int64 bytes written */
  PSB_FILE_SEEK = 4,  /* arg: offset, whence: SEEK_*; reply body: int64 the new offset */
};

#define PSB_FILE_CHUNK 65536 /* 64 KiB */

struct psb_file {
  uint32_t op;
  uint32_t whence;
  int64_t arg;
  /* then (WRITE): the data */
};

/* Directory operations, done by init as the sandbox's user inside the sandbox
 * (never by the host process on host paths). */
enum {
  PSB_FSOP_MKDIR = 1, /* mode: permission bits */
  PSB_FSOP_UNLINK = 2,
  PSB_FSOP_RMDIR = 3,
  PSB_FSOP_LIST = 4,  /* reply body: per entry, one byte d_type then the NUL-terminated name */
  PSB_FSOP_STAT = 5,  /* lstat; reply body: psb_stat, then a symlink's target (NUL-terminated) */
  PSB_FSOP_WATCH = 6, /* mode: PSB_WATCH_RECURSIVE or 0; reply PSB_REP_FD with an inotify fd,
                         body: per watch, int32 wd then the path relative to the request's; or with
                         1 fd, a SOCK_SEQPACKET socket: reply PSB_REP_OK with the same body, and a
                         process of init's sends each read of the inotify fd into it as one
                         datagram until the client closes it (gVisor) */
  PSB_FSOP_TREE = 7,  /* 1 fd, a SOCK_STREAM socket: reply PSB_REP_OK once the directory is open, and a
                         process of init's writes its tree into the socket as common/tree.h's stream
                         (snapshot_directory under gVisor, whose namespaces the host cannot join) */
};

#define PSB_WATCH_RECURSIVE 1u

struct psb_stat {
  uint32_t mode;
  uint32_t uid;
  uint32_t gid;
  uint32_t pad;
  uint64_t size;
  int64_t mtime_ns;
};

struct psb_fsop {
  uint32_t op;
  uint32_t mode;
  /* then: path */
};

enum {
  PSB_EXIT_CODE = 0,    /* value: exit code */
  PSB_EXIT_SIGNAL = 1,  /* value: signal number */
  PSB_EXIT_TIMEOUT = 2, /* value: 0; the exec deadline passed and init killed it */
};

struct psb_exited {
  uint32_t kind;
  int32_t value;
};

#endif
