"""Item 9: the kernel keyring, which is not namespaced, is out of reach."""

import pytest

from ._inside import py_ok

pytestmark = pytest.mark.rootless

KEY_SPEC_SESSION_KEYRING = (1 << 64) - 3  # -3 as an unsigned long
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_DESCRIBE = 0, 1, 6


def host_keys():
    """The keys the host test process can see: id, type and description (not the usage counts)."""
    with open("/proc/keys") as f:
        return {(fields[0], fields[7], " ".join(fields[8:])) for fields in map(str.split, f)}


@pytest.mark.gvisor
def test_keyctl_add_key_request_key_refused(sb):
    before = host_keys()
    out = py_ok(sb, f"""
        print([
            call("add_key", b"user", b"pysandbox-probe", b"secret", 6, {KEY_SPEC_SESSION_KEYRING}),
            call("request_key", b"user", b"pysandbox-probe", 0, 0),
            call("keyctl", {KEYCTL_GET_KEYRING_ID}, {KEY_SPEC_SESSION_KEYRING}, 0),
            call("keyctl", {KEYCTL_JOIN_SESSION_KEYRING}, 0),
            call("keyctl", {KEYCTL_DESCRIBE}, {KEY_SPEC_SESSION_KEYRING}, 0, 0),
        ])
    """)
    assert out == "['EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM']\n"
    assert not [key for key in host_keys() if "pysandbox-probe" in key[2]]
    assert host_keys() == before
