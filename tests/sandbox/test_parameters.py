"""No Modal parameter is silently ignored: README's table of every parameter of Sandbox.create
and exec says what each does locally, and this walks it. A parameter with no local meaning is
accepted; an unimplemented one raises UnimplementedError naming it before any work starts."""

import inspect
import re
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox.exception import InvalidError, UnimplementedError

from ..hoststate import sandbox_dirs

README = Path(__file__).resolve().parents[2] / "README.md"
STATUSES = ("works", "no local meaning", "UnimplementedError")
# A value Modal takes for each parameter that does not simply work here.
SAMPLES = {
    "cloud": "aws", "region": ["us-east-1", "eu-west-1"], "client": object(), "environment_name": "main",
    "network_file_systems": {"/nfs": object()}, "gpu": "A10G", "runtime": "vm",
    "_experimental_outbound_policy": object(),
    "inbound_cidr_allowlist": ["10.0.0.0/8"], "h2_ports": [8443], "custom_domain": "sb.example.com",
    "proxy": object(), "include_oidc_identity_token": True, "_experimental_enable_snapshot": True,
    "_experimental_persistent": True,
}


def _table():
    """{(call, parameter): status} from README's table."""
    section = README.read_text().split("### Every parameter of `Sandbox.create` and `exec`", 1)[1]
    rows = {}
    for line in section.split("\n\n", 2)[2].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in ("create", "exec"):
            continue
        status = next(s for s in STATUSES if cells[2].startswith(s))
        for name in re.findall(r"`\*?(\w+)`", cells[1]):
            rows[(cells[0], name)] = status
    return rows


TABLE = _table()


def _by_status(status):
    return sorted(name for (call, name), s in TABLE.items() if call == "create" and s == status)


def _parameters(function):
    return {name for name in inspect.signature(function).parameters if name != "self"}


def test_the_table_lists_every_parameter_once():
    assert {name for call, name in TABLE if call == "create"} == _parameters(modal.Sandbox.create._func)
    assert {name for call, name in TABLE if call == "exec"} == _parameters(modal.Sandbox.exec._func)
    assert set(_by_status("no local meaning")) | set(_by_status("UnimplementedError")) == set(SAMPLES)


@pytest.mark.parametrize("name", _by_status("UnimplementedError"))
def test_an_unimplemented_parameter_raises_naming_it_before_any_work(app, name):
    before = sandbox_dirs()
    with pytest.raises(UnimplementedError, match=rf"\b{name}=") as raised:
        modal.Sandbox.create("true", app=app, **{name: SAMPLES[name]})
    assert "pysandbox" in str(raised.value)
    assert sandbox_dirs() == before


@pytest.mark.rootless
@pytest.mark.parametrize("name", _by_status("no local meaning"))
def test_a_placement_or_account_hint_is_accepted(sandboxes, name):
    sb = sandboxes("true", **{name: SAMPLES[name]})
    sb.wait()
    assert sb.returncode == 0


@pytest.mark.parametrize("name, value", [("cloud", 3), ("region", [1]), ("region", {"us": 1}),
                                         ("environment_name", 5)])
def test_a_placement_hint_of_the_wrong_type_is_refused(app, name, value):
    with pytest.raises(InvalidError, match=name):
        modal.Sandbox.create("true", app=app, **{name: value})


def test_a_runtime_asked_for_is_never_silently_replaced(sandboxes):
    """runtime="gvisor" is the gvisor runner (test_gvisor.py); a micro-VM per sandbox has no runner."""
    with pytest.raises(UnimplementedError, match="runtime=.*runtime='vm'.*never silently replaced"):
        sandboxes("true", runtime="vm")


def test_modals_own_experimental_options_are_unimplemented(app):
    with pytest.raises(UnimplementedError, match="enable_docker_in_gvisor"):
        modal.Sandbox.create("true", app=app, experimental_options={"enable_docker_in_gvisor": True})


@pytest.mark.parametrize("options, date, words", [
    ({"environment_name": "main"}, "2025-07-16", "Passing `environment_name` to `Sandbox.create` is deprecated"),
    ({"pty_info": object()}, "2025-09-12", "The `pty_info` parameter is deprecated"),
    ({"cidr_allowlist": ["10.0.0.0/8"]}, "2026-05-11", "`cidr_allowlist` parameter has been renamed"),
])
def test_a_deprecated_create_parameter_warns_as_modals(sandboxes, options, date, words):
    """Modal's deprecation_warning: a DeprecationError (a UserWarning) dated, at the caller's line."""
    with pytest.warns(modal.exception.DeprecationError, match=f"^{date}: .*{re.escape(words)}") as caught:
        sandboxes("true", **options)
    assert [Path(w.filename).name for w in caught] == ["conftest.py"]  # the line that called create: the fixture's


@pytest.mark.parametrize("name", ["pty_info", "_pty_info"])
def test_a_deprecated_exec_parameter_warns_as_modals(sb, name):
    with pytest.warns(modal.exception.DeprecationError,
                      match=r"^2025-09-12: The `_pty_info` and `pty_info` parameters are deprecated") as caught:
        p = sb.exec("true", **{name: object()})
    assert p.wait() == 0 and [w.filename for w in caught] == [__file__]
