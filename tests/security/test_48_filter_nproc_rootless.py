"""Red team (red7), fixed: the DNS filter out of the sandbox's cgroups (red6's fix) did not help where there is no
pids cgroup.

An unprivileged caller on a host without a delegated pids controller (cgroup v1, or v2 without delegation) gets
the RLIMIT_NPROC fallback (runtime/limits.py): the supervisor's runner sets it before it makes the sandbox's user
namespace, and the kernel enforces a user namespace's RLIMIT_NPROC of its creator on every task inside it
(ucounts, Linux 5.14+). The DNS filter joined that user namespace, so sandbox code holding every task its limit
allows made the filter's forks fail again: a policy change was refused (this test), and the host-address updates
failed: an address the host gained meanwhile was reachable for as long as the sandbox held its pids. The filter
now never joins the sandbox's namespaces: a child made its resolver socket there, and each nft run joins them
after its fork, which counts as the caller's (dnsfilter.c enter_sandbox_netns). Run it as the unprivileged user:
PYSANDBOX_ROOTLESS_TAG=x bash .ci/rootless tests/security/test_48_filter_nproc_rootless.py"""

import pytest

from pysandbox.exception import ExecutionError

from ._inside import HOLD_TASKS

pytestmark = pytest.mark.rootless

HOLD = HOLD_TASKS + "hold.set()\n"


def test_sandbox_code_cannot_veto_a_tighter_policy_by_holding_its_nproc(sandboxes, runner):
    if runner == "gvisor":
        pytest.skip("gVisor's sandbox processes are the Sentry's threads")
    sb = sandboxes()
    p = sb.exec("python3", "-c", HOLD)
    out = ""
    for chunk in p.stdout:
        out += chunk
        if "\n" in out:
            break
    assert out.startswith("full"), out
    try:
        sb._experimental_set_outbound_network_policy(outbound_cidr_allowlist=["192.0.2.123/32"])
        refused = None
    except ExecutionError as exc:
        refused = exc
    finally:
        p.stdin.write("go\n")
        p.stdin.drain()
        p.wait()
    assert refused is None, (refused, (sb._dir / "supervisor.log").read_text()[-600:])
