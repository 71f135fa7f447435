"""pysandbox's pytest plugin (registered as the `pytest11` entry point `pysandbox`).

Fixtures, each sandbox tethered to the test process (experimental_options "tether"): killed with
it, even by SIGKILL, none outlives the run; each is also terminated when its test ends, failed
or interrupted:

* `sandbox`: a fresh sandbox per test; `@pytest.mark.sandbox(*args, **create_options)` gives its
  Sandbox.create arguments (e.g. `@pytest.mark.sandbox("sleep", "60", block_network=True)`).
* `sandbox_factory`: `sandbox_factory(*args, **create_options)` creates as many as a test needs.
* `sandbox_app`: the App they belong to (`pytest`).
* `sandbox_image`: an image built once per session: `--sandbox-image` (or the `sandbox_image` ini
  option) names it: an image id (im-...), a Dockerfile or a directory holding one (its directory is
  the build context, as for `pysandbox run --image`) or a registry reference; `Image.debian_slim()`
  by default.

Options: `--sandbox-runner bwrap|nsjail|gvisor` picks the runner of those sandboxes; `--modal=pysandbox`
runs a test suite written for Modal against pysandbox: `import modal` in the tests (and in
conftest.py files, which load later) resolves to pysandbox. The default, `--modal=modal`, leaves
imports alone. Works with pytest-xdist (each worker's sandboxes are tethered to it). pysandbox
itself is imported only when a fixture or `--modal=pysandbox` needs it, so that merely having
the package installed costs other test suites nothing. Without the package installed:
`pytest -p pysandbox.pytest_plugin`.
"""

import os

import pytest

CHOICES = ("modal", "pysandbox")
APP_NAME = "pytest"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("pysandbox")
    group.addoption("--modal", choices=CHOICES, default="modal",
                    help="what `import modal` gives the tests: modal (the default, untouched) or pysandbox")
    group.addoption("--sandbox-runner", default=None, metavar="RUNNER",
                    help="the runner of the plugin's sandboxes: bwrap, nsjail or gvisor (default: PYSANDBOX_RUNNER's)")
    group.addoption("--sandbox-image", default=None, metavar="IMAGE",
                    help="the `sandbox_image` fixture's image: an image id, a Dockerfile or a directory holding one "
                         "(its directory is the build context), or a registry reference (default: the "
                         "sandbox_image ini option, else Image.debian_slim())")
    parser.addini("sandbox_image", "the `sandbox_image` fixture's image (see --sandbox-image)", default="")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "sandbox(*args, **create_options): the Sandbox.create arguments of the "
                                       "`sandbox` fixture's sandbox")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if early_config.known_args_namespace.modal == "pysandbox":
        from pysandbox._modal_alias import install_as_modal

        install_as_modal()


@pytest.fixture(scope="session")
def sandbox_app():
    import pysandbox

    return pysandbox.App.lookup(APP_NAME, create_if_missing=True)


@pytest.fixture
def sandbox_factory(sandbox_app, request):
    import pysandbox

    runner = request.config.getoption("sandbox_runner")
    created = []

    def create(*args, **options):
        experimental = {"tether": True, **({"runner": runner} if runner else {}),
                        **(options.pop("experimental_options", None) or {})}
        options.setdefault("app", sandbox_app)
        sb = pysandbox.Sandbox.create(*args, experimental_options=experimental, **options)
        created.append(sb)
        return sb

    yield create
    for sb in created:
        sb.terminate()
    for sb in created:
        sb.wait(raise_on_termination=False)


@pytest.fixture
def sandbox(sandbox_factory, request):
    marker = request.node.get_closest_marker("sandbox")
    return sandbox_factory(*marker.args, **marker.kwargs) if marker else sandbox_factory()


@pytest.fixture(scope="session")
def sandbox_image(request):
    import pysandbox

    name = request.config.getoption("sandbox_image") or request.config.getini("sandbox_image")
    if not name:
        image = pysandbox.Image.debian_slim()
    elif name.startswith("im-"):
        image = pysandbox.Image.from_id(name)
    elif os.path.isdir(name) or os.path.isfile(name):  # as `pysandbox run --image` and `docker build`:
        path = os.path.join(name, "Dockerfile") if os.path.isdir(name) else name  # the build context is
        image = pysandbox.Image.from_dockerfile(path, context_dir=os.path.dirname(os.path.abspath(path)))  # its dir
    else:
        image = pysandbox.Image.from_registry(name)
    return image.build()
