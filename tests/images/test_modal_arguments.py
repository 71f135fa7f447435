"""Modal's keyword arguments of the Image constructors and steps, on real builds: each works,
has no local meaning (accepted, README), or raises UnimplementedError naming it."""

import textwrap
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox import _image
from pysandbox.exception import InvalidError, UnimplementedError
from pysandbox.image import AUTO_DOCKERIGNORE, hostpython

from .conftest import builder_sandbox_count, run

pytestmark = pytest.mark.rootless  # needs docker-registry and skopeo (.ci/run installs them)



def test_from_registry_setup_commands_secrets_and_build_args(registry, sandboxes):
    image = modal.Image.from_registry(
        f"{registry}/test/tiny:1",
        setup_dockerfile_commands=["ARG WHO=nobody", "ENV GREETING=hi", "RUN echo $GREETING $WHO $TOKEN > /etc/setup"],
        secrets=[modal.Secret.from_dict({"TOKEN": "s3cret"})], build_args={"WHO": "you"}, gpu_config=None,
    ).run_commands("read s < /etc/setup; echo after $s > /etc/after")  # the setup lines ran first
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "read a < /etc/after; echo $a; echo token=$TOKEN greeting=$GREETING") == \
        "after hi you s3cret\ntoken= greeting=hi\n"  # the secret reached the build only


def test_from_registry_force_build_rebuilds(registry):
    image = modal.Image.from_registry(f"{registry}/library/tiny:1").run_commands("echo forced > /forced")
    image.build()
    before = builder_sandbox_count()
    modal.Image.from_registry(f"{registry}/library/tiny:1").run_commands("echo forced > /forced").build()
    assert builder_sandbox_count() == before  # cached
    modal.Image.from_registry(f"{registry}/library/tiny:1", force_build=True).run_commands(
        "echo forced > /forced").build()
    assert builder_sandbox_count() == before + 2  # the pull (unpacked in a sandbox) and the step, again


def test_from_registry_arguments_it_refuses(registry):
    tag = f"{registry}/test/tiny:1"
    with pytest.raises(UnimplementedError, match="image_registry_config"):
        modal.Image.from_registry(tag, image_registry_config=object())
    with pytest.raises(TypeError, match="'no_such_option'"):
        modal.Image.from_registry(tag, no_such_option=1)
    with pytest.raises(InvalidError, match="FROM is not allowed"):
        modal.Image.from_registry(tag, setup_dockerfile_commands=["FROM scratch"])
    with pytest.raises(InvalidError, match="Dockerfile line 1 `FROBNICATE x`"):
        modal.Image.from_registry(tag, setup_dockerfile_commands=["FROBNICATE x"])
    with pytest.raises(UnimplementedError, match="from_aws_ecr"):
        modal.Image.from_aws_ecr(tag)
    with pytest.raises(UnimplementedError, match="from_gcp_artifact_registry"):
        modal.Image.from_gcp_artifact_registry(tag)


@pytest.fixture
def context(tmp_path, registry):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.txt").write_text("main\n")
    (tmp_path / "app" / "secret.key").write_text("key\n")
    (tmp_path / ".dockerignore").write_text("**/*.key\n")  # anchored at the context's root, as docker
    (tmp_path / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {registry}/test/tiny:1
        COPY app /app
        RUN echo "$TOKEN $MODE" > /etc/build-env
        """))
    return tmp_path


def listing(image, sandboxes):
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    return run(sb, "cd /app; for f in *; do echo $f; done").split()


def test_from_dockerfile_ignore(context, sandboxes):
    assert _image.AUTO_DOCKERIGNORE is AUTO_DOCKERIGNORE and repr(AUTO_DOCKERIGNORE) == "modal._image.AUTO_DOCKERIGNORE"
    dockerfile = context / "Dockerfile"
    default = modal.Image.from_dockerfile(dockerfile, context_dir=context)
    explicit = modal.Image.from_dockerfile(dockerfile, context_dir=context, ignore=AUTO_DOCKERIGNORE)
    assert listing(default, sandboxes) == listing(explicit, sandboxes) == ["main.txt"]  # .dockerignore
    patterns = modal.Image.from_dockerfile(dockerfile, context_dir=context, ignore=["**/*.txt"])
    assert listing(patterns, sandboxes) == ["secret.key"]  # the patterns replace .dockerignore
    predicate = modal.Image.from_dockerfile(dockerfile, context_dir=context,
                                            ignore=lambda path: path == Path("app/main.txt"))
    assert listing(predicate, sandboxes) == ["secret.key"]  # a predicate on context-relative paths
    (context / "Dockerfile.dockerignore").write_text("app/main.txt\n")  # beside the Dockerfile: it wins
    assert listing(modal.Image.from_dockerfile(dockerfile, context_dir=context), sandboxes) == ["secret.key"]
    with pytest.raises(InvalidError, match="ignore must be"):
        modal.Image.from_dockerfile(dockerfile, context_dir=context, ignore="*.txt")


def test_from_dockerfile_secrets_env_gpu_and_registry_secret(context, sandboxes):
    image = modal.Image.from_dockerfile(context / "Dockerfile", context_dir=context, gpu="A10G",
                                        secrets=[modal.Secret.from_dict({"TOKEN": "t0k"})], env={"MODE": "m"})
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "read e < /etc/build-env; echo $e; echo token=$TOKEN") == "t0k m\ntoken=\n"
    with pytest.raises(InvalidError, match="REGISTRY_USERNAME"):  # registry_secret is the FROM's credentials
        modal.Image.from_dockerfile(context / "Dockerfile", context_dir=context,
                                    registry_secret=modal.Secret.from_dict({"X": "y"}))


def test_dockerfile_commands(registry, context, sandboxes):
    image = modal.Image.from_registry(f"{registry}/test/tiny:1").dockerfile_commands(
        ["ARG V=1", "ENV STAGE=$V", "COPY app /copied"], "RUN echo $STAGE $TOKEN > /etc/stage",
        context_dir=context, build_args={"V": "2"}, secrets=[modal.Secret.from_dict({"TOKEN": "x"})])
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "read s < /etc/stage; echo $s; cd /copied; for f in *; do echo $f; done") == "2 x\nmain.txt\n"
    with pytest.raises(UnimplementedError, match="context_files"):
        modal.Image.from_registry(f"{registry}/test/tiny:1").dockerfile_commands("RUN true", context_files={"/a": "b"})


def host_series():
    """A series this caller can copy from the host (an unprivileged caller cannot read root's pyenv)."""
    for series in ("3.12", "3.10", "3.13", "3.11"):
        try:
            hostpython.find(series)
            return series
        except InvalidError:
            continue
    pytest.skip("this caller finds no self-contained host Python to copy (tests/images/test_python_versions.py "
                "covers the failure)")


def test_add_python_on_registry_images(debian_ref, tmp_path, sandboxes, capfd):
    """add_python before setup_dockerfile_commands, as Modal; a library the image lacks comes from the host."""
    series = host_series()
    image = modal.Image.from_registry(debian_ref, add_python=series,
                                      setup_dockerfile_commands=["RUN python --version > /etc/setup-python"])
    sb = sandboxes("sleep", "300", image=image)
    setup, version = run(sb, "cat /etc/setup-python; python -c 'import ssl, sqlite3, sys; print(sys.version)'"
                         ).splitlines()
    assert setup.startswith(f"Python {series}.") and version.startswith(series + ".")
    (tmp_path / "Dockerfile").write_text(f"FROM {debian_ref}\nRUN rm /usr/lib/x86_64-linux-gnu/libsqlite3.so.0*\n")
    with modal.enable_output():
        image = modal.Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path, add_python=series).build()
    err = capfd.readouterr().err
    if "add_python" in err:  # built now, not by the other runner's pass
        assert "the image lacks libsqlite3.so.0: copied from the host" in err
    sb = sandboxes("sleep", "300", image=image)
    assert run(sb, "python -c 'import sqlite3; print(sqlite3.sqlite_version)' >/dev/null; "
                   "ls /usr/local/lib/libsqlite3.so.0") == "/usr/local/lib/libsqlite3.so.0\n"
    with pytest.raises(InvalidError, match="add_python='2.7'"):
        modal.Image.from_registry(debian_ref, add_python="2.7").build()


def test_steps_accept_gpu_and_refuse_what_has_no_local_equivalent(tmp_path):
    base = modal.Image.debian_slim()
    for step in (base.run_commands("true", gpu="H100"), base.pip_install("x", gpu="any"),
                 base.apt_install("x", gpu="T4"), base.uv_pip_install("x", gpu="A100")):
        assert step is not base  # lazily accepted: builds run on this host's CPUs
    refused = {
        "pip_install_private_repos": lambda: base.pip_install_private_repos("github.com/a/b", git_user="u"),
        "poetry_install_from_file": lambda: base.poetry_install_from_file("pyproject.toml"),
        "uv_sync": lambda: base.uv_sync(),
        "micromamba_install": lambda: base.micromamba_install("numpy"),
        "micromamba": lambda: modal.Image.micromamba(),
        "run_function": lambda: base.run_function(print),
        "shell": lambda: base.shell(["/bin/bash", "-c"]),
        "requirements": lambda: base.uv_pip_install("x", requirements=["r.txt"]),
        "volumes": lambda: base.run_commands("true", volumes={"/v": object()}),
    }
    for name, call in refused.items():
        with pytest.raises(UnimplementedError, match=name):
            call()


def test_pip_install_from_requirements_and_pyproject(debian, tmp_path, sandboxes):
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = []\n'
                                             '[project.optional-dependencies]\nextra = ["six==1.16.0"]\n')
    assert debian.pip_install_from_pyproject(str(tmp_path / "pyproject.toml"), ["extra"])._steps[-1].command \
        .endswith("six==1.16.0")
    with pytest.raises(InvalidError, match="no optional-dependencies 'nope'"):
        debian.pip_install_from_pyproject(str(tmp_path / "pyproject.toml"), ["nope"])
    image = debian.pip_install_from_requirements(str(tmp_path / "requirements.txt"))
    sb = sandboxes(image=image)
    assert run(sb, "python -c 'import six; print(six.__version__)'") == "1.16.0\n"


def test_imports_swallows_what_only_the_image_has():
    with modal.Image.debian_slim().imports():
        import a_module_only_the_image_has  # noqa: F401
    with pytest.warns(UserWarning, match="non-ImportError"):
        with modal.Image.debian_slim().imports():
            raise ValueError("x")
