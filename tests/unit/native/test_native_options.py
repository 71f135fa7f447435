"""The native helpers' command lines (native/common/opts.c and each helper's option table): a
refused command line exits 2 before anything is done, naming the option, and the usage
line is made from the table, so it lists every option."""

import subprocess

import pytest

from pysandbox import settings
from pysandbox.runtime.ptys import devpts_options, ptys_max

SUPERVISOR = ["--dir", "/nonexistent", "--timeout-ms", "5", "--output-max", "65536"]

REFUSED = [
    ("sandbox-supervisor", [], "--dir is required"),
    ("sandbox-supervisor", ["--foo"], "unknown option: --foo"),
    ("sandbox-supervisor", ["--dir"], "--dir needs DIR"),
    ("sandbox-supervisor", ["--dir", "/d", "--timeout-ms", "5", "--output-max", "65535", "--", "/bin/true"],
     "bad --output-max: 65535"),
    ("sandbox-supervisor", ["--dir", "/d", "--timeout-ms", str(2**61), "--output-max", "65536", "--", "/bin/true"],
     "bad --timeout-ms"),
    ("sandbox-supervisor", SUPERVISOR, "missing -- RUNNER ARGV..."),
    ("sandbox-supervisor", [*SUPERVISOR, "--", "true"], "RUNNER must be an absolute path"),
    ("sandbox-supervisor", [*SUPERVISOR, "--as-uid", str(2**32 - 1), "--", "/bin/true"], "bad --as-uid"),
    ("sandbox-supervisor", [*SUPERVISOR, "--as-uid", "5", "--", "/bin/true"], "--as-uid and --as-gid go together"),
    ("sandbox-supervisor", [*SUPERVISOR, "--confirm-fd", "3", "--", "/bin/true"], "bad --confirm-fd"),
    ("sandbox-supervisor", [*SUPERVISOR, "--nproc", str(2**31), "--", "/bin/true"], "bad --nproc"),
    ("sandbox-supervisor", [*SUPERVISOR, "--cleanup", "rel", "--", "/bin/true"], "--cleanup needs an absolute path"),
    ("sandbox-supervisor", [*SUPERVISOR, "--stage-bind", "/a=b/c", "--", "/bin/true"], "plain file name"),
    ("sandbox-supervisor", [*SUPERVISOR, "--stage-check", "a=1:2", "--", "/bin/true"], "no earlier --stage-bind"),
    ("sandbox-supervisor", [*SUPERVISOR, "--stage-overlay", "lowerdir=/l", "--", "/bin/true"],
     "--stage-overlay and --stage-tmpfs need --stage"),
    ("sandbox-supervisor", [*SUPERVISOR, "--stage-tmpfs", "size=1", "--", "/bin/true"],
     "--stage-overlay and --stage-tmpfs need --stage"),
    ("sandbox-supervisor", [*SUPERVISOR, "--stage", "/s", "--stage-overlay", "lowerdir=/l", "--stage-tmpfs", "size=1",
                            "--", "/bin/true"], "exclude each other"),
    ("sandbox-supervisor", [*SUPERVISOR, "--handoff", "--", "/bin/true"], "--handoff and --log-max go together"),
    ("sandbox-supervisor", [*SUPERVISOR, "--handoff", "--log-max", "100", "--", "/bin/true"], "bad --log-max"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-forward", "80:0", "--", "/bin/true"], "bad --net-forward port"),
    ("sandbox-supervisor", [*SUPERVISOR, "--userns-uid", "0:1", "--", "/bin/true"], "bad --userns-uid"),
    ("sandbox-supervisor", [*SUPERVISOR, "--userns-nested", "9", "--", "/bin/true"], "bad --userns-nested (0 to 8)"),
    ("sandbox-supervisor", [*SUPERVISOR, "--userns-nested", "-1", "--", "/bin/true"], "bad --userns-nested"),
    ("sandbox-supervisor", [*SUPERVISOR, "--userns-nested", "2", "--", "/bin/true"], "--userns-nested with them"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-helper", "/s", "--net-dir", "/d", "--net-filter", "/n", "--net-rules",
                            "r", "--", "/bin/true"], "--net-dns-upstream go together"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-own-stack", "--", "/bin/true"], "--net-own-stack needs"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-dns-link", "--", "/bin/true"], "--net-dns-link needs --net-own-stack"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-dns-min-ttl", "20", "--net-dns-max-ttl", "10", "--", "/bin/true"],
     "--net-dns-min-ttl is above --net-dns-max-ttl"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-dns-qps", "0", "--", "/bin/true"], "bad --net-dns-qps"),
    ("sandbox-supervisor", [*SUPERVISOR, "--net-dns-port", "65536", "--", "/bin/true"], "bad --net-dns-port"),
    ("sandbox-supervisor", [*SUPERVISOR, "--confirmed-by", "a/b", "--", "/bin/true"], "a file name in --dir"),
    ("sandbox-supervisor", [*SUPERVISOR, "--as-uid", "5", "--as-uid", "6", "--as-gid", "5", "--", "/bin/true"],
     "--as-uid given twice"),
    ("sandbox-supervisor", ["--spare"], "--room is required"),
    ("sandbox-supervisor", ["--spare", "--room", "x", "--dir", "/d"], "unknown option: --dir"),
    ("sandbox-supervisor", ["--spare", "--room", "x", "--", "/bin/true"], "unexpected operand"),
    ("sandbox-supervisor", ["--spare", "--room", "x", "--as-uid", "5"], "--as-uid and --as-gid go together"),
    ("sandbox-supervisor", ["--spare", "--room", "x", "--userns-uid", "0:1:1"], "--userns-uid"),
    ("sandbox-init", ["--sandbox", "sb-a", "--sandbox", "sb-b"], "--sandbox given twice"),
    ("sandbox-init", ["--foo"], "unknown option: --foo"),
    ("sandbox-init", ["--pty", "extra"], "unexpected argument: extra"),
    ("sandbox-init", ["--dir", "755"], "--dir needs MODE PATH"),
    ("sandbox-init", ["--idle-timeout-ms", str(2**32)], "bad --idle-timeout-ms"),
    # devpts takes max=0 as no bound at all: init uses only what it checked (caps.c)
    ("sandbox-init", ["--devpts-options", "newinstance,max=0"], "bad --devpts-options (a value out of range)"),
    ("sandbox-init", ["--devpts-options", f"max={2**20 + 1}"], "bad --devpts-options (a value out of range)"),
    ("sandbox-init", ["--devpts-options", "newinstance,mode=620"], "bad --devpts-options (no max=)"),
    ("sandbox-init", ["--devpts-options", "max=5,max=6"], "bad --devpts-options (an option given twice)"),
    ("sandbox-init", ["--devpts-options", "max=5,mode=999"], "bad --devpts-options (a value that is no number)"),
    ("sandbox-init", ["--devpts-options", "max=5,uid=0"], "bad --devpts-options (an option other than"),
    ("sandbox-init", ["--devpts-options", "max=5,,mode=620"], "bad --devpts-options (an option other than"),
    ("sandbox-init", ["--devpts-options", "max=5," + "mode=620," * 20], "bad --devpts-options (too long)"),
    ("sandbox-init", ["--chmod", "1", "/a"] * 7, "more than 6 --dir and --chmod"),
    ("sandbox-probe", [], "PORT must be a number in 1..65535"),
    ("sandbox-probe", ["0"], "PORT must be a number in 1..65535"),
    ("sandbox-probe", ["65536"], "PORT must be a number in 1..65535"),
    ("sandbox-probe", ["1", "2"], "PORT must be a number in 1..65535"),
    ("sandbox-mount", [], "--pidfd is required"),
    ("sandbox-mount", ["--pidfd", "3"], "one of --attach"),
    ("sandbox-mount", ["--pidfd", "3", "--attach", "rel"], "--attach needs an absolute path"),
    ("sandbox-mount", ["--pidfd", "3", "--attach", "/x", "--upper", "/u", "--work", "/w"], "one of --attach"),
    ("sandbox-mount", ["--pidfd", "3", "--detach", "/x"], "one of --attach"),
    ("sandbox-mount", ["--pidfd", "3", "--copy", "/x", "--dest", "4"], "one of --attach"),
    ("sandbox-mount", ["--pidfd", "3", "--lower", "rel"], "bad --lower: rel"),
    ("sandbox-mount", ["--pidfd", "3", "extra"], "no operands"),
]


def _run(binary, argv):
    return subprocess.run([settings.native_binary(binary), *argv], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=settings.HOST_ENV, timeout=30)


@pytest.mark.parametrize(("binary", "argv", "message"), REFUSED, ids=[f"{b} {' '.join(a)}"[:60] for b, a, _ in REFUSED])
def test_refused_command_lines_exit_2_naming_the_option(binary, argv, message):
    result = _run(binary, argv)
    assert result.returncode == 2, result.stderr
    assert f"{binary}: " in result.stderr and message in result.stderr


USAGE = {
    "sandbox-supervisor": "--dir DIR --timeout-ms N --output-max BYTES [--as-uid U] [--as-gid G] [--stage STAGEDIR] "
                          "[--stage-bind SRC=NAME]... [--stage-check NAME=DEV:INO]... [--stage-overlay OPTIONS] [--stage-tmpfs OPTIONS] [--cleanup PATH]... "
                          "[--userns-uid IN:OUT:N]... [--userns-gid IN:OUT:N]... [--newuidmap PATH] [--newgidmap PATH] [--userns-nested N] "
                          "[--confirm-fd FD] [--confirmed-by FILE] [--cgroup DIR]... [--handoff] [--log-max BYTES] [--nproc N] "
                          "[--net-helper SLIRP4NETNS] [--net-dir DIR] [--net-filter NFT] [--net-rules RULESET] [--net-own-stack] [--net-dns-link] "
                          "[--net-forward HOSTPORT:PORT]... [--net-dns-upstream ADDRESS] [--net-dns-port PORT] "
                          "[--net-domains NAMES] [--net-dns-qps N] [--net-dns-addresses N] "
                          "[--net-dns-min-ttl SECONDS] [--net-dns-max-ttl SECONDS] [--net-host-max N] -- RUNNER ARGV...",
    "sandbox-init": "[--sandbox ID] [--idle-timeout-ms N] [--pty] [--devpts-options OPTIONS] [--dir MODE PATH]... [--chmod MODE PATH]... "
                    "[--chdir PATH] [--handoff]",
    "sandbox-probe": "PORT",
    "sandbox-mount": "--pidfd FD [--as-sandbox-root] [--attach PATH] [--upper DIR] [--work DIR] [--lower DIR]... "
                     "[--detach PATH] [--mnt-id N] [--copy PATH] [--dest FD] [--max-bytes N] [--max-entries N]",
}


@pytest.mark.parametrize("binary", sorted(USAGE))
def test_usage_line_lists_every_option(binary):
    assert f"{binary}: usage: {binary} {USAGE[binary]}\n" in _run(binary, ["--no-such-option"]).stderr


def test_init_takes_the_devpts_options_the_runtime_makes():
    """runtime/ptys.py's options pass init's check (native/init/caps.c) as they are: only the word after them is
    refused."""
    result = _run("sandbox-init", ["--devpts-options", devpts_options(ptys_max()), "extra"])
    assert result.returncode == 2 and "sandbox-init: unexpected argument: extra" in result.stderr, result.stderr
