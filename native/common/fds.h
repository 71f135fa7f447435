/* fds.h: the descriptors the creator, sandbox-supervisor, the runner (bwrap or
 * nsjail) and sandbox-init hand one another.  pysandbox/runtime/fds.py
 * mirrors these numbers; tests/unit/native/test_native_contracts.py compares them.
 *
 *   creator -> supervisor:  0 FD_CONFIRM, 1-2 the sandbox's supervisor.log,
 *                           3 FD_LISTEN, 4-5 FD_ENTRY_OUT/ERR (the files the
 *                           entrypoint's output goes to), 8 FD_INIT_CONFIG,
 *                           9 FD_RUNNER_CONFIG (nsjail only).
 *   supervisor -> runner:   3 FD_LISTEN, 4-5 FD_ENTRY_OUT/ERR (pipes the
 *                           supervisor copies into those files, capped),
 *                           6 FD_EVENT, 7 FD_NET_SYNC (default network only),
 *                           8 FD_INIT_CONFIG, 9 FD_RUNNER_CONFIG.
 *   runner -> init:         the same but 9, which the runner reads itself. */
#if !defined(PSB_FDS_H)
#define PSB_FDS_H

enum {
  FD_CONFIRM = 0,       /* the creator's pipe: 'g' once the sandbox is registered */
  FD_LISTEN = 3,        /* the SOCK_SEQPACKET listener init serves on */
  FD_ENTRY_OUT = 4,     /* the entrypoint's stdout */
  FD_ENTRY_ERR = 5,     /* the entrypoint's stderr */
  FD_EVENT = 6,         /* init -> supervisor: 'I' when the idle timeout fired */
  FD_NET_SYNC = 7,      /* the network handshake (netsync.c, netns.c) */
  FD_INIT_CONFIG = 8,   /* a sealed memfd: init's configuration (initconfig.h) */
  FD_RUNNER_CONFIG = 9, /* a sealed memfd: the runner's configuration (nsjail's --config) */
};

#endif
