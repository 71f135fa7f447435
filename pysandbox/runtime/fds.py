"""The descriptors the creator, the supervisor, the runner and sandbox-init hand one
another: the Python side of native/common/fds.h (tests/unit/native/test_native_contracts.py
checks that the two agree)."""

CONFIRM = 0  # the creator's pipe to the supervisor: b"g" once the sandbox is registered
LISTEN = 3  # the listener init serves on
ENTRY_OUT = 4  # the entrypoint's stdout
ENTRY_ERR = 5  # the entrypoint's stderr
EVENT = 6  # init -> supervisor: idle timeout
NET_SYNC = 7  # the network handshake (native/init/netsync.c)
INIT_CONFIG = 8  # a sealed memfd with init's configuration (runtime/initconfig.py)
RUNNER_CONFIG = 9  # a sealed memfd with the runner's configuration, if it takes one (nsjail)
