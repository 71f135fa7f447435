"""pysandbox doctor's findings, with the host's pieces faked."""

import pytest

from pysandbox import doctor
from pysandbox.runtime import cgroups, netplan


def test_missing_network_helpers_say_what_they_disable(monkeypatch):
    monkeypatch.setattr(netplan, "tool", lambda name: None)
    finding = doctor.network()
    assert not finding.ok and not finding.essential
    assert "slirp4netns and nft not found" in finding.detail
    assert "loopback only" in finding.disables and "apt-get install slirp4netns nftables" in finding.disables


@pytest.mark.parametrize("euid, advice", [(0, None), (1000, "sudo chmod 0666 /dev/net/tun")])
def test_unusable_tun_says_what_to_change_only_to_an_unprivileged_caller(monkeypatch, euid, advice):
    # A root caller's sandboxes get a tun node of their own: the host's mode is no concern of its.
    monkeypatch.setattr(netplan, "tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(netplan, "available", lambda: False)
    monkeypatch.setattr(netplan.os, "geteuid", lambda: euid)
    disables = doctor.network().disables
    assert "apt-get install slirp4netns nftables" in disables
    assert (advice in disables) if advice else "chmod" not in disables


@pytest.mark.parametrize("host, ok, disabled", [
    (cgroups.Host(0, {}, "no cgroup filesystem is mounted"), False, "cpu=/memory= limits"),
    (cgroups.Host(2, {"pids": "/sys/fs/cgroup/user/pysandbox"}, "memory is not delegated"), False, "cpu/memory"),
    (cgroups.Host(1, {c: f"/sys/fs/cgroup/{c}/pysandbox" for c in ("cpu", "memory", "pids")}), True, ""),
])
def test_cgroups(monkeypatch, host, ok, disabled):
    monkeypatch.setattr(cgroups, "host", lambda: host)
    finding = doctor.cgroup_limits()
    assert finding.ok is ok and disabled in finding.disables and not finding.essential


@pytest.mark.parametrize("values, why", [
    ({"/proc/sys/user/max_user_namespaces": "0"}, "max_user_namespaces is 0"),
    ({"/proc/sys/kernel/unprivileged_userns_clone": "0"}, "unprivileged_userns_clone is 0"),
    ({"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1"}, "AppArmor"),
])
def test_user_namespaces_disabled_is_essential(monkeypatch, values, why):
    monkeypatch.setattr(doctor, "_read", values.get)
    finding = doctor.user_namespaces()
    assert not finding.ok and finding.essential and why in finding.detail


def test_report_and_health():
    good = doctor.Finding("kernel", True, "Linux")
    optional = doctor.Finding("network", False, "slirp4netns not found", "outbound network")
    broken = doctor.Finding("runner: bwrap", False, "no bwrap", "every sandbox", essential=True)
    assert doctor.healthy([good, optional])
    assert "sandboxes work here (1 optional piece(s) missing)" in doctor.report([good, optional])
    text = doctor.report([good, optional, broken])
    assert not doctor.healthy([good, broken])
    assert "without it: outbound network" in text and text.endswith("sandboxes cannot start here: fix runner: bwrap")
