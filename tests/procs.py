"""Host processes the tests watch: whether one still runs, and waiting for one to start or die."""

import time

import psutil


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie; False for one gone, or no longer ours to see."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def eventually(predicate, timeout=30):
    """Whether `predicate()` holds within `timeout` s (processes take a moment to start or die)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()
