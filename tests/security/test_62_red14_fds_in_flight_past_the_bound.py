"""Red team (red14): sandbox code holds descriptors in flight far past its own RLIMIT_NOFILE, so red13b's margin
(native/init/spawn.c, children_nofile: sandbox code's limit is init's less 512, "253 a message past its own
limit at most") does not hold, and one sandbox again denies every other sandbox of its kernel uid.

The kernel bounds the descriptors a user has in flight by the sender's soft RLIMIT_NOFILE, checked when a
datagram's descriptors are attached (af_unix.c unix_attach_fds, too_many_unix_fds), but since Linux 6.10 counted
only when the datagram is queued (unix_add_edges, from scm_stat_add). A blocking sendmsg on a SOCK_DGRAM socket
whose receiver's queue is full (net.unix.max_dgram_qlen, 10) attaches and passes the check, then waits for room
(unix_wait_for_peer) and never checks again. So sandbox code fills a few receivers' queues with empty datagrams,
starts N senders of 253 descriptors each (threads: they passed the check while the count was low), then reads
the fillers: every sender queues, and N * 253 descriptors are in flight whatever its limit. Reproduced here with
a limit of 64 and 20 senders: 5060 in flight (this test, harmless beside other sandboxes); end to end as a
rootless caller (pysbtest5, its limits 20000/20000): 100 senders held 25300, and the caller's other sandbox's
`open` failed ("[Errno 109] Too many references") and a new sandbox failed to start. With 80 senders past
every init's 20000, which denies all the other sandboxes of root (one uid, 131072) their `sb.open`,
`sb.filesystem`, stdin and mount_image replies, and every new sandbox its start ("the sandbox's user namespace
could not be made"), for as long as it holds them (tests/security/test_61_red13b_* with the bound bypassed);
within its pids limit (2048 threads) about 500,000, past any RLIMIT_NOFILE a host allows (fs.nr_open). Not run
at that scale here: as root it would deny every other root sandbox on this shared host. Severity: high (one
sandbox denies service to every other sandbox of the host user, and to new ones).

Not fixed (strict xfail): no margin on RLIMIT_NOFILE bounds it, and seccomp cannot see what a sendmsg carries. A
fix: a kernel uid per sandbox (red13b's first suggestion), so that what one holds in flight counts against it
alone; or init and the supervisor's helpers passing descriptors from a process the kernel exempts
(CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the initial user namespace), e.g. the host joining the sandbox's mount
namespace to open files itself (as sandbox-mount does), instead of init sending them."""

import os

import pytest

# It holds descriptors in flight as the kernel uid all its caller's sandboxes share. As root that is every root
# sandbox of the machine, and CI's other suites meanwhile create sandboxes from processes with a low
# RLIMIT_NOFILE (test_exec_limits), whose inits it would deny: it runs as the rootless suite's user, its own.
AS_ITS_OWN_USER = pytest.mark.skipif(os.geteuid() == 0, reason="denies every root sandbox meanwhile: run rootless")
pytestmark = [pytest.mark.rootless, AS_ITS_OWN_USER]

# Sandbox code: descriptors in flight past its own limit (argv: the limit it sets itself, the senders).
BYPASS = r"""
import array, os, resource, socket, struct, sys, threading, time
limit, senders = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
qlen = int(open("/proc/sys/net/unix/max_dgram_qlen").read())
r, w = os.pipe()
held, refused, receivers, threads, sending = [], [], [], [], []

def send(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(path)
    # One that came too late for a place (a busy host) gives up instead of waiting for ever: the kernel's own
    # timeout, the socket still blocking (Python's settimeout would retry, and check again).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
    sending.append(s)
    try:
        s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * 253))])
        held.append(s)
    except OSError as e:
        refused.append(e.errno)

for i in range((senders + qlen - 1) // qlen):
    path = f"\0red14-{os.getpid()}-{i}"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(path)
    filler.setblocking(False)
    n = 0
    while True:
        try:
            filler.send(b"f")
            n += 1
        except BlockingIOError:
            break
    receivers.append((rx, n, filler))
    for j in range(min(qlen, senders - i * qlen)):
        threads.append(threading.Thread(target=send, args=(path,)))
        threads[-1].start()
while len(sending) < senders:
    time.sleep(0.05)
time.sleep(1)  # each is in its sendmsg: attached (checked), waiting for a place
for rx, n, _ in receivers:
    for _ in range(n):
        rx.recv(16)
for t in threads:
    t.join()
print(253 * len(held), len(refused), flush=True)
sys.stdin.read()
"""

LIMIT, SENDERS = 64, 20


@pytest.mark.xfail(strict=True, reason="red14: a datagram's descriptors are checked against the per-user bound when "
                   "attached but counted when queued (Linux 6.10+): senders blocked on a full receiver pass the "
                   "check, and sandbox code holds any number in flight (needs a kernel uid per sandbox)")
def test_sandbox_code_holds_no_more_in_flight_than_its_limit_and_a_message(sb):
    holder = sb.exec("python3", "-S", "-c", BYPASS, str(LIMIT), str(SENDERS))
    said = ""
    try:
        for chunk in holder.stdout:
            said += chunk
            if "\n" in said:
                break
        in_flight, refused = map(int, said.split())
    finally:
        holder.stdin.write_eof()
        holder.stdin.drain()
        holder.wait()
    # The bound red13b's margin relies on: its own soft limit, and one message of 253 past it.
    assert in_flight <= LIMIT + 253, f"{in_flight} descriptors in flight with RLIMIT_NOFILE {LIMIT} ({refused} refused)"
