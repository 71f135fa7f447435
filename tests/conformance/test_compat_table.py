"""docs/COMPATIBILITY.md is what tools/compat_table.py writes from this directory's data and GAPS table:
a change to either that is not regenerated fails here (run `python3 tools/compat_table.py`)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("compat_table", ROOT / "tools" / "compat_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_up_to_date():
    tool = _tool()
    conformance = tool._conformance()
    expected = tool.render(conformance.EXPECTED, conformance.GAPS)
    assert (ROOT / "docs" / "COMPATIBILITY.md").read_text() == expected, (
        "docs/COMPATIBILITY.md is out of date: run python3 tools/compat_table.py")


def test_each_gap_and_each_match_is_a_row():
    tool = _tool()
    gaps = {"Sandbox.logs": "no logs manager", "FileIO.ls": "pending: someone", "SandboxSnapshot": "none"}
    expected = {"modal": "1.6.4", "old_file_api": "1.5.5", "entries": [
        {"module": "modal", "name": "Sandbox", "kind": "class", "members": {
            "logs": {"kind": "property"},
            "exec": {"kind": "function", "aio": True, "signature": [["args", "VAR_POSITIONAL", None],
                                                                     ["timeout", "KEYWORD_ONLY", "None"]]}}},
        {"module": "modal", "name": "SandboxSnapshot", "kind": "class", "members": {"from_id": {"kind": "function"}}},
        {"module": "modal.file_io", "name": "FileIO", "kind": "class", "since": "1.5.5",
         "members": {"ls": {"kind": "function", "signature": [["path", "POSITIONAL_OR_KEYWORD", None]]}}},
    ]}
    text = tool.render(expected, gaps)
    assert "| `Sandbox.exec` | `(*args, timeout=None)` (and `.aio`) | yes |" in text
    assert "| `Sandbox.logs` | property | differs: no logs manager |" in text
    assert "| `SandboxSnapshot.from_id` | function | differs: none |" in text  # a missing class's members
    assert "| `FileIO.ls` | `(path)` | in progress |" in text
    assert "| `FileIO` | class (Modal 1.5.5) | yes |" in text
    assert "2 of 3 names and 1 of 4 members match." in text
