"""Item 24: bad input to every public entry point (Sandbox.create, exec, the file APIs, Image
constructors and steps, Volume, Secret, App, Probe): wrong types, relative paths, huge argument
lists, invalid names, NUL bytes, unknown modes. Each raises the documented exception (the
exact class, a message naming the problem) before any work: no sandbox, layer, volume, secret
or app record appears, and no Python-internal exception (AttributeError, struct.error, ...)
escapes."""

import types

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox.exception import InvalidError, NotFoundError, UnimplementedError

pytestmark = pytest.mark.rootless

HUGE = "x" * 70_000  # over the 64 KiB of argv Modal allows


def _create(ctx, *args, **kwargs):
    return modal.Sandbox.create(*args, app=kwargs.pop("app", ctx.app), **kwargs)


def row(id, call, exception=InvalidError, match="", marks=()):
    return pytest.param(call, exception, match, id=id, marks=marks)


NO_SANDBOX_NEEDED = [
    # Sandbox.create -----------------------------------------------------------------------
    row("create: a non-str argument", lambda c: _create(c, "echo", 1), match="must be strings"),
    row("create: NUL in an argument", lambda c: _create(c, "echo", "a\0b"), match="NUL"),
    row("create: arguments over 64 KiB", lambda c: _create(c, "echo", HUGE), match="65536"),
    row("create: 100000 arguments", lambda c: _create(c, *["x"] * 100_000), match="65536"),
    row("create: env a list", lambda c: _create(c, env=["A=1"]), match="env must be a dict"),
    row("create: env name with =", lambda c: _create(c, env={"A=B": "x"}), match="'A=B'"),
    row("create: env name with a digit first", lambda c: _create(c, env={"1A": "x"}), match="'1A'"),
    row("create: env value an int", lambda c: _create(c, env={"A": 1}), match="must be a string"),
    row("create: env value with NUL", lambda c: _create(c, env={"A": "a\0"}), match="NUL"),
    row("create: secrets of str", lambda c: _create(c, secrets=["A=1"]), match="Secret objects"),
    row("create: a secret with a bad name", lambda c: _create(c, secrets=[modal.Secret.from_dict({"1A": "x"})]),
        match="'1A'"),
    row("create: secrets a single Secret", lambda c: _create(c, secrets=modal.Secret.from_dict({"A": "1"})),
        match="secrets"),
    row("create: workdir relative", lambda c: _create(c, workdir="tmp"), match="absolute"),
    row("create: workdir with NUL", lambda c: _create(c, workdir="/a\0"), match="NUL"),
    row("create: timeout 0", lambda c: _create(c, timeout=0), match="timeout"),
    row("create: timeout negative", lambda c: _create(c, timeout=-5), match="timeout"),
    row("create: timeout a str", lambda c: _create(c, timeout="10"), match="timeout"),
    row("create: timeout True", lambda c: _create(c, timeout=True), match="timeout"),
    row("create: timeout NaN", lambda c: _create(c, timeout=float("nan")), match="timeout"),
    row("create: timeout infinite", lambda c: _create(c, timeout=float("inf")), match="timeout"),
    row("create: idle_timeout 0", lambda c: _create(c, idle_timeout=0), match="idle_timeout"),
    row("create: idle_timeout NaN", lambda c: _create(c, idle_timeout=float("nan")), match="idle_timeout"),
    row("create: name with a space", lambda c: _create(c, name="a b"), match="Invalid Sandbox name"),
    row("create: name of 65 characters", lambda c: _create(c, name="n" * 65), match="Invalid Sandbox name"),
    row("create: name like an app id", lambda c: _create(c, name="ap-123"), match="Invalid Sandbox name"),
    row("create: name an int", lambda c: _create(c, name=5), match="Invalid Sandbox name"),
    row("create: name '..' (a directory of the name registry)", lambda c: _create(c, name=".."),
        match="Invalid Sandbox name"),
    row("create: name '.'", lambda c: _create(c, name="."), match="Invalid Sandbox name"),
    row("create: tags with an int value", lambda c: _create(c, tags={"a": 1}), match="tags"),
    row("create: tags a list", lambda c: _create(c, tags=["a"]), match="tags"),
    row("create: image a str", lambda c: _create(c, image="python:3.12"), match="pysandbox.Image"),
    row("create: volumes a list", lambda c: _create(c, volumes=[c.vol]), match="volumes must be a dict"),
    row("create: a volume that is not one", lambda c: _create(c, volumes={"/data": "data"}), match="Volume"),
    row("create: volume path relative", lambda c: _create(c, volumes={"data": c.vol}), match="absolute"),
    row("create: volume path with ..", lambda c: _create(c, volumes={"/a/../etc": c.vol}), match="absolute"),
    row("create: volume path with NUL", lambda c: _create(c, volumes={"/a\0": c.vol}), match="NUL"),
    row("create: volume at /", lambda c: _create(c, volumes={"/": c.vol}), match="cannot be mounted into root directory"),
    row("create: block_network a str", lambda c: _create(c, block_network="yes"), match="block_network must be True or False"),
    row("create: pty an int", lambda c: _create(c, pty=1), match="pty must be True or False"),
    row("create: verbose a list", lambda c: _create(c, verbose=["x"]), match="verbose must be True or False"),
    row("from_name: app_name an int", lambda c: modal.Sandbox.from_name(1, "x"), match="app_name must be the str"),
    row("from_name: include_terminated a str", lambda c: modal.Sandbox.from_name(c.app.name, "x", include_terminated="no"),
        match="include_terminated must be True or False"),
    row("App: name an int", lambda c: modal.App(5), match="Invalid value for `name`"),
    row("App.lookup: create_if_missing a str", lambda c: modal.App.lookup("x", create_if_missing="yes"),
        match="create_if_missing must be True or False"),
    row("Volume.from_name: create_if_missing None", lambda c: modal.Volume.from_name("x", create_if_missing=None),
        match="create_if_missing must be True or False"),
    row("Volume.remove_file: path an int", lambda c: c.vol.remove_file(5), match="must be a str"),
    row("Volume.remove_file: path None", lambda c: c.vol.remove_file(None), match="must be a str"),
    row("Volume.remove_file: recursive a str", lambda c: c.vol.remove_file("/x", recursive="yes"),
        match="recursive must be True or False"),
    row("create: cpu negative", lambda c: _create(c, cpu=-1), match="cpu must be positive"),
    row("create: cpu a str", lambda c: _create(c, cpu="2"), match="cpu must be a number"),
    row("create: cpu NaN", lambda c: _create(c, cpu=float("nan")), match="cpu must be a number"),
    row("create: cpu infinite", lambda c: _create(c, cpu=float("inf")), match="cpu must be a number"),
    row("create: cpu three values", lambda c: _create(c, cpu=(1, 2, 3)), match="3 values"),
    row("create: memory a str", lambda c: _create(c, memory="1G"), match="memory must be a number"),
    row("create: memory limit under request", lambda c: _create(c, memory=(512, 256)), match="at least its request"),
    row("create: ephemeral_disk negative", lambda c: _create(c, ephemeral_disk=-1), match="ephemeral_disk"),
    row("create: ephemeral_disk fractional", lambda c: _create(c, ephemeral_disk=1.5), match="whole number"),
    row("create: port 0", lambda c: _create(c, encrypted_ports=[0]), match="between 1 and 65535"),
    row("create: port 70000", lambda c: _create(c, unencrypted_ports=[70000]), match="between 1 and 65535"),
    row("create: port a str", lambda c: _create(c, unencrypted_ports=["80"]), match="between 1 and 65535"),
    row("create: port True", lambda c: _create(c, unencrypted_ports=[True]), match="between 1 and 65535"),
    row("create: ports an int", lambda c: _create(c, unencrypted_ports=80), match="ports"),
    row("create: ports with block_network", lambda c: _create(c, block_network=True, unencrypted_ports=[80]),
        match="block_network"),
    row("create: CIDR that is not one", lambda c: _create(c, outbound_cidr_allowlist=["nope"]), match="Invalid CIDR"),
    row("create: CIDRs a str", lambda c: _create(c, outbound_cidr_allowlist="10.0.0.0/8"), match="single string"),
    row("create: both CIDR allowlists", lambda c: _create(c, cidr_allowlist=[], outbound_cidr_allowlist=[]),
        match="both"),
    row("create: readiness_probe a str", lambda c: _create(c, readiness_probe="tcp"), match="modal.Probe"),
    row("create: unknown runner", lambda c: _create(c, experimental_options={"runner": "docker"}),
        match="not a runner"),
    row("create: experimental_options a list", lambda c: _create(c, experimental_options=["x"]),
        match="experimental_options"),
    row("create: runtime runc", lambda c: _create(c, runtime="runc"), match="runtime must be one of"),
    row("create: a GPU", lambda c: _create(c, gpu="A100"), UnimplementedError, "gpu=...) is not supported"),
    row("create: no app", lambda c: _create(c, app=None), match="require an App"),
    row("create: an App never looked up", lambda c: _create(c, app=modal.App()), ValueError, "not been initialized"),
    row("create: app a str", lambda c: _create(c, app="my-app"), match="App"),
    # Looking sandboxes up ----------------------------------------------------------------
    row("from_id: malformed", lambda c: modal.Sandbox.from_id("sb-../../x"), match="Invalid sandbox id"),
    row("from_id: an int", lambda c: modal.Sandbox.from_id(5), match="Invalid sandbox id"),
    row("from_id: unknown", lambda c: modal.Sandbox.from_id("sb-" + "a" * 22), NotFoundError, "not found"),
    row("from_name: name an int", lambda c: modal.Sandbox.from_name(c.app.name, 5), match="name"),
    row("from_name: name '..'", lambda c: modal.Sandbox.from_name(c.app.name, ".."), NotFoundError, "No running sandbox"),
    row("list: tags with an int value", lambda c: list(modal.Sandbox.list(app_id=c.app.app_id, tags={"a": 1})),
        match="tags"),
    row("list: app_id an int", lambda c: list(modal.Sandbox.list(app_id=5)), match="app_id"),
    # Image ----------------------------------------------------------------------------------
    row("Image.from_registry: upper case", lambda c: modal.Image.from_registry("UPPER/case"), match="Invalid image"),
    row("Image.from_registry: an int", lambda c: modal.Image.from_registry(5), match="Invalid image reference"),
    row("Image.from_registry: a bad digest", lambda c: modal.Image.from_registry("a@sha256:../x"), match="digest"),
    row("Image.from_registry: unknown argument", lambda c: modal.Image.from_registry("python", bogus=1),
        TypeError, "bogus"),  # Modal's error for a keyword it does not take
    row("Image.from_registry: secret a str", lambda c: modal.Image.from_registry("python", secret="x"),
        match="pysandbox.Secret"),
    row("Image.from_registry: secret without credentials",
        lambda c: modal.Image.from_registry("python", secret=modal.Secret.from_dict({"A": "1"})),
        match="REGISTRY_USERNAME"),
    row("Image.from_id: malformed", lambda c: modal.Image.from_id("im-../x"), NotFoundError, "Invalid image id"),
    row("Image.from_dockerfile: missing", lambda c: modal.Image.from_dockerfile(c.tmp / "nope"), match="not found"),
    row("Image.from_dockerfile: an int", lambda c: modal.Image.from_dockerfile(5), TypeError, ""),
    row("Image.debian_slim: Python 2.7 (at build)", lambda c: modal.Image.debian_slim(python_version="2.7").build(),
        match="2.7"),
    row("Image.pip_install: an int", lambda c: modal.Image.from_scratch().pip_install(5), match="strings"),
    row("Image.pip_install: NUL", lambda c: modal.Image.from_scratch().pip_install("a\0b"), match="NUL"),
    row("Image.run_commands: an int", lambda c: modal.Image.from_scratch().run_commands(5), match="strings"),
    row("Image.run_commands: NUL", lambda c: modal.Image.from_scratch().run_commands("echo\0"), match="NUL"),
    row("Image.apt_install: None", lambda c: modal.Image.from_scratch().apt_install(None), match="strings"),
    row("Image.env: bad name", lambda c: modal.Image.from_scratch().env({"1A": "x"}), match="'1A'"),
    row("Image.env: value an int", lambda c: modal.Image.from_scratch().env({"A": 1}),
        match="Environment variable A must be a string"),
    row("Image.env: a str", lambda c: modal.Image.from_scratch().env("A=1"), match="dict of str to str"),
    row("Image.env: NUL", lambda c: modal.Image.from_scratch().env({"A": "\0"}), match="NUL"),
    row("Image.workdir: relative", lambda c: modal.Image.from_scratch().workdir("rel"), match="absolute"),
    row("Image.workdir: NUL", lambda c: modal.Image.from_scratch().workdir("/a\0"), match="absolute"),
    row("Image.cmd: a str", lambda c: modal.Image.from_scratch().cmd("ls"), match="list of strings"),
    row("Image.cmd: NUL", lambda c: modal.Image.from_scratch().cmd(["ls\0"]), match="list of strings"),
    row("Image.entrypoint: an int", lambda c: modal.Image.from_scratch().entrypoint([1]), match="list of strings"),
    row("Image.add_local_file: remote relative",
        lambda c: modal.Image.from_scratch().add_local_file(c.tmp / "f", "rel"), match="absolute remote_path"),
    row("Image.add_local_file: remote NUL",
        lambda c: modal.Image.from_scratch().add_local_file(c.tmp / "f", "/a\0"), match="absolute remote_path"),
    row("Image.add_local_file: local an int", lambda c: modal.Image.from_scratch().add_local_file(5, "/x"),
        TypeError, ""),
    row("Image.add_local_dir: remote relative", lambda c: modal.Image.from_scratch().add_local_dir(c.tmp, "rel"),
        match="absolute remote_path"),
    row("Image.add_local_dir: ignore an int", lambda c: modal.Image.from_scratch().add_local_dir(c.tmp, "/x", ignore=5),
        match="ignore"),
    row("Image.add_local_python_source: unknown",
        lambda c: modal.Image.from_scratch().add_local_python_source("no_such_module_xyz"), match="no_such_module"),
    row("Image.add_local_python_source: an int", lambda c: modal.Image.from_scratch().add_local_python_source(5),
        match="5"),
    # Volume ---------------------------------------------------------------------------------
    row("Volume.from_name: bad name", lambda c: modal.Volume.from_name("bad name!"), match="Invalid Volume name"),
    row("Volume.from_name: an int", lambda c: modal.Volume.from_name(5), match="Invalid Volume name"),
    row("Volume.from_name: a path", lambda c: modal.Volume.from_name("a/b"), match="Invalid Volume name"),
    row("Volume.from_name: ..", lambda c: modal.Volume.from_name(".."), match="Invalid Volume name"),
    row("Volume.from_name: .", lambda c: modal.Volume.from_name("."), match="Invalid Volume name"),
    row("Volume.from_id: malformed", lambda c: modal.Volume.from_id("vo-../x"), match="Invalid volume id"),
    row("Volume.objects.create: a path", lambda c: modal.Volume.objects.create("a/b"), match="Invalid Volume name"),
    row("Volume.listdir: a glob", lambda c: c.vol.listdir("/*"), match="Glob"),
    row("Volume.listdir: an int", lambda c: c.vol.listdir(5), match="path"),
    row("Volume.read_file: missing", lambda c: list(c.vol.read_file("/nope")), FileNotFoundError, "nope"),
    row("Volume.read_file: climbing out", lambda c: list(c.vol.read_file("../../etc/passwd")), FileNotFoundError,
        "passwd"),
    row("Volume.remove_file: missing", lambda c: c.vol.remove_file("/nope"), FileNotFoundError, "nope"),
    row("Volume.copy_files: an int", lambda c: c.vol.copy_files(5, "/x"), match="src_paths"),
    row("Volume.with_mount_options: sub_path with ..", lambda c: c.vol.with_mount_options(sub_path="../x"),
        match="sub_path"),
    row("Volume.with_mount_options: sub_path absolute", lambda c: c.vol.with_mount_options(sub_path="/x"),
        match="sub_path"),
    # Secret ---------------------------------------------------------------------------------
    row("Secret.from_dict: a list", lambda c: modal.Secret.from_dict(["a"]), match="env_dict"),
    row("Secret.from_dict: value an int", lambda c: modal.Secret.from_dict({"A": 1}), match="env_dict"),
    row("Secret.from_dict: key an int", lambda c: modal.Secret.from_dict({1: "a"}), match="env_dict"),
    row("Secret.from_name: bad name", lambda c: modal.Secret.from_name("bad name!"), match="Invalid Secret name"),
    row("Secret.from_name: an int", lambda c: modal.Secret.from_name(5), match="Invalid Secret name"),
    row("Secret.from_local_environ: a str", lambda c: modal.Secret.from_local_environ("HOME"), match="a list"),
    row("Secret.from_local_environ: missing", lambda c: modal.Secret.from_local_environ(["NO_SUCH_VARIABLE_XYZ"]),
        match="NO_SUCH_VARIABLE_XYZ"),
    row("Secret.objects.create: value an int", lambda c: modal.Secret.objects.create("s", {"A": 1}), match="env_dict"),
    row("Secret.objects.create: a path", lambda c: modal.Secret.objects.create("a/b", {"A": "1"}),
        match="Invalid Secret name"),
    # App ------------------------------------------------------------------------------------
    row("App.lookup: an int", lambda c: modal.App.lookup(5, create_if_missing=True), match="string"),
    row("App.lookup: bad name", lambda c: modal.App.lookup("bad name!", create_if_missing=True),
        match="Invalid App name"),
    row("App.lookup: a path", lambda c: modal.App.lookup("../x", create_if_missing=True), match="Invalid App name"),
    row("App.lookup: hidden", lambda c: modal.App.lookup(".x", create_if_missing=True), match="Invalid App name"),
    row("App.lookup: 65 characters", lambda c: modal.App.lookup("a" * 65, create_if_missing=True),
        match="Invalid App name"),
    row("App.lookup: 300 characters", lambda c: modal.App.lookup("a" * 300, create_if_missing=True),
        match="Invalid App name"),
    row("App.lookup: creating an id", lambda c: modal.App.lookup("ap-123", create_if_missing=True), match="App ID"),
    row("App.lookup: missing", lambda c: modal.App.lookup("missing-app-xyz"), NotFoundError, "missing-app-xyz"),
    # Probe ----------------------------------------------------------------------------------
    row("Probe: bare", lambda c: modal.Probe(), match="Probe.with_tcp"),
    row("Probe.with_tcp: 0", lambda c: modal.Probe.with_tcp(0), match="between 1 and 65535"),
    row("Probe.with_tcp: 70000", lambda c: modal.Probe.with_tcp(70000), match="between 1 and 65535"),
    row("Probe.with_tcp: a str", lambda c: modal.Probe.with_tcp("80"), match="between 1 and 65535"),
    row("Probe.with_tcp: True", lambda c: modal.Probe.with_tcp(True), match="between 1 and 65535"),
    row("Probe.with_tcp: interval 0", lambda c: modal.Probe.with_tcp(80, interval_ms=0), match="interval_ms"),
    row("Probe.with_tcp: interval a str", lambda c: modal.Probe.with_tcp(80, interval_ms="1"), match="interval_ms"),
    row("Probe.with_exec: nothing", lambda c: modal.Probe.with_exec(), match="at least one argument"),
    row("Probe.with_exec: an int", lambda c: modal.Probe.with_exec(1), match="strings"),
    row("Probe.with_exec: NUL", lambda c: modal.Probe.with_exec("a\0"), match="NUL"),
]

ON_A_SANDBOX = [
    # exec -----------------------------------------------------------------------------------
    row("exec: nothing", lambda c: c.sb.exec(), match="needs a command"),
    row("exec: an int", lambda c: c.sb.exec("echo", 1), match="must be strings"),
    row("exec: NUL", lambda c: c.sb.exec("echo", "a\0b"), match="NUL"),
    row("exec: arguments over 64 KiB", lambda c: c.sb.exec("echo", HUGE), match="65536"),
    row("exec: 100000 arguments", lambda c: c.sb.exec(*["x"] * 100_000), match="65536"),
    row("exec: workdir relative", lambda c: c.sb.exec("true", workdir="rel"), match="absolute"),
    row("exec: env value an int", lambda c: c.sb.exec("true", env={"A": 1}), match="must be a string"),
    row("exec: env name with =", lambda c: c.sb.exec("true", env={"A=": "1"}), match="'A='"),
    row("exec: secrets of str", lambda c: c.sb.exec("true", secrets=["x"]), match="Secret objects"),
    row("exec: timeout 0", lambda c: c.sb.exec("true", timeout=0), match="timeout"),
    row("exec: timeout NaN", lambda c: c.sb.exec("true", timeout=float("nan")), match="timeout"),
    row("exec: timeout of 10**7 s", lambda c: c.sb.exec("true", timeout=10**7), match="timeout"),
    row("exec: stdout a str", lambda c: c.sb.exec("true", stdout="pipe"), match="StreamType"),
    row("exec: text a str", lambda c: c.sb.exec("true", text="yes"), match="text must be True or False"),
    row("exec: text None", lambda c: c.sb.exec("true", text=None), match="text must be True or False"),
    row("exec: pty a str", lambda c: c.sb.exec("true", pty="no"), match="pty must be True or False"),
    row("terminate: wait a str", lambda c: c.sb.terminate(wait="x"), match="wait must be True or False"),
    row("wait: raise_on_termination None", lambda c: c.sb.wait(None), match="raise_on_termination must be True or False"),
    row("exec: bufsize 0", lambda c: c.sb.exec("true", bufsize=0), match="bufsize"),
    # the file APIs ---------------------------------------------------------------------------
    row("open: mode rt", lambda c: c.sb.open("/tmp/f", "rt"), ValueError, "Invalid file mode"),
    row("open: mode rw", lambda c: c.sb.open("/tmp/f", "rw"), ValueError, "exactly one of"),
    row("open: mode an int", lambda c: c.sb.open("/tmp/f", 5), ValueError, "Invalid file mode"),
    row("open: path an int", lambda c: c.sb.open(5, "r"), ValueError, "Invalid path"),
    row("open: path with NUL", lambda c: c.sb.open("/tmp/a\0", "w"), ValueError, "Invalid path"),
    row("open: path empty", lambda c: c.sb.open("", "r"), ValueError, "Invalid path"),
    row("ls: path with NUL", lambda c: c.sb.ls("/a\0"), ValueError, "Invalid path"),
    row("mkdir: path with NUL", lambda c: c.sb.mkdir("/a\0"), ValueError, "Invalid path"),
    row("rm: None", lambda c: c.sb.rm(None), ValueError, "Invalid path"),
    row("filesystem.read_bytes: relative", lambda c: c.sb.filesystem.read_bytes("rel"), match="absolute"),
    row("filesystem.read_bytes: an int", lambda c: c.sb.filesystem.read_bytes(5), match="absolute"),
    row("filesystem.read_bytes: NUL", lambda c: c.sb.filesystem.read_bytes("/a\0"), ValueError, "Invalid path"),
    row("filesystem.write_bytes: a str", lambda c: c.sb.filesystem.write_bytes("x", "/tmp/f"), TypeError, "bytes"),
    row("filesystem.write_bytes: arguments swapped", lambda c: c.sb.filesystem.write_bytes("/tmp/f", b"x"),
        TypeError, "bytes"),
    row("filesystem.write_text: bytes", lambda c: c.sb.filesystem.write_text(b"x", "/tmp/f"), TypeError, "str"),
    row("filesystem.write_bytes: relative", lambda c: c.sb.filesystem.write_bytes(b"x", "rel"), match="absolute"),
    row("filesystem.list_files: None", lambda c: c.sb.filesystem.list_files(None), match="absolute"),
    row("filesystem.make_directory: relative", lambda c: c.sb.filesystem.make_directory("rel"), match="absolute"),
    row("filesystem.remove: relative", lambda c: c.sb.filesystem.remove("rel"), match="absolute"),
    row("filesystem.stat: relative", lambda c: c.sb.filesystem.stat("rel"), match="absolute"),
    row("filesystem.copy_to_local: relative", lambda c: c.sb.filesystem.copy_to_local("rel", c.tmp / "out"),
        match="absolute"),
    row("filesystem.copy_from_local: relative", lambda c: c.sb.filesystem.copy_from_local(c.tmp / "f", "rel"),
        match="absolute"),
    row("filesystem.copy_from_local: missing", lambda c: c.sb.filesystem.copy_from_local(c.tmp / "nope", "/tmp/f"),
        FileNotFoundError, "nope"),
    row("filesystem.watch: relative", lambda c: list(c.sb.filesystem.watch("rel", timeout=1)), match="absolute"),
    row("filesystem.watch: timeout negative", lambda c: list(c.sb.filesystem.watch("/tmp", timeout=-1)),
        match="timeout"),
    row("filesystem.watch: filter an int", lambda c: list(c.sb.filesystem.watch("/tmp", filter=5, timeout=1)),
        match="filter"),
    # other methods ---------------------------------------------------------------------------
    row("set_tags: an int value", lambda c: c.sb.set_tags({"a": 1}), match="tags"),
    row("set_tags: None", lambda c: c.sb.set_tags(None), match="tags"),
    row("tunnels: timeout a str", lambda c: c.sb.tunnels(timeout="x"), match="timeout"),
    row("wait_until_ready: timeout 0", lambda c: c.sb.wait_until_ready(timeout=0), match="timeout"),
    row("snapshot_filesystem: timeout 0", lambda c: c.sb.snapshot_filesystem(timeout=0), match="timeout"),
    row("snapshot_filesystem: ttl negative", lambda c: c.sb.snapshot_filesystem(ttl=-1), match="ttl"),
    row("snapshot_directory: relative", lambda c: c.sb.snapshot_directory("rel"), match="absolute"),
    row("reload_volumes: timeout 0", lambda c: c.sb.reload_volumes(timeout=0), match="timeout"),
]


def _state():
    """Every record and store directory a call could add to (a missing one is empty)."""
    root = settings.state_dir()
    return {name: sorted(p.name for p in (root / name).iterdir()) if (root / name).is_dir() else []
            for name in ("sandboxes", "volumes", "apps", "secrets", "images/layers", "images/tmp", "images/refs")}


@pytest.fixture
def ctx(app, tmp_path):
    (tmp_path / "f").write_text("local file\n")
    modal.Volume.objects.create("bad-input", allow_existing=True)
    return types.SimpleNamespace(app=app, tmp=tmp_path, sb=None, vol=modal.Volume.from_name("bad-input"))


@pytest.fixture(scope="module")
def target(app, runner):
    sb = modal.Sandbox.create("sleep", "600", app=app)
    yield sb
    sb.terminate(wait=True)


def _refused(call, ctx, exception, match):
    before = _state()
    with pytest.raises(Exception) as raised:
        result = call(ctx)
        if isinstance(result, modal.Sandbox):  # let through: end it, then fail
            result.terminate()
    assert type(raised.value) is exception, f"{type(raised.value).__module__}.{type(raised.value).__name__}: " \
                                            f"{raised.value}"
    assert match in str(raised.value)
    assert _state() == before, "the call did work before refusing"


@pytest.mark.parametrize("call, exception, match", NO_SANDBOX_NEEDED)
def test_bad_input(ctx, call, exception, match):
    _refused(call, ctx, exception, match)


@pytest.mark.parametrize("call, exception, match", ON_A_SANDBOX)
def test_bad_input_to_a_sandbox(ctx, target, call, exception, match):
    ctx.sb = target
    _refused(call, ctx, exception, match)
    assert target.poll() is None
