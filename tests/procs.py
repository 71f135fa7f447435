"""Host processes the tests watch: whether one still runs."""

import psutil


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie; False for one gone, or no longer ours to see."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
