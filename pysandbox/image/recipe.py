"""modal.Image: a lazy, immutable recipe. Builder methods return new Images;
nothing is built until a sandbox uses the image or `build()` is called."""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import PurePosixPath
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .._aio import offload, synchronized
from .._core.spec import RootFS
from .._validate import env_mapping
from ..exception import InvalidError, UnimplementedError
from ..secret import Secret, merge_env
from . import build, dockerfile, reference, store
from .local import AddLocal, Ignore
from .pull import FromRegistry, credentials_of
from .steps import Config, DebianSlim, Existing, Run, Scratch, env_pairs


def NON_PYTHON_FILES(path) -> bool:
    """Modal's default for add_local_python_source: keep only .py files, never dot-files or caches."""
    name = os.path.basename(path)
    return name.startswith(".") or name == "__pycache__" or (os.path.isfile(path) and not name.endswith(".py"))


def _flatten(items: Sequence[Any], what: str) -> List[str]:
    flat: List[str] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            flat += _flatten(item, what)
        elif isinstance(item, str) and "\0" not in item:
            flat.append(item)
        else:
            got = "a string with a NUL byte" if isinstance(item, str) else type(item).__name__
            raise InvalidError(f"{what} must be strings or lists of strings, got {got}")
    return flat


def _check_step_options(method: str, gpu: Any = None, **unsupported: Any) -> None:
    if gpu is not None:
        raise InvalidError(f"Image.{method}(gpu=...): GPUs are not available to pysandbox builds; remove gpu=.")
    for name, value in unsupported.items():
        if value:
            raise UnimplementedError(f"Image.{method}({name}=...) is not supported by pysandbox yet.")


def _check_env(env: Optional[Dict[str, str]], method: str) -> Dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise InvalidError(f"Image.{method}: env must be a dict of str to str")
    return env_mapping(env)


def _secret_env(secrets: Optional[Sequence[Secret]]) -> Tuple[Tuple[str, str], ...]:
    return env_pairs(merge_env(None, secrets))  # the sandbox's rules for secrets, names and values


class Image:
    """A recipe of layers; see docs/ARCHITECTURE.md (Images)."""

    def __init__(self, steps: Tuple[Any, ...], force_from: Optional[int] = None) -> None:
        self._steps = steps
        self._force_from = force_from  # force_build=True: this step and all after it are rebuilt
        self._rootfs: Optional[RootFS] = None

    def _extend(self, *steps: Any, force: bool = False) -> "Image":
        forced = len(self._steps) if force and self._force_from is None else self._force_from
        return Image(self._steps + steps, forced)

    def __repr__(self) -> str:
        return f"Image({build.build_description(self._steps)})"

    # Bases ------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: Optional[str] = None, force_build: bool = False) -> "Image":
        """Debian with Python (python_version: None = this Python's major.minor) and pip."""
        return Image((DebianSlim(python_version),), 0 if force_build else None)

    @staticmethod
    def from_scratch(force_build: bool = False) -> "Image":
        """An empty image."""
        return Image((Scratch(),), 0 if force_build else None)

    @staticmethod
    def from_registry(tag: str, secret: Optional[Secret] = None, *, setup_dockerfile_commands: Sequence[str] = (),
                      force_build: bool = False, add_python: Optional[str] = None, **kwargs: Any) -> "Image":
        """An image from an OCI/Docker registry (Docker Hub names, or host/repo:tag); linux/amd64."""
        _check_step_options("from_registry", add_python=add_python,
                            setup_dockerfile_commands=setup_dockerfile_commands)
        if kwargs:
            raise InvalidError(f"Image.from_registry() got unexpected arguments: {', '.join(sorted(kwargs))}")
        return Image((FromRegistry(reference.parse(tag), credentials_of(secret)),), 0 if force_build else None)

    @staticmethod
    def from_dockerfile(path: Any, *, force_build: bool = False, context_dir: Any = None, ignore: Any = None,
                        build_args: Optional[Dict[str, str]] = None, registry_secret: Optional[Secret] = None,
                        secrets: Optional[Sequence[Secret]] = None, env: Optional[Dict[str, str]] = None,
                        gpu: Any = None, add_python: Optional[str] = None) -> "Image":
        """FROM, RUN, ENV, ARG, WORKDIR, COPY/ADD of local files, CMD, ENTRYPOINT (see image/dockerfile.py)."""
        _check_step_options("from_dockerfile", gpu, ignore=ignore, registry_secret=registry_secret,
                            secrets=secrets, env=env, add_python=add_python)
        image = None
        for instruction in dockerfile.parse(path, context_dir, build_args):  # FROM first
            image = _REPLAY[instruction.op](image, *instruction.args)
        return Image(image._steps, 0) if force_build else image

    @classmethod
    def from_id(cls, image_id: str, client: Any = None) -> "Image":
        """An image built before (by id), from any process: hydrated at once, as on Modal
        (object_id set; NotFoundError for an id nothing was built under)."""
        image = Image((Existing(store.layer_of(image_id)),))
        image._resolve()
        return image

    # Steps ------------------------------------------------------------------

    def run_commands(self, *commands: Any, env: Optional[Dict[str, str]] = None, secrets: Sequence[Secret] = (),
                     volumes: Optional[dict] = None, gpu: Any = None, force_build: bool = False) -> "Image":
        """Each command runs in /bin/sh as its own layer."""
        _check_step_options("run_commands", gpu, volumes=volumes)
        env_ = env_pairs(_check_env(env, "run_commands"))
        hidden = _secret_env(secrets)
        return self._extend(*(Run(c, env_, hidden) for c in _flatten(commands, "run_commands() commands")),
                            force=force_build)

    def pip_install(self, *packages: Any, find_links: Optional[str] = None, index_url: Optional[str] = None,
                    extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "",
                    force_build: bool = False, env: Optional[Dict[str, str]] = None,
                    secrets: Sequence[Secret] = (), gpu: Any = None) -> "Image":
        """`pip install` the packages (nested lists are flattened)."""
        _check_step_options("pip_install", gpu)
        names = _flatten(packages, "pip_install() packages")
        if not names:
            return self
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        command = f"python -m pip install {shlex.join(sorted(names))}{options}"
        return self._extend(Run(command, env_pairs(_check_env(env, "pip_install")), _secret_env(secrets)),
                            force=force_build)

    def uv_pip_install(self, *packages: Any, requirements: Optional[Sequence[str]] = None,
                       find_links: Optional[str] = None, index_url: Optional[str] = None,
                       extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "",
                       force_build: bool = False, uv_version: Optional[str] = None,
                       env: Optional[Dict[str, str]] = None, secrets: Sequence[Secret] = (),
                       gpu: Any = None) -> "Image":
        """`uv pip install` the packages into the image's Python (uv itself comes from PyPI)."""
        _check_step_options("uv_pip_install", gpu, requirements=requirements)
        names = _flatten(packages, "uv_pip_install() packages")
        if not names:
            return self
        uv = shlex.quote(f"uv=={uv_version}" if uv_version else "uv")
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        command = (f"python -m pip install {uv} && python -m uv pip install --system --break-system-packages "
                   f"{shlex.join(sorted(names))}{options}")
        return self._extend(Run(command, env_pairs(_check_env(env, "uv_pip_install")),
                                _secret_env(secrets)), force=force_build)

    def apt_install(self, *packages: Any, force_build: bool = False, env: Optional[Dict[str, str]] = None,
                    secrets: Sequence[Secret] = (), gpu: Any = None) -> "Image":
        """`apt-get install` Debian packages (no recommends)."""
        _check_step_options("apt_install", gpu)
        names = _flatten(packages, "apt_install() packages")
        if not names:
            return self
        command = ("apt-get update -q && apt-get install -y -q --no-install-recommends "
                   f"{shlex.join(names)} && apt-get clean && rm -rf /var/lib/apt/lists/*")
        env_ = {"DEBIAN_FRONTEND": "noninteractive", **_check_env(env, "apt_install")}
        return self._extend(Run(command, env_pairs(env_), _secret_env(secrets)), force=force_build)

    def env(self, vars: Dict[str, str]) -> "Image":
        """ENV: variables for later build steps and for sandboxes."""
        return self._extend(Config("env", env_pairs(_check_env(vars, "env()"))))

    def workdir(self, path: Any) -> "Image":
        """WORKDIR: the directory later build steps and sandboxes start in."""
        path = str(PurePosixPath(path)) if isinstance(path, PurePosixPath) else path
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise InvalidError(f"Image.workdir() needs an absolute path, got {path!r}")
        return self._extend(Config("workdir", path))

    def entrypoint(self, entrypoint_commands: List[str]) -> "Image":
        """ENTRYPOINT: what a sandbox runs, with its arguments (or CMD) appended."""
        return self._extend(Config("entrypoint", _command_list(entrypoint_commands, "entrypoint")))

    def cmd(self, cmd: List[str]) -> "Image":
        """CMD: what a sandbox created without arguments runs."""
        return self._extend(Config("cmd", _command_list(cmd, "cmd")))

    def add_local_file(self, local_path: Any, remote_path: str, *, copy: bool = False) -> "Image":
        """Put a local file into the image (remote_path ending in '/' keeps the file's name)."""
        if not isinstance(remote_path, str) or not remote_path.startswith("/") or "\0" in remote_path:
            raise InvalidError("image.add_local_file() currently only supports absolute remote_path values")
        local = os.path.abspath(os.fspath(local_path))
        if remote_path.endswith("/"):
            remote_path += os.path.basename(local)
        return self._extend(AddLocal(local, remote_path, bool(copy)))

    def add_local_dir(self, local_path: Any, remote_path: str, *, copy: bool = False,
                      ignore: Ignore = ()) -> "Image":
        """Put a local directory into the image; `ignore`: glob patterns, or a predicate on Paths."""
        if not isinstance(remote_path, str) or not remote_path.startswith("/") or "\0" in remote_path:
            raise InvalidError("image.add_local_dir() currently only supports absolute remote_path values")
        patterns = isinstance(ignore, (list, tuple)) and all(isinstance(p, str) for p in ignore)
        if not callable(ignore) and not patterns:
            raise InvalidError("ignore must be a list of glob patterns or a function of a Path")
        return self._extend(AddLocal(os.path.abspath(os.fspath(local_path)), remote_path, bool(copy), ignore))

    def add_local_python_source(self, *modules: str, copy: bool = False,
                                ignore: Ignore = NON_PYTHON_FILES) -> "Image":
        """Local Python packages or modules, under /root (on PYTHONPATH)."""
        image = self
        for module in modules:
            spec = importlib.util.find_spec(module) if isinstance(module, str) else None
            if spec is None or spec.origin in (None, "built-in", "frozen"):
                raise InvalidError(f"add_local_python_source: no local Python module or package named {module!r}")
            if spec.submodule_search_locations:
                source = next(iter(spec.submodule_search_locations))
                image = image.add_local_dir(source, f"/root/{module.replace('.', '/')}", copy=copy, ignore=ignore)
            else:
                image = image.add_local_file(spec.origin, f"/root/{module.replace('.', '/')}.py", copy=copy)
        return image.env({"PYTHONPATH": "/root"})

    def pipe(self, func: Callable[..., "Image"], *args: Any, **kwargs: Any) -> "Image":
        return func(self, *args, **kwargs)

    # Building ---------------------------------------------------------------

    def _resolve(self) -> RootFS:
        if self._rootfs is None:
            self._rootfs = build.resolve(self._steps, build.build_description(self._steps), self._force_from)
        return self._rootfs

    @synchronized
    async def build(self, app: Any = None) -> "Image":
        """Build now (a cached build is reused); returns this image, now with an object_id.
        `.aio` builds in a worker thread: the caller's loop goes on meanwhile."""
        await offload(self._resolve)
        return self

    @property
    def object_id(self) -> Optional[str]:
        """The image id once built (im-...), else None."""
        return None if self._rootfs is None else self._rootfs.image_id



# How Image.from_dockerfile replays each parsed instruction (image/dockerfile.py).
_REPLAY: Dict[str, Callable[..., Image]] = {
    "FROM": lambda _, ref: Image.from_scratch() if ref == "scratch" else Image.from_registry(ref),
    "RUN": Image.run_commands,
    "ENV": Image.env,
    "WORKDIR": Image.workdir,
    "CMD": Image.cmd,
    "ENTRYPOINT": Image.entrypoint,
    "COPY_DIR": lambda image, local, dest, ignore: image.add_local_dir(local, dest, copy=True, ignore=ignore),
    "COPY_FILE": lambda image, local, dest: image.add_local_file(local, dest, copy=True),
}

def _command_list(value: Any, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise InvalidError(f"Image.{what}() takes a list of strings, got {value!r}")
    return value


def _pip_options(find_links, index_url, extra_index_url, pre, extra_options) -> str:
    options = ""
    for flag, value in (("--find-links", find_links), ("--index-url", index_url),
                        ("--extra-index-url", extra_index_url)):
        if value is not None:
            options += f" {flag} {shlex.quote(value)}"
    if pre:
        options += " --pre"
    if extra_options:
        options += f" {extra_options}"
    return options
