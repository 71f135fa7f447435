"""image/docker_config: which Docker config entry answers for which registry."""

import base64
import json

import pytest

from pysandbox.exception import ImageBuildError
from pysandbox.image import docker_config


def _config(tmp_path, monkeypatch, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def _auth(user, password):
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_auths_keys_in_every_form_docker_writes(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, {"auths": {
        "https://index.docker.io/v1/": _auth("hub", "p1"), "ghcr.io": _auth("gh", "p:2"),
        "http://localhost:5000": {"username": "local", "password": "p3"}, "other.io": {}}})
    assert docker_config.credentials_for("registry-1.docker.io") == ("hub", "p1")
    assert docker_config.credentials_for("ghcr.io") == ("gh", "p:2")  # a password may hold ':'
    assert docker_config.credentials_for("localhost:5000") == ("local", "p3")
    assert docker_config.credentials_for("other.io") is None
    assert docker_config.credentials_for("quay.io") is None


def test_no_config_means_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "absent"))
    assert docker_config.credentials_for("ghcr.io") is None


@pytest.mark.parametrize("config, match", [
    ({"auths": {"ghcr.io": {"auth": "not base64!"}}}, "not base64"),
    ({"credsStore": "bad name/../x"}, "not a helper name"),
    ({"credHelpers": {"ghcr.io": "absent-helper-xyz"}}, "not on PATH"),
    (["not", "an", "object"], "not a JSON object"),
])
def test_bad_configs_are_clear_errors(tmp_path, monkeypatch, config, match):
    _config(tmp_path, monkeypatch, config)
    with pytest.raises(ImageBuildError, match=match):
        docker_config.credentials_for("ghcr.io")


def test_a_helper_answering_not_found_means_none(tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-none"
    helper.write_text("#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    _config(tmp_path, monkeypatch, {"credHelpers": {"ghcr.io": "none"}, "auths": {"ghcr.io": _auth("a", "b")}})
    assert docker_config.credentials_for("ghcr.io") is None  # the helper wins over auths, as in docker
