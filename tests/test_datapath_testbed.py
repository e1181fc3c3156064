"""The netns testbed: build, idempotence, connectivity, tagging, clean removal."""

from __future__ import annotations

import os
import socket

import pytest

from neuralemu.cli import main
from neuralemu.datapath import netns, testbed

pytestmark = pytest.mark.root

PREFIX = f"nt{os.getpid() % 1000}t"


@pytest.fixture
def tb():
    t = testbed.up(2, PREFIX)
    yield t
    testbed.down(PREFIX)


def _udp_ok(src_ns: str, dst_ns: str, dst_ip: str, v6: bool) -> bool:
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    with netns.entered(dst_ns):
        rx = socket.socket(fam, socket.SOCK_DGRAM)
    with netns.entered(src_ns):
        tx = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        rx.bind((dst_ip, 0))
        rx.settimeout(1.0)
        tx.sendto(b"hello", (dst_ip, rx.getsockname()[1]))
        return rx.recv(100) == b"hello"
    except socket.timeout:
        return False
    finally:
        rx.close()
        tx.close()


def test_up_builds_tagged_namespaces_and_routes(tb):
    assert tb.namespaces == [f"{PREFIX}-mb", f"{PREFIX}-srv", f"{PREFIX}-ue1", f"{PREFIX}-ue2"]
    assert set(testbed.tagged_namespaces(PREFIX)) == set(tb.namespaces)
    for v6 in (False, True):
        srv = tb.server_ipv6 if v6 else tb.server_ipv4
        assert _udp_ok(tb.ns_ue(1), tb.ns_srv, srv, v6)
        assert _udp_ok(tb.ns_srv, tb.ns_ue(2), tb.ue_ipv6(2) if v6 else tb.ue_ipv4(2), v6)
        # UE to UE crosses the middlebox (router), not just the bridge
        assert _udp_ok(tb.ns_ue(1), tb.ns_ue(2), tb.ue_ipv6(2) if v6 else tb.ue_ipv4(2), v6)
    routes = netns.run(["ip", "-n", tb.ns_ue(1), "route"]).stdout
    assert "default via 198.18.0.1" in routes
    for addr in (tb.ue_ipv4(1), tb.server_ipv4):
        assert addr.startswith("198.18.") or addr.startswith("198.19.")
    assert tb.ue_ipv6(1).startswith("fd4e:")


def test_up_is_idempotent_and_rebuilds_on_change(tb):
    again = testbed.up(2, PREFIX)
    assert again.created_us == tb.created_us            # reused, not rebuilt
    bigger = testbed.up(3, PREFIX)
    assert bigger.n_ues == 3 and netns.exists(f"{PREFIX}-ue3")
    smaller = testbed.up(1, PREFIX)
    assert not netns.exists(f"{PREFIX}-ue3") and not netns.exists(f"{PREFIX}-ue2")
    assert _udp_ok(smaller.ns_ue(1), smaller.ns_srv, smaller.server_ipv4, False)


def test_down_removes_only_tagged_namespaces():
    stranger = f"{PREFIX}-mb"          # same name pattern, but not tagged: not ours
    netns.run(["ip", "netns", "add", stranger])
    try:
        testbed.down(PREFIX)
        assert netns.exists(stranger)
        # down --all acts on tagged namespaces only (not run here: it would also remove the
        # testbeds of concurrent test runs, which is what --all is for)
        assert stranger not in testbed.tagged_namespaces()
        assert all(item["name"] != stranger for item in testbed.status())
    finally:
        netns.run(["ip", "netns", "del", stranger], check=False)


def test_cli_up_status_down(capsys):
    assert main(["testbed", "up", "--ues", "1", "--prefix", PREFIX]) == 0
    out = capsys.readouterr().out
    assert f"{PREFIX}-ue1" in out and "198.18.0.2" in out
    assert main(["testbed", "status", "--prefix", PREFIX]) == 0
    assert f"{PREFIX}-mb" in capsys.readouterr().out
    assert main(["testbed", "down", "--prefix", PREFIX]) == 0
    assert main(["testbed", "status", "--prefix", PREFIX]) == 0
    assert "clean" in capsys.readouterr().out


def test_bad_input_is_one_line(capsys):
    assert main(["testbed", "up", "--ues", "0", "--prefix", PREFIX]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ues" in err
    with pytest.raises(SystemExit):
        main(["testbed", "up", "--prefix", "Bad-Prefix"])


def test_real_nic_mode_bridges_two_interfaces():
    """Two veths stand in for NICs: their far ends live in two host namespaces."""
    p = f"nt{os.getpid() % 1000}n"
    a, b = f"{p}-ha", f"{p}-hb"
    for ns in (a, b):
        netns.run(["ip", "netns", "add", ns])
    try:
        netns.ip_batch([f"link add {p}x type veth peer name eth0 netns {a}",
                        f"link add {p}y type veth peer name eth0 netns {b}"])
        netns.ip_batch(["addr add 198.18.200.1/24 dev eth0", "link set eth0 up"], ns=a)
        netns.ip_batch(["addr add 198.18.200.2/24 dev eth0", "link set eth0 up"], ns=b)
        tb = testbed.up(prefix=p, ue_if=f"{p}x", core_if=f"{p}y")
        assert tb.real_nics and tb.namespaces == [f"{p}-mb"]
        assert _udp_ok(a, b, "198.18.200.2", False)
        testbed.down(p)
        # the NICs are back where they were
        links = netns.run(["ip", "-o", "link", "show"]).stdout
        assert f"{p}x" in links and f"{p}y" in links
    finally:
        testbed.down(p)
        netns.run(["ip", "link", "del", f"{p}x"], check=False)
        netns.run(["ip", "link", "del", f"{p}y"], check=False)
        for ns in (a, b):
            netns.run(["ip", "netns", "del", ns], check=False)
