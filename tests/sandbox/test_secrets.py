"""Named secrets, dotenv secrets, and the `pysandbox secret` command."""

import os
import stat
import subprocess
import sys

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._state import paths
from pysandbox.exception import AlreadyExistsError, InvalidError, NotFoundError

pytestmark = pytest.mark.rootless


def test_named_secret_lifecycle(sandboxes):
    modal.Secret.objects.create("db-creds", {"DB_USER": "admin", "DB_PASS": "s3cr3t-value"})
    with pytest.raises(AlreadyExistsError):
        modal.Secret.objects.create("db-creds", {"X": "y"})
    # Modal: allow_existing=True makes it a no-op, "existing values are kept" (it replaced them).
    modal.Secret.objects.create("db-creds", {"X": "y"}, allow_existing=True)
    assert modal.Secret.from_name("db-creds").info().keys == ["DB_PASS", "DB_USER"]
    path = settings.state_dir() / "secrets" / "db-creds.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = modal.Secret.from_name("db-creds", required_keys=["DB_USER"])
    assert "s3cr3t-value" not in repr(secret)
    sb = sandboxes(secrets=[secret])
    assert sb.exec("sh", "-c", "echo $DB_USER $DB_PASS").stdout.read() == "admin s3cr3t-value\n"
    assert "s3cr3t-value" not in (paths.sandbox_dir(sb.object_id) / "record.json").read_text()
    secret.update({"DB_PASS": "rotated"})
    assert secret.info().keys == ["DB_PASS", "DB_USER"]
    assert sb.exec("sh", "-c", "echo $DB_PASS", secrets=[secret]).stdout.read() == "rotated\n"
    assert "db-creds" in [s.name for s in modal.Secret.objects.list()]
    modal.Secret.objects.delete("db-creds")
    with pytest.raises(NotFoundError):
        modal.Secret.objects.delete("db-creds")
    modal.Secret.objects.delete("db-creds", allow_missing=True)


def test_missing_named_secret_fails_before_any_work(app):
    with pytest.raises(NotFoundError, match="never-created"):
        modal.Sandbox.create(app=app, secrets=[modal.Secret.from_name("never-created")])
    modal.Secret.objects.create("partial", {"A": "1"})
    with pytest.raises(NotFoundError, match="B"):
        modal.Sandbox.create(app=app, secrets=[modal.Secret.from_name("partial", required_keys=["A", "B"])])
    with pytest.raises(InvalidError):
        modal.Secret.from_name("bad/name")
    with pytest.raises(InvalidError):
        modal.Secret.objects.create("x", {"A": 1})


def test_dotenv_searches_upward(sandboxes, tmp_path):
    (tmp_path / ".env").write_text("FROM_DOTENV=yes\nEMPTY=\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    sb = sandboxes(secrets=[modal.Secret.from_dotenv(nested)])
    assert sb.exec("sh", "-c", "echo $FROM_DOTENV.${EMPTY-unset}").stdout.read() == "yes.\n"


def test_secret_cli_never_prints_values(state_home):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pysandbox", *args], capture_output=True, text=True,
                              env=os.environ)

    assert cli("secret", "create", "cli-secret", "TOKEN=abc123", "OTHER=x").returncode == 0
    assert cli("secret", "create", "cli-secret", "TOKEN=y").returncode == 1
    assert cli("secret", "create", "--force", "cli-secret", "TOKEN=abc123", "NEW=x").returncode == 0  # replaced
    listing = cli("secret", "ls")
    assert "cli-secret\tNEW,TOKEN" in listing.stdout and "abc123" not in listing.stdout
    assert cli("secret", "rm", "cli-secret").returncode == 0
    gone = cli("secret", "rm", "cli-secret")
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1 and "Traceback" not in gone.stderr
