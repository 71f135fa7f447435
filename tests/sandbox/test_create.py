"""Sandbox.create: validation before any work, apps, secrets, verbose logging."""

import asyncio
import io
import os
import sys

import pytest

import pysandbox as modal
from pysandbox._state import paths
from pysandbox.exception import InvalidError, NotFoundError

pytestmark = pytest.mark.rootless


def _sandbox_count():
    directory = paths.sandboxes_dir()
    return len(os.listdir(directory)) if directory.exists() else 0


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        ((1,), {}, InvalidError),
        (("x" * 70000,), {}, InvalidError),
        (("a\0",), {}, InvalidError),
        ((), {"workdir": "repo"}, InvalidError),
        ((), {"env": {"BAD-KEY": "1"}}, InvalidError),
        ((), {"env": {"K": 1}}, InvalidError),
        ((), {"timeout": None}, InvalidError),
        ((), {"timeout": 0}, InvalidError),
        ((), {"timeout": "10"}, InvalidError),
        ((), {"idle_timeout": -5}, InvalidError),
        ((), {"name": "bad name"}, InvalidError),
        ((), {"name": "ap-123"}, InvalidError),
        ((), {"name": "x" * 65}, InvalidError),
        ((), {"runtime": "docker"}, InvalidError),
        ((), {"gpu": ["T4", "A10G"]}, InvalidError),
        ((), {"block_network": True, "encrypted_ports": [8080]}, InvalidError),
        ((), {"block_network": True, "outbound_cidr_allowlist": ["10.0.0.0/8"]}, InvalidError),
        ((), {"cidr_allowlist": ["1.2.3.4/32"], "outbound_cidr_allowlist": ["1.2.3.4/32"]}, InvalidError),
        ((), {"secrets": ["not-a-secret"]}, InvalidError),
    ],
)
def test_create_validation_before_any_work(app, args, kwargs, error):
    before = _sandbox_count()
    with pytest.raises(error):
        modal.Sandbox.create(*args, app=app, **kwargs)
    assert _sandbox_count() == before


def test_create_needs_an_app():
    with pytest.raises(InvalidError, match="App"):
        modal.Sandbox.create()
    with pytest.raises(ValueError, match="initialized"):
        modal.Sandbox.create(app=modal.App("never-run"))


def test_app_lookup(state_home):
    with pytest.raises(NotFoundError):
        modal.App.lookup("missing-app")
    app = modal.App.lookup("lookup-app", create_if_missing=True)
    assert app.app_id.startswith("ap-")
    assert modal.App.lookup("lookup-app").app_id == app.app_id
    assert modal.App.lookup(app.app_id).app_id == app.app_id
    with pytest.raises(InvalidError):
        modal.App.lookup(app.app_id, create_if_missing=True)


def test_ephemeral_app_run(sandboxes):
    app = modal.App("ephemeral")
    with app.run():
        sb = modal.Sandbox.create("true", app=app)
        sb.wait()
        assert sb.returncode == 0
    assert app.app_id is None

    async def run_async():
        async with app.run():
            sb = await modal.Sandbox.create.aio("true", app=app)
            await sb.wait.aio()
            return sb.returncode

    assert asyncio.run(run_async()) == 0


def test_secrets_and_env(sandboxes, monkeypatch):
    monkeypatch.setenv("FROM_LOCAL", "local-value")
    sb = sandboxes(
        secrets=[modal.Secret.from_dict({"MY_SECRET": "hello"}), modal.Secret.from_local_environ(["FROM_LOCAL"])],
        env={"PLAIN": "p", "GONE": None},
    )
    out = sb.exec("sh", "-c", "echo $MY_SECRET $FROM_LOCAL $PLAIN ${GONE-unset}").stdout.read()
    assert out == "hello local-value p unset\n"


def test_secret_validation(monkeypatch):
    with pytest.raises(InvalidError):
        modal.Secret.from_dict({"A": 1})
    with pytest.raises(InvalidError):
        modal.Secret.from_dict(["A"])
    monkeypatch.delenv("SURELY_NOT_SET", raising=False)
    with pytest.raises(InvalidError, match="SURELY_NOT_SET"):
        modal.Secret.from_local_environ(["SURELY_NOT_SET"])
    assert "v4lue" not in repr(modal.Secret.from_dict({"K": "v4lue"}))


def test_secret_values_stay_out_of_records_and_argv(sandboxes):
    sb = sandboxes(secrets=[modal.Secret.from_dict({"TOKEN": "very-secret-value"})])
    record = (paths.sandbox_dir(sb.object_id) / "record.json").read_text()
    assert "very-secret-value" not in record
    import psutil

    for proc in psutil.Process(sb._record.supervisor.pid).children(recursive=True) + [
        psutil.Process(sb._record.supervisor.pid)
    ]:
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            continue  # a short-lived helper (nft loading the egress rules) that exited meanwhile
        assert "very-secret-value" not in " ".join(cmdline)


def test_verbose_logs_operations_without_secret_values(sandboxes, capsys):
    sb = sandboxes(verbose=True, secrets=[modal.Secret.from_dict({"TOKEN": "hidden-value"})])
    p = sb.exec("python", "-c", "print('hello')")
    assert p.stdout.read() == "hello\n"
    err = capsys.readouterr().err
    assert "Sandbox exec started: python -c print('hello')" in err
    assert "hidden-value" not in err


def test_verbose_logs_follow_a_redirected_stderr(sandboxes, monkeypatch):
    sb = sandboxes(verbose=True)
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)  # after the log handler was installed
    sb.exec("true").wait()
    assert "Sandbox exec started: true" in redirected.getvalue()


PROBE_SITE = "import sys; print(sys.prefix, [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))])"


@pytest.mark.rootless
def test_the_host_images_python_starts_clean_of_the_callers_packages(sandboxes, monkeypatch):
    # What the caller's interpreter has installed stays out of sandboxed code's sys.path (it
    # starts as a fresh virtualenv would) unless PYSANDBOX_HOST_SITE_PACKAGES=1 asks for it;
    # a virtualenv made inside still gets pip (ensurepip is the standard library's).
    sb = sandboxes()
    assert sb.exec("python", "-c", PROBE_SITE).stdout.read() == "/__pysandbox []\n"
    assert sb.exec("python", "-c", "import ensurepip; print(ensurepip.version())").stdout.read().strip()
    monkeypatch.setenv("PYSANDBOX_HOST_SITE_PACKAGES", "1")
    prefix, packages = sandboxes().exec("python", "-c", PROBE_SITE).stdout.read().split(" ", 1)
    assert prefix == os.path.realpath(sys.base_prefix) and packages.strip() != "[]"
