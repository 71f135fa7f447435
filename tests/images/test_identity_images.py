"""Issue 13 on real images: a Debian image from a registry (debian_slim's tree, served on
loopback) installs packages with apt, which drops to its _apt user, at build time and at run
time; a Dockerfile's USER runs the steps after it as that user; files keep their owners
through layers and snapshots; runuser and sudo switch user as on Modal."""

import pytest

import pysandbox as modal
from pysandbox import identity
from pysandbox._state import paths

pytestmark = [pytest.mark.rootless, pytest.mark.skipif(
    identity.current().size == 1,
    reason="this caller has no subordinate id range: apt cannot drop to _apt (tests/sandbox/test_identity_single.py "
           "covers that mode)")]

def run(sb, script):
    p = sb.exec("sh", "-c", script)
    out, err = p.stdout.read(), p.stderr.read()
    assert p.wait() == 0, err
    return out


def test_the_registry_image_keeps_its_owners(debian_ref, sandboxes):
    sb = sandboxes(image=modal.Image.from_registry(debian_ref))
    assert run(sb, "stat -c %U /var/cache/apt/archives/partial") == "_apt\n"
    assert run(sb, "apt-config dump | grep -c 'APT::Sandbox::User \"root\"' || true") == "0\n"  # no workaround


def test_apt_install_in_a_registry_image_build(debian_ref, sandboxes):
    sb = sandboxes(image=modal.Image.from_registry(debian_ref).apt_install("jq"))
    assert run(sb, "echo '{\"a\": 7}' | jq .a") == "7\n"


def test_apt_get_install_at_run_time_and_sudo(debian_ref, sandboxes):
    sb = sandboxes(image=modal.Image.from_registry(debian_ref))
    run(sb, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null")
    assert run(sb, "sudo -u nobody id -un") == "nobody\n"
    assert run(sb, "runuser -u nobody -- id -u") == "65534\n"
    assert run(sb, "su nobody -s /bin/sh -c 'id -u'") == "65534\n"
    # apt left files of _apt and others in the sandbox's upper directory: the teardown removes them all.
    upper = paths.sandbox_dir(sb.object_id) / "upper"
    sb.terminate(wait=True)
    assert not upper.exists()


def test_dockerfile_user_runs_later_steps_as_that_user(debian_ref, sandboxes, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {debian_ref}\n"
        "RUN useradd --create-home --uid 1000 app\n"
        "USER app\n"
        "RUN id -un > /home/app/who && touch /home/app/made-by-app\n"
        "WORKDIR /home/app\n")
    sb = sandboxes(image=modal.Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path))
    assert run(sb, "cat who; stat -c '%U:%G' made-by-app") == "app\napp:app\n"
    # As on Modal, the sandbox's own processes run as root whatever the image's USER (docs/ARCHITECTURE.md).
    assert run(sb, "id -u") == "0\n"


def test_snapshot_keeps_owners(debian_ref, sandboxes):
    sb = sandboxes(image=modal.Image.from_registry(debian_ref))
    run(sb, "useradd --uid 1234 keeper && echo kept > /srv/f && chown keeper:keeper /srv/f && chmod 600 /srv/f")
    image = sb.snapshot_filesystem()
    again = sandboxes(image=image)
    assert run(again, "stat -c '%U:%G %a' /srv/f") == "keeper:keeper 600\n"
    assert run(again, "runuser -u keeper -- cat /srv/f") == "kept\n"
