"""modal.Image: a lazy, immutable recipe. Builder methods return new Images;
nothing is built until a sandbox uses the image or `build()` is called."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import warnings
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .._aio import offload, synchronized, synchronized_static
from .._core.spec import RootFS
from .._lazy import LazyModule
from .._validate import env_mapping
from ..exception import ExecutionError, InvalidError, UnimplementedError
from ..secret import Secret, merge_env
from .local import AUTO_DOCKERIGNORE, Ignore

# What building, pulling and Dockerfiles need is imported when an Image first needs it, not by
# `import pysandbox` (a third of its import time went to them: benchmarks/bench_import.py).
if TYPE_CHECKING:
    from . import build, debian, dockerfile, dockerfile_steps, pull, reference, steps, store
    from . import local as localfiles
else:
    build, debian, dockerfile, dockerfile_steps, localfiles, pull, reference, steps, store = (
        LazyModule(f"{__package__}.{name}")
        for name in ("build", "debian", "dockerfile", "dockerfile_steps", "local", "pull", "reference", "steps",
                     "store"))


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
    """gpu= has no local meaning (builds run on this host's CPUs, as sandboxes do); anything
    in `unsupported` that is set raises."""
    if gpu is not None and not isinstance(gpu, str):
        raise InvalidError(f"Image.{method}(gpu=...) takes a GPU type string such as 'A10G', got {gpu!r}")
    for name, value in unsupported.items():
        if value:
            raise UnimplementedError(f"Image.{method}({name}=...) is not supported by pysandbox yet.")


def _unsupported(method: str, instead: str) -> UnimplementedError:
    return UnimplementedError(f"Image.{method}() is not supported by pysandbox; {instead}")


def _check_env(env: Optional[Dict[str, Optional[str]]], method: str) -> Dict[str, str]:
    """Modal's env= for build steps: str values, None values dropped."""
    if env is None:
        return {}
    return env_mapping(env, f"Image.{method}: env")


def _secret_env(secrets: Optional[Sequence[Secret]], env: Optional[Dict[str, Optional[str]]] = None
                ) -> Tuple[Tuple[str, str], ...]:
    return steps.env_pairs(merge_env(env, secrets))  # the sandbox's rules for secrets, names and values


# What Modal's from_registry passes on through **kwargs to its image constructor, and which work here.
_REGISTRY_KWARGS = {"secrets": None, "build_args": {}, "gpu_config": None}


def _registry_kwargs(method: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    if "image_registry_config" in kwargs:
        raise UnimplementedError(f"Image.{method}(image_registry_config=...) is not supported by pysandbox; "
                                 "pass the registry credentials as secret=.")
    unknown = sorted(set(kwargs) - set(_REGISTRY_KWARGS))
    if unknown:
        raise TypeError(f"Image.{method}() got an unexpected keyword argument {unknown[0]!r}")
    options = {**_REGISTRY_KWARGS, **kwargs}
    if not isinstance(options["build_args"], dict):
        raise InvalidError(f"Image.{method}(build_args=...) takes a dict of str to str")
    return options


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
        """Debian (PYSANDBOX_DEBIAN_SUITE, default bookworm) with Python and pip: the suite's own
        Python for the series it ships, else that series copied from the host (image/hostpython.py).
        python_version: None = this Python's major.minor, as on Modal."""
        suite = debian.suite()
        series = python_version or debian.local_python_version()
        chain: Tuple[Any, ...] = (steps.DebianSlim(suite),)
        if series != debian.SUITE_PYTHON.get(suite):
            chain += (steps.AddPython(series, "python_version"),)
        return Image(chain, 0 if force_build else None)

    @staticmethod
    def from_scratch(force_build: bool = False) -> "Image":
        """An empty image."""
        return Image((steps.Scratch(),), 0 if force_build else None)

    @staticmethod
    def from_registry(tag: str, secret: Optional[Secret] = None, *, setup_dockerfile_commands: List[str] = [],
                      force_build: bool = False, add_python: Optional[str] = None, **kwargs: Any) -> "Image":
        """An image from an OCI/Docker registry (Docker Hub names, or host/repo:tag); linux/amd64.
        Then add_python (the host's installation of that series), then setup_dockerfile_commands
        (Dockerfile lines, no FROM), as Modal orders them. kwargs, as Modal's: secrets (for RUN
        lines), build_args (for ARG lines), gpu_config (no local meaning)."""
        options = _registry_kwargs("from_registry", kwargs)
        pulled = pull.FromRegistry(reference.parse(tag), pull.credentials_of(secret))
        image = Image((pulled,), 0 if force_build else None)
        if add_python is not None:
            image = image._extend(steps.AddPython(add_python))
        if not isinstance(setup_dockerfile_commands, (list, tuple)):
            raise InvalidError("from_registry(setup_dockerfile_commands=...) takes a list of Dockerfile lines")
        commands = _flatten(setup_dockerfile_commands, "setup_dockerfile_commands")
        parsed = dockerfile.parse_commands(commands, build_args=options["build_args"])
        return image._replay(parsed, options["secrets"], None)

    @staticmethod
    def from_aws_ecr(tag: str, secret: Optional[Secret] = None, *, setup_dockerfile_commands: List[str] = [],
                     force_build: bool = False, add_python: Optional[str] = None, **kwargs: Any) -> "Image":
        raise _unsupported("from_aws_ecr", "use Image.from_registry(tag, secret=Secret.from_dict({"
                           "'REGISTRY_USERNAME': 'AWS', 'REGISTRY_PASSWORD': <`aws ecr get-login-password`>})).")

    @staticmethod
    def from_gcp_artifact_registry(tag: str, secret: Optional[Secret] = None, *,
                                   setup_dockerfile_commands: List[str] = [], force_build: bool = False,
                                   add_python: Optional[str] = None, **kwargs: Any) -> "Image":
        raise _unsupported("from_gcp_artifact_registry", "use Image.from_registry(tag, secret=Secret.from_dict({"
                           "'REGISTRY_USERNAME': '_json_key', 'REGISTRY_PASSWORD': <the service account JSON>})).")

    @staticmethod
    def from_dockerfile(path: Any, *, force_build: bool = False, context_dir: Any = None,
                        ignore: Any = AUTO_DOCKERIGNORE, build_args: Dict[str, str] = {},
                        registry_secret: Optional[Secret] = None, secrets: Optional[Sequence[Secret]] = None,
                        env: Optional[Dict[str, Optional[str]]] = None, gpu: Optional[str] = None,
                        add_python: Optional[str] = None) -> "Image":
        """A Dockerfile's last stage (image/dockerfile.py says what each instruction means here).
        ignore: AUTO_DOCKERIGNORE (the .dockerignore), glob patterns or a predicate on context-relative
        Paths; registry_secret pulls FROM; secrets and env reach RUN lines; add_python goes on top."""
        _check_step_options("from_dockerfile", gpu)
        parsed = dockerfile.parse(path, context_dir, build_args, ignore)  # the last stage, FROM first
        image = Image._stage(parsed, secrets, env, registry_secret)
        if add_python is not None:
            image = image._extend(steps.AddPython(add_python))
        return Image(image._steps, 0) if force_build else image

    @staticmethod
    def _stage(parsed: Sequence[dockerfile.Instruction], secrets: Optional[Sequence[Secret]],
               env: Optional[Dict[str, Optional[str]]], registry_secret: Optional[Secret] = None) -> "Image":
        """A Dockerfile stage: its FROM, then its lines."""
        image = _REPLAY["FROM"](None, *parsed[0].args, registry_secret=registry_secret)
        return image._replay(parsed[1:], secrets, env, registry_secret)

    @staticmethod
    def micromamba(python_version: Optional[str] = None, force_build: bool = False) -> "Image":
        raise _unsupported("micromamba", "start from Image.from_registry('mambaorg/micromamba') instead.")

    @synchronized_static
    async def from_id(image_id: str, client: Any = None) -> "Image":
        """An image built before (by id), from any process: hydrated at once, as on Modal
        (object_id set; NotFoundError for an id nothing was built under)."""
        image = Image((steps.Existing(store.layer_of(image_id)),))
        image._resolve()
        return image

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, client: Any = None) -> "Image":
        """The image published as `name` ("name:tag", tag "latest" by default) with publish()."""
        return Image.from_id(store.named(name))

    @synchronized
    async def publish(self, name: str, *, environment_name: Optional[str] = None,
                      experimental_options: Optional[Dict[str, Any]] = None, client: Any = None) -> None:
        """Name this built image ("name:tag", tag "latest" by default) for Image.from_name, in any process."""
        if self.object_id is None:
            raise InvalidError("Cannot publish an image that has not been created yet. Call `.build()` first.")
        store.publish_name(name, self.object_id)

    @synchronized
    async def hydrate(self, client: Any = None) -> "Image":
        """This image, once built (build() or a sandbox created from it): as on Modal, images are not
        hydrated on demand."""
        if self.object_id is None:
            raise ExecutionError("Images cannot currently be hydrated on demand; build the image first "
                                 "(image.build(), or create a sandbox from it).")
        return self

    def _replay(self, parsed: Sequence[dockerfile.Instruction], secrets: Optional[Sequence[Secret]],
                env: Optional[Dict[str, Optional[str]]], registry_secret: Optional[Secret] = None) -> "Image":
        """Parsed Dockerfile lines on top of this image; RUN lines get `secrets` and `env` (hidden
        from the image's definition, as Modal makes env a secret there), and so do the stages
        COPY --from copies out of."""
        hidden = _secret_env(secrets, env)
        image = self
        for instruction in parsed:
            if instruction.op == "RUN":
                image = image._extend(steps.Run(instruction.args[0], (), hidden))
            elif instruction.op == "COPY_FROM":
                stage, paths, dest = instruction.args
                source = Image._stage(stage, secrets, env, registry_secret)._steps
                image = image._extend(dockerfile_steps.CopyFrom(source, paths, dest))
            else:
                image = _REPLAY[instruction.op](image, *instruction.args)
        return image

    # Steps ------------------------------------------------------------------
    # gpu= is accepted everywhere Modal takes it, with no local meaning (_check_step_options).

    def run_commands(self, *commands: Any, env: Optional[Dict[str, Optional[str]]] = None,
                     secrets: Optional[Sequence[Secret]] = None, volumes: Optional[dict] = None,
                     gpu: Optional[str] = None, force_build: bool = False) -> "Image":
        """Each command runs in /bin/sh as its own layer."""
        _check_step_options("run_commands", gpu, volumes=volumes)
        env_ = steps.env_pairs(_check_env(env, "run_commands"))
        hidden = _secret_env(secrets)
        return self._extend(*(steps.Run(c, env_, hidden) for c in _flatten(commands, "run_commands() commands")),
                            force=force_build)

    def dockerfile_commands(self, *dockerfile_commands: Any, context_files: Dict[str, str] = {},
                            env: Optional[Dict[str, Optional[str]]] = None,
                            secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None,
                            context_dir: Any = None, force_build: bool = False, ignore: Any = AUTO_DOCKERIGNORE,
                            build_args: Dict[str, str] = {}) -> "Image":
        """Dockerfile lines (no FROM) on top of this image, as from_dockerfile replays them;
        COPY reads context_dir (default: the working directory)."""
        _check_step_options("dockerfile_commands", gpu, context_files=context_files)
        lines = _flatten(dockerfile_commands, "dockerfile_commands()")
        if not lines:
            return self
        image = self._replay(dockerfile.parse_commands(lines, context_dir, build_args, ignore), secrets, env)
        forced = len(self._steps) if force_build and self._force_from is None else self._force_from
        return Image(image._steps, forced)

    def pip_install(self, *packages: Any, find_links: Optional[str] = None, index_url: Optional[str] = None,
                    extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "",
                    force_build: bool = False, env: Optional[Dict[str, Optional[str]]] = None,
                    secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None) -> "Image":
        """`pip install` the packages (nested lists are flattened)."""
        _check_step_options("pip_install", gpu)
        names = _flatten(packages, "pip_install() packages")
        if not names:
            return self
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        command = f"python -m pip install {shlex.join(sorted(names))}{options}"
        return self._extend(steps.Run(command, steps.env_pairs(_check_env(env, "pip_install")), _secret_env(secrets)),
                            force=force_build)

    def pip_install_from_requirements(self, requirements_txt: str, find_links: Optional[str] = None, *,
                                      index_url: Optional[str] = None, extra_index_url: Optional[str] = None,
                                      pre: bool = False, extra_options: str = "", force_build: bool = False,
                                      env: Optional[Dict[str, Optional[str]]] = None,
                                      secrets: Optional[Sequence[Secret]] = None,
                                      gpu: Optional[str] = None) -> "Image":
        """`pip install -r` a local requirements file (copied to /.requirements.txt, as Modal)."""
        _check_step_options("pip_install_from_requirements", gpu)
        local = os.path.expanduser(os.fspath(requirements_txt))
        if not os.path.isfile(local):
            raise InvalidError(f"pip_install_from_requirements: {requirements_txt} is not a file")
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        run = steps.Run(f"python -m pip install -r /.requirements.txt{options}",
                        steps.env_pairs(_check_env(env, "pip_install_from_requirements")), _secret_env(secrets))
        requirements = localfiles.AddLocal(os.path.abspath(local), "/.requirements.txt", True)
        return self._extend(requirements, run, force=force_build)

    def pip_install_from_pyproject(self, pyproject_toml: str, optional_dependencies: List[str] = [], *,
                                   find_links: Optional[str] = None, index_url: Optional[str] = None,
                                   extra_index_url: Optional[str] = None, pre: bool = False,
                                   extra_options: str = "", force_build: bool = False,
                                   env: Optional[Dict[str, Optional[str]]] = None,
                                   secrets: Optional[Sequence[Secret]] = None,
                                   gpu: Optional[str] = None) -> "Image":
        """`pip install` a local pyproject.toml's [project] dependencies and the optional groups named."""
        names = _pyproject_dependencies(pyproject_toml, optional_dependencies)
        return self.pip_install(*names, find_links=find_links, index_url=index_url, extra_index_url=extra_index_url,
                                pre=pre, extra_options=extra_options, force_build=force_build, env=env,
                                secrets=secrets, gpu=gpu)

    def pip_install_private_repos(self, *repositories: str, git_user: str, find_links: Optional[str] = None,
                                  index_url: Optional[str] = None, extra_index_url: Optional[str] = None,
                                  pre: bool = False, extra_options: str = "", gpu: Optional[str] = None,
                                  env: Optional[Dict[str, Optional[str]]] = None,
                                  secrets: Optional[Sequence[Secret]] = None, force_build: bool = False) -> "Image":
        raise _unsupported("pip_install_private_repos", "use pip_install('git+https://...') with a token from "
                           "secrets= in run_commands().")

    def poetry_install_from_file(self, poetry_pyproject_toml: str, poetry_lockfile: Optional[str] = None, *,
                                 ignore_lockfile: bool = False, force_build: bool = False, with_: List[str] = [],
                                 without: List[str] = [], only: List[str] = [],
                                 poetry_version: Optional[str] = "latest", old_installer: bool = False,
                                 env: Optional[Dict[str, Optional[str]]] = None,
                                 secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None) -> "Image":
        raise _unsupported("poetry_install_from_file", "export requirements (`poetry export`) and use "
                           "pip_install_from_requirements().")

    def uv_pip_install(self, *packages: Any, requirements: Optional[List[str]] = None,
                       find_links: Optional[str] = None, index_url: Optional[str] = None,
                       extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "",
                       force_build: bool = False, uv_version: Optional[str] = None,
                       env: Optional[Dict[str, Optional[str]]] = None, secrets: Optional[Sequence[Secret]] = None,
                       gpu: Optional[str] = None) -> "Image":
        """`uv pip install` the packages into the image's Python (uv itself comes from PyPI)."""
        _check_step_options("uv_pip_install", gpu, requirements=requirements)
        names = _flatten(packages, "uv_pip_install() packages")
        if not names:
            return self
        uv = shlex.quote(f"uv=={uv_version}" if uv_version else "uv")
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        command = (f"python -m pip install {uv} && python -m uv pip install --system --break-system-packages "
                   f"{shlex.join(sorted(names))}{options}")
        return self._extend(steps.Run(command, steps.env_pairs(_check_env(env, "uv_pip_install")),
                                _secret_env(secrets)), force=force_build)

    def uv_sync(self, uv_project_dir: str = "./", *, force_build: bool = False, groups: Optional[List[str]] = None,
                extras: Optional[List[str]] = None, frozen: bool = True, extra_options: str = "",
                uv_version: Optional[str] = None, env: Optional[Dict[str, Optional[str]]] = None,
                secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None) -> "Image":
        raise _unsupported("uv_sync", "export the lock (`uv export > requirements.txt`) and use "
                           "pip_install_from_requirements().")

    def micromamba_install(self, *packages: Any, spec_file: Optional[str] = None, channels: List[str] = [],
                           force_build: bool = False, env: Optional[Dict[str, Optional[str]]] = None,
                           secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None) -> "Image":
        raise _unsupported("micromamba_install", "start from a micromamba registry image and use run_commands().")

    def apt_install(self, *packages: Any, force_build: bool = False, env: Optional[Dict[str, Optional[str]]] = None,
                    secrets: Optional[Sequence[Secret]] = None, gpu: Optional[str] = None) -> "Image":
        """`apt-get install` Debian packages (no recommends)."""
        _check_step_options("apt_install", gpu)
        names = _flatten(packages, "apt_install() packages")
        if not names:
            return self
        command = ("apt-get update -q && apt-get install -y -q --no-install-recommends "
                   f"{shlex.join(names)} && apt-get clean && rm -rf /var/lib/apt/lists/*")
        env_ = {"DEBIAN_FRONTEND": "noninteractive", **_check_env(env, "apt_install")}
        return self._extend(steps.Run(command, steps.env_pairs(env_), _secret_env(secrets)), force=force_build)

    def run_function(self, raw_f: Callable[..., Any], *, env: Optional[Dict[str, Optional[str]]] = None,
                     secrets: Optional[Sequence[Secret]] = None, volumes: dict = {},
                     network_file_systems: dict = {}, gpu: Any = None, cpu: Optional[float] = None,
                     memory: Optional[int] = None, timeout: int = 3600, cloud: Optional[str] = None,
                     region: Any = None, force_build: bool = False, args: Sequence[Any] = (),
                     kwargs: Dict[str, Any] = {}, include_source: bool = True) -> "Image":
        raise _unsupported("run_function", "pysandbox runs no Modal Functions: put the code in a script "
                           "(add_local_file(..., copy=True)) and run it with run_commands().")

    def shell(self, shell_commands: List[str]) -> "Image":
        raise _unsupported("shell", "run_commands() always uses /bin/sh -c: call your shell there "
                           "(run_commands(\"bash -c '...'\")).")

    def env(self, vars: Dict[str, str]) -> "Image":
        """ENV: variables for later build steps and for sandboxes."""
        return self._extend(steps.Config("env", steps.env_pairs(_check_env(vars, "env()"))))

    def workdir(self, path: Any) -> "Image":
        """WORKDIR: the directory later build steps and sandboxes start in."""
        path = str(PurePosixPath(path)) if isinstance(path, PurePosixPath) else path
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise InvalidError(f"Image.workdir() needs an absolute path, got {path!r}")
        return self._extend(steps.Config("workdir", path))

    def entrypoint(self, entrypoint_commands: List[str]) -> "Image":
        """ENTRYPOINT: what a sandbox runs, with its arguments (or CMD) appended."""
        return self._extend(steps.Config("entrypoint", _command_list(entrypoint_commands, "entrypoint")))

    def cmd(self, cmd: List[str]) -> "Image":
        """CMD: what a sandbox created without arguments runs."""
        return self._extend(steps.Config("cmd", _command_list(cmd, "cmd")))

    def add_local_file(self, local_path: Any, remote_path: str, *, copy: bool = False) -> "Image":
        """Put a local file into the image (remote_path ending in '/' keeps the file's name)."""
        if not isinstance(remote_path, str) or not remote_path.startswith("/") or "\0" in remote_path:
            raise InvalidError("image.add_local_file() currently only supports absolute remote_path values")
        local = os.path.abspath(os.fspath(local_path))
        if remote_path.endswith("/"):
            remote_path += os.path.basename(local)
        return self._extend(localfiles.AddLocal(local, remote_path, bool(copy)))

    def add_local_dir(self, local_path: Any, remote_path: str, *, copy: bool = False,
                      ignore: Ignore = []) -> "Image":
        """Put a local directory into the image; `ignore`: glob patterns, or a predicate on Paths."""
        if not isinstance(remote_path, str) or not remote_path.startswith("/") or "\0" in remote_path:
            raise InvalidError("image.add_local_dir() currently only supports absolute remote_path values")
        patterns = isinstance(ignore, (list, tuple)) and all(isinstance(p, str) for p in ignore)
        if not callable(ignore) and not patterns:
            raise InvalidError("ignore must be a list of glob patterns or a function of a Path")
        source = os.path.abspath(os.fspath(local_path))
        return self._extend(localfiles.AddLocal(source, remote_path, bool(copy), ignore))

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

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Modal's guard for imports only the image has: this process never runs inside the image,
        so, as Modal outside its containers, what fails in the block is swallowed (warned unless an
        ImportError)."""
        try:
            yield
        except Exception as exc:
            if not isinstance(exc, ImportError):
                warnings.warn(f"Warning: caught a non-ImportError exception in an `imports()` block: {exc!r}")

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
    "FROM": lambda _, ref, registry_secret=None: (
        Image.from_scratch() if ref == "scratch" else Image.from_registry(ref, registry_secret)),
    "ENV": Image.env,
    "WORKDIR": Image.workdir,
    "CMD": Image.cmd,
    "ENTRYPOINT": Image.entrypoint,
    "COPY_DIR": lambda image, local, dest, ignore: image.add_local_dir(local, dest, copy=True, ignore=ignore),
    "COPY_FILE": lambda image, local, dest: image.add_local_file(local, dest, copy=True),
    "WRITE_FILE": lambda image, dest, text: image._extend(dockerfile_steps.WriteFile(dest, text)),
    "ADD_ARCHIVE": lambda image, local, dest: image._extend(dockerfile_steps.AddArchive(str(local), dest)),
    "ENV_LATE": lambda image, pairs: image._extend(dockerfile_steps.LateEnv(steps.env_pairs(pairs))),
}

def _tomllib() -> Any:
    """Python 3.11's tomllib, else tomli (imported here, on pip_install_from_pyproject's first use)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise UnimplementedError(
                "pip_install_from_pyproject() needs Python 3.11+ (tomllib) or `pip install tomli`.") from None
    return tomllib


def _command_list(value: Any, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise InvalidError(f"Image.{what}() takes a list of strings, got {value!r}")
    return value


def _pyproject_dependencies(pyproject_toml: Any, optional_dependencies: List[str]) -> List[str]:
    tomllib = _tomllib()
    path = os.path.expanduser(os.fspath(pyproject_toml))
    try:
        with open(path, "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidError(f"pip_install_from_pyproject: cannot read {pyproject_toml}: {exc}") from None
    names = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for group in optional_dependencies:
        if group not in optional:
            raise InvalidError(f"pip_install_from_pyproject: {pyproject_toml} has no optional-dependencies {group!r}")
        names += optional[group]
    return names


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
