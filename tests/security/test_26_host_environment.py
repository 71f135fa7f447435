"""Issue 11, item 1: nothing a caller, an image or a secret puts in a sandbox's
environment reaches a host process, and no host process's argv or environment
shows the sandbox's command line or secrets.

The attack: a sandbox whose environment sets a loader variable (LD_PRELOAD,
LD_AUDIT) to a library on the host. If the supervisor, the runner (bwrap or
nsjail, dynamically linked), slirp4netns or nft were started with that
environment, the library would run on the host, outside every namespace. The
library here leaves a file when it runs; none may appear. The variables still
reach the sandbox, where they are harmless.
"""

import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox.image import store

pytestmark = pytest.mark.rootless

LOADER_VARIABLES = ("LD_PRELOAD", "LD_AUDIT")
EVIL = textwrap.dedent("""
    #include <fcntl.h>
    #include <stdio.h>
    #include <unistd.h>
    __attribute__((constructor)) static void pwn(void)
    {
      char path[512];
      snprintf(path, sizeof path, "%s/ran-in-%d", MARKER_DIR, (int)getpid());
      int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd >= 0)
        close(fd);
    }
    unsigned int la_version(unsigned int version) { return version; } /* LD_AUDIT loads it too */
""")


@pytest.fixture(scope="module")
def evil():
    """(a library that leaves a file in `markers` wherever it is loaded, that directory)."""
    top = Path(tempfile.mkdtemp(prefix="pysandbox-evil-"))
    top.chmod(0o755)  # the sandbox identity (root's sandboxes: an unprivileged uid) can reach it
    markers = top / "markers"
    markers.mkdir()
    markers.chmod(0o1777)  # and could write here, if the library ever ran as it
    source = top / "evil.c"
    source.write_text(EVIL)
    library = top / "evil.so"
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER_DIR="{markers}"', "-o", str(library), str(source)],
                   check=True)
    library.chmod(0o755)
    yield library, markers
    subprocess.run(["rm", "-rf", str(top)], check=False)


def _host_side(sb):
    """The supervisor and the processes it runs on the sandbox's behalf (runner, init,
    network helpers): everything in the supervisor's tree but sandbox code."""
    supervisor = psutil.Process(sb._record.supervisor.pid)
    processes = [supervisor]
    for process in supervisor.children(recursive=True):
        try:
            argv = process.cmdline()  # read once: a process that exits meanwhile reads as []
        except psutil.Error:
            continue
        argv0 = argv[0] if argv else ""
        if os.path.basename(argv0) in ("bwrap", "nsjail", "init", "slirp4netns", "nft") or argv0.endswith("/init"):
            processes.append(process)
    return processes


def _assert_clean_host(sb, markers, *secrets):
    for process in _host_side(sb):
        try:
            environ = Path(f"/proc/{process.pid}/environ").read_bytes().decode(errors="replace")
            argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for secret in secrets:
            assert secret not in environ, f"{process.name()} has {secret!r} in its environment"
            assert secret not in argv, f"{process.name()} has {secret!r} in its command line"
        for variable in LOADER_VARIABLES:
            assert f"{variable}=" not in environ, f"{process.name()} got {variable}"
    assert not list(markers.iterdir()), "a host process loaded the sandbox's library"


@pytest.mark.parametrize("variable", LOADER_VARIABLES)
def test_loader_variables_from_env_never_reach_a_host_process(sandboxes, evil, variable):
    library, markers = evil
    sb = sandboxes("sleep", "30", env={variable: str(library)})
    p = sb.exec("sh", "-c", f"echo ${variable}")
    assert p.stdout.read().strip() == str(library)  # inside, where it is harmless
    p.wait()
    _assert_clean_host(sb, markers, str(library))


def test_loader_variables_from_a_secret_never_reach_a_host_process(sandboxes, evil):
    library, markers = evil
    secret = modal.Secret.from_dict({"LD_PRELOAD": str(library), "API_TOKEN": "tok-7f3a9c1e"})
    sb = sandboxes("sleep", "30", secrets=[secret])
    p = sb.exec("sh", "-c", "echo $API_TOKEN")
    assert p.stdout.read().strip() == "tok-7f3a9c1e"
    p.wait()
    _assert_clean_host(sb, markers, "tok-7f3a9c1e", str(library))


def test_an_image_env_pointing_into_its_own_layer_never_reaches_a_host_process(sandboxes, evil):
    # The published attack: the library ships in a layer (whose host path is predictable)
    # and the image's ENV preloads it.
    library, markers = evil
    with_library = modal.Image.from_scratch().add_local_file(library, "/evil.so", copy=True).build()
    layer = store.layer_dir(store.layer_of(with_library.object_id)) / "rootfs" / "evil.so"
    assert layer.is_file()
    image = with_library.env({"LD_PRELOAD": str(layer), "LD_AUDIT": str(layer)})
    sb = sandboxes("/evil-missing-entrypoint-keeps-nothing", image=image)
    sb.wait(raise_on_termination=False)  # no /bin here: the entrypoint fails (127) inside the sandbox
    assert sb.returncode == 127
    assert not list(markers.iterdir()), "a host process loaded the image's library"


def test_entrypoint_argv_and_env_stay_out_of_host_argv_and_environment(sandboxes, evil):
    _, markers = evil
    sb = sandboxes("sh", "-c", "sleep 30", "argv-marker-5d1c", env={"MY_SECRET": "env-marker-9e2b"})
    sb.exec("true").wait()
    _assert_clean_host(sb, markers, "argv-marker-5d1c", "env-marker-9e2b")
    supervisor = Path(f"/proc/{sb._record.supervisor.pid}/environ").read_bytes().split(b"\0")
    assert sorted(filter(None, supervisor)) == sorted(f"{k}={v}".encode() for k, v in settings.HOST_ENV.items())
