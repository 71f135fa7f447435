"""Real-world-style Dockerfiles (tests/images/dockerfiles/*), each built with Image.from_dockerfile
and run in a sandbox. Their base images come from a loopback registry (tests reach no Docker Hub):
the build_args point their `ARG *_IMAGE` at debian_slim's tree (debian_ref) or the tiny shell image."""

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

import pysandbox as modal

from .conftest import run

pytestmark = pytest.mark.rootless

CORPUS = Path(__file__).with_name("dockerfiles")



def context(tmp_path, name):
    """A copy of the corpus entry (the build writes nothing there, but tests add files git cannot hold)."""
    return Path(shutil.copytree(CORPUS / name, tmp_path / name))


def wheel(directory):
    """greet-1.0-py3-none-any.whl: a pure-Python wheel pip installs with no index."""
    directory.mkdir()
    files = {"greet.py": "def hello(name):\n    return f'hello {name}'\n",
             "greet-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n",
             "greet-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + "greet-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(directory / "greet-1.0-py3-none-any.whl", "w") as whl:
        for name, text in {**files, "greet-1.0.dist-info/RECORD": record}.items():
            whl.writestr(name, text)


def test_python_app(debian_ref, tmp_path, sandboxes):
    ctx = context(tmp_path, "python-app")
    wheel(ctx / "wheels")
    (ctx / ".git").mkdir()
    (ctx / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ctx / ".env").write_text("SECRET=1\n")
    (ctx / "app" / "__pycache__").mkdir()
    (ctx / "app" / "__pycache__" / "stale.pyc").write_text("")
    image = modal.Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx, build_args={"PYTHON_IMAGE": debian_ref})
    sb = sandboxes(image=image)
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "hello world\n"  # CMD ["python", "-m", "app"] in WORKDIR, with the wheel installed
    sb = sandboxes("sleep", "300", image=image)
    assert run(sb, "pwd; echo $APP_HOME $PYTHONUNBUFFERED; cat BUILD_INFO whoami.txt; stat -c %U user-owned app") == \
        "/srv/greeter\n/srv/greeter 1\nbuilt for production\napp\napp\napp\n"
    # .dockerignore: .git, .env, tests/, caches and *.md left out, README.md taken back by `!`.
    assert run(sb, "LC_ALL=C ls -A; ls -A app") == ".dockerignore\nBUILD_INFO\nREADME.md\napp\n" \
        "greet-1.0-py3-none-any.whl\nrequirements.txt\nuser-owned\nwheels\nwhoami.txt\n__main__.py\n__pycache__\n"
    assert run(sb, "ls app/__pycache__") .startswith("__main__.cpython")  # compileall's, not the context's


def test_node_style_multi_stage(debian_ref, tmp_path, sandboxes):
    ctx = context(tmp_path, "node-app")
    image = modal.Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx, build_args={"NODE_IMAGE": debian_ref})
    sb = sandboxes("sleep", "300", image=image)  # the `devtools` stage (RUN exit 1) is never built
    assert run(sb, "pwd; echo $NODE_ENV; echo $PATH | cut -d: -f1,2; ls -A; ls -A node_modules; "
                   "stat -c %a dist/server.min.js; cat dist/util.min.js") == \
        "/usr/src/app\nproduction\n/usr/src/app/node_modules/.bin:/usr/local/sbin\ndist\nnode_modules\n" \
        "package.json\n.installed-from\nleft-pad\n755\nmodule.exports = 1\n"
    assert image._resolve().cmd == ("node", "dist/server.min.js")


def test_go_style_build_ships_one_binary_on_a_minimal_image(registry, debian_ref, tmp_path, sandboxes):
    ctx = context(tmp_path, "go-build")
    image = modal.Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx, build_args={
        "BUILDER_IMAGE": debian_ref, "RUNTIME_IMAGE": f"{registry}/test/tiny:1", "COMMIT": "abc123"})
    sb = sandboxes(image=image)  # ENTRYPOINT, with the base image's CMD dropped
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "server dev (abc123) listen=:8080 \n"
    sb = sandboxes("--flag", image=image)  # arguments go to the ENTRYPOINT, as with docker run
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "server dev (abc123) listen=:8080 --flag\n"
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image.entrypoint([]))
    assert run(sb, "test -e /out || test -e /src || echo only-the-binary") == "only-the-binary\n"


def test_apt_heavy_image(debian_ref, tmp_path, sandboxes):
    ctx = context(tmp_path, "apt-tools")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        script = b"#!/bin/sh\necho hello from tools\n"
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(script), 0o755
        archive.addfile(info, io.BytesIO(script))
    (ctx / "tools.tar.gz").write_bytes(buffer.getvalue())
    image = modal.Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx, build_args={"BASE_IMAGE": debian_ref})
    sb = sandboxes("sleep", "300", image=image)
    assert run(sb, "pwd; cat /etc/jq-works /etc/shell-used /etc/motd; hello; echo $TOOLS_HOME; "
                   "jq --version | cut -c1-3; test -e /var/lib/apt/lists/partial || echo cleaned") == \
        '/data\n{\n  "ok": true\n}\nshell: /bin/bash\nwelcome\nhello from tools\n/opt/tools\njq-\ncleaned\n'
