"""The contracts between the Python side and the native helpers, compared text to value:
the fd layout (native/common/fds.h, runtime/fds.py), init's wire protocol (native/common/protocol.h,
agent.py), init's configuration format (native/init/initconfig.h, runtime/initconfig.py), the
fixed host environment (native/common/util.c, settings.py) and sandbox root's capabilities."""

import re
from pathlib import Path

from pysandbox import agent, settings
from pysandbox.runtime import fds, initconfig

NATIVE = Path(__file__).resolve().parents[3] / "native"


def test_fd_numbers_agree():
    header = (NATIVE / "common" / "fds.h").read_text()
    native = {name: int(number) for name, number in re.findall(r"\bFD_([A-Z_]+) = (\d+)", header)}
    python = {name: value for name, value in vars(fds).items() if name.isupper()}
    assert native == python


def test_init_config_format_agrees():
    header = (NATIVE / "init" / "initconfig.h").read_text()
    assert re.search(r'#define INIT_CONFIG_MAGIC "([^"]+)"', header).group(1).encode() == initconfig.MAGIC
    assert int(re.search(r"#define INIT_CONFIG_MAX \((\d+)u << (\d+)\)", header).group(1)) << 20 == \
        initconfig.MAX_BYTES


def test_host_environment_agrees():
    source = (NATIVE / "common" / "util.c").read_text()
    entries = re.search(r"host_env\[\] = \{(.*?)NULL\}", source).group(1)
    assert sorted(re.findall(r'"([^"]*)"', entries)) == sorted(f"{k}={v}" for k, v in settings.HOST_ENV.items())


def test_capabilities_agree():
    from pysandbox.runtime.layout import SANDBOX_ROOT_CAPS

    source = (NATIVE / "init" / "caps.c").read_text()
    kept = re.search(r"CAPS_KEPT\[\] = \{(.*?)\};", source, re.S).group(1)
    assert sorted(re.findall(r"CAP_([A-Z_]+)", kept)) == sorted(SANDBOX_ROOT_CAPS)


def test_protocol_numbers_agree():
    """Every PSB_ name in native/common/protocol.h has its agent.py twin with the same value, and back."""
    header = (NATIVE / "common" / "protocol.h").read_text()
    native = {name: int(value, 0) for name, value in re.findall(r"\bPSB_([A-Z_]+) = (\d+)", header)}
    native.update((name, int(value.rstrip("u"), 0)) for name, value in
                  re.findall(r"#define PSB_([A-Z_]+) \(?(0x[0-9a-f]+u?|\d+u?)\b", header))
    native["MAX_MESSAGE"] = int(re.search(r"#define PSB_MAX_MESSAGE \((\d+) \* (\d+)\)", header).group(1)) * 1024
    del native["OPEN_FLAGS_ALLOWED"]  # checked by init on what the client sends: Python builds flags from os.O_*
    python = {name: getattr(agent, name) for name in native if hasattr(agent, name)}
    assert python == native
    assert {name for name in vars(agent) if re.fullmatch(r"(REQ|REP|FSOP|FILE|EXIT)_[A-Z_]+", name)} <= set(native)


def test_tree_stream_record_agrees():
    """agent.TREE_RECORD and TREE_CHUNK are common/tree.h's struct tree_record and TREE_CHUNK (image/treestream.py
    bounds the stream by them)."""
    header = (NATIVE / "common" / "tree.h").read_text()
    body = re.search(r"struct tree_record \{(.*?)\};", header, re.S).group(1)
    codes = {"uint32_t": "I", "int64_t": "q", "uint64_t": "Q"}
    fields = "".join(codes[kind] * (line.count(",") + 1) for kind, line in
                     re.findall(r"^\s*(u?int\d+_t) ([^;]+);", body, re.M))
    expanded = "".join(code * int(count or 1) for count, code in re.findall(r"(\d*)([A-Za-z])", agent.TREE_RECORD.format))
    assert expanded == fields
    assert int(re.search(r"#define TREE_CHUNK (\d+)", header).group(1)) == agent.TREE_CHUNK


def test_spare_claim_bound_agrees():
    from pysandbox.runtime import spare

    source = (NATIVE / "supervisor" / "spare.c").read_text()
    size, unit = re.search(r"CLAIM_MAX = (\d+) \* (\d+),", source).groups()
    assert int(size) * int(unit) == spare.CLAIM_MAX
