"""Red team (red13b): sandbox code that keeps descriptors in flight (SCM_RIGHTS messages nobody receives) up to
the kernel's per-user bound denies every descriptor-passing call of the other sandboxes run by the same host
user: their `sb.open`, `sb.stdin.write`/`write_eof` fail with a misleading `ConflictError` ("already
finished"), and their init can no longer park its entrypoint's stdin (850f97b).

The kernel counts the descriptors a user has in flight on AF_UNIX sockets (`user_struct.unix_inflight`, keyed
by the kernel uid, net/unix/garbage.c `too_many_unix_fds`): once the count is past the *sender's*
RLIMIT_NOFILE, every sendmsg carrying SCM_RIGHTS fails with ETOOMANYREFS unless the sender has
CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the initial user namespace. Sandbox code has the same kernel uid as the
other sandboxes' processes (rootless: the caller's uid; root: the one uid every sandbox's root maps to, 131072
here), and init raised its soft RLIMIT_NOFILE to the hard limit, which sandbox code inherits: one process with
a pipe and a few socket pairs, sending the pipe's read end 253 at a time to sockets it never reads, passes
RLIMIT_NOFILE in a fraction of a second (20240 with this machine's 20000) and stays there as long as it lives.
Every other sandbox's init then fails to send a reply that carries a descriptor: OPEN (sb.open,
sb.filesystem), ENTRY_STDIN (sb.stdin's relay pipe is init's reply), PIDFD (mount_image, snapshot). init drops
the connection (reply()), and the host reads that as the sandbox gone (ConflictError "Sandbox ... already
finished" with the supervisor log's last line) although it runs. In the victim, init's park_stdin() fails as
well (ETOOMANYREFS: "kept in hand"), so the write end is back among the descriptors a stopped exec child copies
(red13's finding, which 850f97b fixed, returns). Rootless, the caller process has no such capability either:
its own exec() (three descriptors per request) fails as soon as the count passes the caller's soft
RLIMIT_NOFILE (often 1024), for all the user's sandboxes.

Reproduced: bubblewrap, root (victim and attacker both bubblewrap sandboxes of root's, a separate sandbox
each) and rootless (pysbtest6). The gVisor runner keeps its sandboxes' sockets in its own kernel (not
checked: the runner is unavailable here). Severity: medium: sandbox code denies calls of other sandboxes
(docs/SECURITY.md, PYSANDBOX_INIT_REPLY_TIMEOUT: "Either way sandbox code denies only its own sandbox's
calls"), for as long as it runs, with an error that says the victim ended.

Before the fix, run as root beside a CI run, the attack denied every root sandbox on the host while it held
the count: new sandboxes failed to start ("the sandbox's user namespace could not be made": the supervisor's
namespace maker passes the namespace as the sandboxes' uid, at the creator's soft limit).

Suggested fix: give each sandbox a kernel uid (and user_struct) of its own (a distinct subordinate uid range
per sandbox, as root; rootless needs newuidmap with a range per sandbox), so that what one sandbox holds in
flight counts only against itself; or keep sandbox code's RLIMIT_NOFILE well below init's (spawn sets the
children's hard limit to init's less a margin: the count sandbox code can reach is bounded by its own limit
plus 253 per message, init's sends then stay under init's), and as root send from the host with
CAP_SYS_RESOURCE; in any case, an init reply that fails with ETOOMANYREFS should reach the client as an error
that names it, not as a hang-up that reads as the sandbox's end.
Fixed: sandbox code's RLIMIT_NOFILE, hard limit included, is init's less a margin of 512 (native/init/spawn.c,
children_nofile; the entrypoint is forked for it too), and the supervisor and its helpers take their hard limit
as their soft one: the count sandbox code can reach stays below the limit of every sender but the creator.
Left open: rootless, sandbox root is the caller's own uid, so a caller whose soft RLIMIT_NOFILE is below what
sandbox code may reach can still be denied its own exec() requests (three descriptors each); and sandbox code
can lower its own init's limit (prlimit: the same uid), which denies only its own sandbox."""

import errno

import pytest

pytestmark = pytest.mark.rootless

# Sandbox code: the pipe's read end in flight until the kernel refuses (its count is past our RLIMIT_NOFILE), or
# past argv[1] descriptors if given, then it says so and holds everything until its stdin ends.
HOLD_IN_FLIGHT = r"""
import array, errno, os, socket, sys
cap = int(sys.argv[1]) if len(sys.argv) > 1 else float("inf")
r, w = os.pipe()
held, n, err = [], 0, None
while err is None and len(held) < 2048 and n < cap:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    held.append((a, b))
    while n < cap:
        try:
            a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * 253))])
            n += 253
        except BlockingIOError:
            break
        except OSError as e:
            err = errno.errorcode[e.errno]
            break
print(err, n, flush=True)
sys.stdin.read()
"""


def hold_in_flight(sb):
    """HOLD_IN_FLIGHT started in `sb`: its process, and what it said once it stopped sending (["ETOOMANYREFS", N]
    at the kernel's bound). Read from its output: rootless, the caller's own exec() is refused meanwhile."""
    holder = sb.exec("python3", "-S", "-c", HOLD_IN_FLIGHT)
    said = ""
    for chunk in holder.stdout:
        said += chunk
        if "\n" in said:
            break
    return holder, said.split()


def let_go(holder):
    holder.stdin.write_eof()
    holder.stdin.drain()
    if holder.wait() != 0:
        pytest.fail("the holder failed")


def test_fds_held_in_flight_by_one_sandbox_do_not_deny_anothers_calls(sandboxes):
    victim = sandboxes("cat", timeout=300)
    attacker = sandboxes("sleep", "300", timeout=300)
    assert victim.open("/etc/hostname").read() is not None  # served before the attack
    holder, held = hold_in_flight(attacker)
    try:
        assert held[:1] == ["ETOOMANYREFS"], (held, holder.poll())
        try:
            # The property: another sandbox's calls are served as before, and a new one starts (its namespace
            # maker passes the namespace as the same uid).
            assert victim.open("/etc/hostname").read() is not None
            victim.stdin.write("hi\n")
            victim.stdin.drain()
            assert sandboxes("sleep", "30").open("/etc/hostname").read() is not None
        finally:
            let_go(holder)
    finally:
        if holder.poll() is None:
            attacker.terminate()
    victim.stdin.write_eof()
    victim.stdin.drain()
    assert victim.stdout.read() == "hi\n"


# Sandbox code lowers its own init's soft limit (prlimit: the same uid), below what it then holds in flight.
LOWER_INITS_LIMIT = "import resource; resource.prlimit(1, resource.RLIMIT_NOFILE, (600, resource.prlimit(1, resource.RLIMIT_NOFILE)[1]))"


def test_a_descriptor_init_cannot_pass_is_an_error_that_says_so_not_the_sandboxs_end(sb):
    # Its own sandbox only: init answers the request with ETOOMANYREFS instead of hanging up, which the
    # host read as "already finished" although the sandbox runs.
    assert sb.exec("python3", "-c", LOWER_INITS_LIMIT).wait() == 0
    holder, held = hold_in_flight(sb)
    try:
        assert held[:1] == ["ETOOMANYREFS"], held
        with pytest.raises(OSError) as refused:
            sb.open("/etc/hostname")
        assert refused.value.errno == errno.ETOOMANYREFS, refused.value
    finally:
        let_go(holder)
    assert sb.open("/etc/hostname").read() is not None and sb.poll() is None
