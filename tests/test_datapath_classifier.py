"""The tc classifier: BPF_PROG_TEST_RUN on crafted packets, and attached to real interfaces."""

from __future__ import annotations

import os
import socket
import time

import pytest

pytestmark = pytest.mark.root

scapy = pytest.importorskip("scapy.all")
from scapy.all import ARP, IP, UDP, Dot1Q, Ether, ICMPv6ND_NS, IPv6, Raw, fragment  # noqa: E402

from neuralemu.datapath import netns, testbed  # noqa: E402
from neuralemu.datapath.bpfsys import list_programs, prog_test_run  # noqa: E402
from neuralemu.datapath.classifier import MARK_BASE, TC_ACT_OK, TC_ACT_SHOT  # noqa: E402

PREFIX = f"nt{os.getpid() % 1000}c"
UE4, UE6 = "198.18.0.2", "fd4e:4555:6d75:1::2"
SRV4, SRV6 = "198.19.0.2", "fd4e:4555:6d75:2::2"
MAC = dict(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")


@pytest.fixture(scope="module")
def cls():
    from neuralemu.datapath.classifier import Classifier
    c = Classifier(PREFIX)
    c.set_ue(UE4, 17, 0)
    c.set_ue(UE6, 17, 0)
    c.set_ue("198.18.0.3", 18, 1)
    yield c
    c.close()


def run_ul(c, pkt):
    return prog_test_run(c.fn_ul.fd, bytes(pkt))


def run_dl(c, pkt):
    return prog_test_run(c.fn_dl.fd, bytes(pkt))


def test_ipv4_uplink_and_downlink_marks(cls):
    r = run_ul(cls, Ether(**MAC) / IP(src=UE4, dst=SRV4) / UDP() / Raw(b"x" * 100))
    assert (r["retval"], r["mark"]) == (TC_ACT_OK, MARK_BASE | 1)      # UE 0 uplink = queue 1
    r = run_dl(cls, Ether(**MAC) / IP(src=SRV4, dst=UE4) / UDP())
    assert (r["retval"], r["mark"]) == (TC_ACT_OK, MARK_BASE | 0)      # UE 0 downlink = queue 0
    r = run_dl(cls, Ether(**MAC) / IP(src=SRV4, dst="198.18.0.3") / UDP())
    assert r["mark"] == MARK_BASE | 2                                   # UE 1 downlink
    # the direction picks the address: a packet *to* the UE seen on the uplink side is not its uplink
    r = run_ul(cls, Ether(**MAC) / IP(src=SRV4, dst=UE4) / UDP())
    assert r["mark"] == 0


def test_ipv6_vlan_qinq_fragments(cls):
    assert run_ul(cls, Ether(**MAC) / IPv6(src=UE6, dst=SRV6) / UDP())["mark"] == MARK_BASE | 1
    assert run_dl(cls, Ether(**MAC) / IPv6(src=SRV6, dst=UE6) / UDP())["mark"] == MARK_BASE | 0
    assert run_ul(cls, Ether(**MAC) / Dot1Q(vlan=7) / IP(src=UE4, dst=SRV4) / UDP())["mark"] == MARK_BASE | 1
    assert run_ul(cls, Ether(**MAC) / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IPv6(src=UE6, dst=SRV6) / UDP()
                  )["mark"] == MARK_BASE | 1
    frags = fragment(IP(src=UE4, dst=SRV4) / UDP() / Raw(b"y" * 3000), fragsize=1000)
    assert len(frags) >= 3
    for f in frags:      # every fragment carries the addresses, so every one is classified
        assert run_ul(cls, Ether(**MAC) / f)["mark"] == MARK_BASE | 1


def test_arrival_counters_are_exact(cls):
    before = cls.arrivals().get(3, (0, 0))
    pkt = Ether(**MAC) / IP(src="198.18.0.3", dst=SRV4) / UDP() / Raw(b"z" * 472)   # 500-byte IP packet
    for _ in range(5):
        run_ul(cls, pkt)
    after = cls.arrivals()[3]
    assert after[0] - before[0] == 5 * 500 and after[1] - before[1] == 5


def test_unclassified_pass_and_drop_are_counted(cls):
    pkt = Ether(**MAC) / IP(src="198.18.0.99", dst=SRV4) / UDP() / Raw(b"u" * 72)
    o0 = cls.other()
    r = run_ul(cls, pkt)
    assert (r["retval"], r["mark"]) == (TC_ACT_OK, 0)
    o1 = cls.other()
    assert o1["unclassified_pass"][1] == o0["unclassified_pass"][1] + 1
    cls.set_unclassified("drop")
    try:
        assert run_ul(cls, pkt)["retval"] == TC_ACT_SHOT
        o2 = cls.other()
        assert o2["unclassified_drop"][1] == o1["unclassified_drop"][1] + 1
        assert o2["unclassified_drop"][0] - o1["unclassified_drop"][0] == len(bytes(pkt))
        # link control still passes under the drop policy
        assert run_ul(cls, Ether(**MAC) / ARP())["retval"] == TC_ACT_OK
        ns = Ether(**MAC) / IPv6(src=UE6, dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fd4e:4555:6d75:1::1")
        assert run_ul(cls, ns)["retval"] == TC_ACT_OK
        assert cls.other()["control"][1] >= 1 and cls.other()["non_ip"][1] >= 1
        # classified traffic is unaffected by the policy
        assert run_ul(cls, Ether(**MAC) / IP(src=UE4, dst=SRV4) / UDP())["mark"] == MARK_BASE | 1
    finally:
        cls.set_unclassified("pass")


def test_garbage_and_truncated_are_malformed_not_marked(cls):
    o0 = cls.other()["malformed_pass"][1]
    garbage = bytes(Ether(type=0x0800, **MAC)) + bytes(range(40))            # IPv4 ethertype, version 0
    r = prog_test_run(cls.fn_ul.fd, garbage)
    assert (r["retval"], r["mark"]) == (TC_ACT_OK, 0)
    vlan = bytes(Ether(**MAC) / Dot1Q(vlan=3) / IP(src=UE4, dst=SRV4) / UDP())
    for n in (18, 22, 30):                                                   # cut inside the tags / IP header
        r = prog_test_run(cls.fn_ul.fd, vlan[:n])
        assert r["mark"] == 0
    assert cls.other()["malformed_pass"][1] == o0 + 4
    cls.set_unclassified("drop")
    try:
        assert prog_test_run(cls.fn_ul.fd, garbage)["retval"] == TC_ACT_SHOT
        assert cls.other()["malformed_drop"][1] >= 1
    finally:
        cls.set_unclassified("pass")


def test_map_updates_at_run_time(cls):
    pkt = Ether(**MAC) / IP(src="198.18.0.50", dst=SRV4) / UDP()
    assert run_ul(cls, pkt)["mark"] == 0
    cls.set_ue("198.18.0.50", 99, 5)
    assert run_ul(cls, pkt)["mark"] == MARK_BASE | 11
    cls.remove_address("198.18.0.50")
    assert run_ul(cls, pkt)["mark"] == 0


def test_programs_are_named_by_prefix(cls):
    names = {p["name"] for p in list_programs()}
    assert {f"{PREFIX}_cls_ul", f"{PREFIX}_cls_dl"} <= names


def _udp_roundtrip(tb, n: int, payload: int = 200, v6: bool = False) -> int:
    """Send ``n`` UDP datagrams UE1 -> server; return how many arrived."""
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    with netns.entered(tb.ns_srv):
        rx = socket.socket(fam, socket.SOCK_DGRAM)
    with netns.entered(tb.ns_ue(1)):
        tx = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        rx.bind((tb.server_ipv6 if v6 else tb.server_ipv4, 0))
        rx.settimeout(0.3)
        port = rx.getsockname()[1]
        for _ in range(n):
            tx.sendto(b"p" * payload, (tb.server_ipv6 if v6 else tb.server_ipv4, port))
        got = 0
        try:
            while got < n:
                rx.recv(2048)
                got += 1
        except socket.timeout:
            pass
        return got
    finally:
        rx.close()
        tx.close()


def test_attached_to_real_interfaces():
    from neuralemu.datapath.classifier import Classifier
    prefix = f"nt{os.getpid() % 1000}a"
    tb = testbed.up(1, prefix)
    c = Classifier(prefix)
    try:
        c.attach(tb.ns_mb, tb.ul_ifaces, tb.dl_ifaces)
        filt = netns.run(["tc", "-n", tb.ns_mb, "filter", "show", "dev", "br0", "ingress"]).stdout
        assert f"{prefix}_cls_ul" in filt and "direct-action" in filt
        # unknown UE, pass policy: delivered, counted as unclassified
        base = c.other()["unclassified_pass"][1]
        assert _udp_roundtrip(tb, 20) == 20
        assert c.other()["unclassified_pass"][1] >= base + 20
        # classified: counted per queue with exact IP bytes (no NFQUEUE rule here, so it flows)
        c.set_ue(tb.ue_ipv4(1), 1, 0)
        c.set_ue(tb.ue_ipv6(1), 1, 0)
        assert _udp_roundtrip(tb, 10, payload=200) == 10
        assert _udp_roundtrip(tb, 10, payload=200, v6=True) == 10
        b, p = c.arrivals()[1]
        assert p == 20 and b == 10 * (200 + 28) + 10 * (200 + 48)
        # drop policy on a real interface: nothing arrives, every packet counted
        c.remove_address(tb.ue_ipv4(1))
        c.set_unclassified("drop")
        d0 = c.other()["unclassified_drop"][1]
        assert _udp_roundtrip(tb, 15) == 0
        time.sleep(0.05)
        assert c.other()["unclassified_drop"][1] >= d0 + 15   # (+ IPv6 link-local chatter)
    finally:
        c.close()
        testbed.down(prefix)
    assert testbed.status(prefix) == []
