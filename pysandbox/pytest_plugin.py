"""pysandbox's pytest plugin (registered as the `pytest11` entry point `pysandbox`).

`pytest --modal=pysandbox` runs a test suite written for Modal against pysandbox: `import modal`
in the tests (and in conftest.py files, which load later) resolves to pysandbox. The default,
`--modal=modal`, leaves imports alone. Without the package installed: `pytest -p pysandbox.pytest_plugin`.
"""

import pytest

from ._modal_alias import install_as_modal

CHOICES = ("modal", "pysandbox")


def pytest_addoption(parser) -> None:
    parser.getgroup("pysandbox").addoption(
        "--modal", choices=CHOICES, default="modal",
        help="what `import modal` gives the tests: modal (the default, untouched) or pysandbox")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if early_config.known_args_namespace.modal == "pysandbox":
        install_as_modal()
