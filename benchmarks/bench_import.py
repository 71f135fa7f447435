"""The CPU that `import pysandbox` costs a new process: every CLI call, every second process
that calls from_id, every test subprocess pays it.

CPU time (user + system, from the child's rusage) rather than wall time, which the machine's
load disturbs far more. Each round runs `python3 -c pass` and `python3 -c 'import pysandbox'`
in turn, so both see the same load; the figure is the median over the rounds, against the bare
interpreter's from the same run, and the import's own share (the difference of the medians).
The tree imported is the one this benchmark sits in (PYTHONPATH), not an installed copy.

Twice: with bytecode caches (what an installed package gives; kept in a temporary
PYTHONPYCACHEPREFIX, written by the warm-up), and with PYTHONDONTWRITEBYTECODE=1, as this
project's sessions and test runs have it: the standard library's caches are used, the tree
has none, so each of its modules is compiled on every import.

Usage: bench_import.py [ROUNDS]   (default 40)
"""

import os
import statistics
import subprocess
import sys
import tempfile

from _common import report

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
WARMUP = 3
TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {"python3 -c pass": "pass", "import pysandbox": "import pysandbox"}


def child_cpu_ms(code, env):
    """user + system CPU of one `python3 -c code`, in ms. It runs in TREE: `-c` puts the working
    directory first on sys.path, which would otherwise choose the tree imported."""
    child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=TREE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if child.returncode != 0:
        raise SystemExit(f"python3 -c {code!r} failed")
    return (usage.ru_utime + usage.ru_stime) * 1000


def tree_caches():
    """The bytecode caches in the tree itself, which the second figure must not have."""
    return [os.path.join(path, "__pycache__") for path, dirs, _ in os.walk(os.path.join(TREE, "pysandbox"))
            if "__pycache__" in dirs]


def main():
    if tree_caches():
        raise SystemExit(f"{TREE} holds bytecode caches ({tree_caches()[0]}, ...): remove them first, "
                         f"e.g. find {TREE} -name __pycache__ -prune -exec rm -r {{}} +")
    base = {key: value for key, value in os.environ.items()
            if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as cache:
        envs = {"with bytecode caches": dict(base, PYTHONPATH=TREE, PYTHONPYCACHEPREFIX=cache),
                "without the tree's bytecode caches": dict(base, PYTHONPATH=TREE, PYTHONDONTWRITEBYTECODE="1")}
        samples = {(kind, name): [] for kind in envs for name in PROGRAMS}
        for i in range(ROUNDS + WARMUP):
            for kind, env in envs.items():
                for name, code in PROGRAMS.items():
                    cpu = child_cpu_ms(code, env)
                    if i >= WARMUP:
                        samples[kind, name].append(cpu)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    for kind in envs:
        bare, ours = medians[kind, "python3 -c pass"], medians[kind, "import pysandbox"]
        report(f"import pysandbox, {kind}: CPU (user+sys)", ours, "python3 -c pass", bare)
        print(f"import pysandbox, {kind}: its own CPU: {ours - bare:.1f} ms (difference of the medians)", flush=True)


if __name__ == "__main__":
    main()
