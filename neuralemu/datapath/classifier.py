"""Load, attach and drive the tc classifier (``classify.c``) with bcc.

One :class:`Classifier` per testbed. Its programs are named
``<prefix>_cls_ul`` / ``<prefix>_cls_dl`` so ``testbed status`` can tell whose
they are. The UE table (address -> UE, queue ids) is a BPF hash map that can be
changed while traffic flows (:meth:`set_ue`, :meth:`remove_address`).

Queue ids: UE slot ``k`` (0-based, in the order the live emulation registers
users) owns queue ``2k`` (downlink) and ``2k + 1`` (uplink). The packet mark
is ``MARK_BASE | queue``; the NFQUEUE number is the queue id itself.
"""

from __future__ import annotations

import ctypes
import ipaddress
from pathlib import Path

from neuralemu.datapath import netns

SOURCE = Path(__file__).with_name("classify.c")
MARK_BASE = 0x4E450000
MARK_MASK = 0xFFFF0000
MAX_QUEUES = 512
OTHER_NAMES = ("unclassified_pass", "unclassified_drop", "non_ip", "malformed_pass",
               "malformed_drop", "control")
TC_ACT_OK, TC_ACT_SHOT = 0, 2


def queue_id(ue_index: int, direction: str) -> int:
    return 2 * ue_index + (1 if direction == "ul" else 0)


def queue_of(queue: int) -> tuple[int, str]:
    """(ue_index, direction) of a queue id."""
    return queue >> 1, "ul" if queue & 1 else "dl"


def addr_key(address: str) -> bytes:
    """16-byte map key: the IPv6 address, or the IPv4-mapped form of an IPv4 address."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return bytes(10) + b"\xff\xff" + ip.packed
    return ip.packed


class Classifier:
    """The compiled programs and their maps. Not attached until :meth:`attach`."""

    def __init__(self, prefix: str, *, unclassified: str = "pass", max_queues: int = MAX_QUEUES):
        from bcc import BPF   # Debian's python3-bpfcc; imported late so the CLI loads without it
        if unclassified not in ("pass", "drop"):
            raise ValueError("unclassified must be 'pass' or 'drop'")
        self.prefix = prefix
        self.max_queues = max_queues
        self.fn_ul_name = f"{prefix}_cls_ul"
        self.fn_dl_name = f"{prefix}_cls_dl"
        cflags = [f"-DFN_UL={self.fn_ul_name}", f"-DFN_DL={self.fn_dl_name}",
                  f"-DMAX_QUEUES={max_queues}", f"-DMARK_BASE={MARK_BASE:#x}"]
        self._bpf = BPF(src_file=str(SOURCE).encode(), cflags=cflags)
        self.fn_ul = self._bpf.load_func(self.fn_ul_name.encode(), BPF.SCHED_CLS)
        self.fn_dl = self._bpf.load_func(self.fn_dl_name.encode(), BPF.SCHED_CLS)
        self.ue_by_addr = self._bpf[b"ue_by_addr"]
        self._arrivals = self._bpf[b"arrivals"]
        self._other = self._bpf[b"other"]
        self._config = self._bpf[b"config"]
        self._attached: list[tuple[str | None, str]] = []
        self.set_unclassified(unclassified)

    # -- configuration ---------------------------------------------------------
    def set_unclassified(self, policy: str, enabled: bool = True) -> None:
        cfg = self._config[ctypes.c_int(0)]
        cfg.unclassified_drop = 1 if policy == "drop" else 0
        cfg.enabled = 1 if enabled else 0
        self._config[ctypes.c_int(0)] = cfg
        self.unclassified = policy

    def set_ue(self, address: str, ue_id: int, ue_index: int) -> None:
        """Classify ``address`` (as source uplink, as destination downlink) to a UE."""
        if not 0 <= queue_id(ue_index, "ul") < self.max_queues:
            raise ValueError(f"UE index {ue_index} exceeds {self.max_queues // 2} users")
        key = self.ue_by_addr.Key()
        ctypes.memmove(key.addr, addr_key(address), 16)
        leaf = self.ue_by_addr.Leaf()
        leaf.ue_id = ue_id
        leaf.queue_dl = queue_id(ue_index, "dl")
        leaf.queue_ul = queue_id(ue_index, "ul")
        leaf.flags = 0
        self.ue_by_addr[key] = leaf

    def remove_address(self, address: str) -> None:
        key = self.ue_by_addr.Key()
        ctypes.memmove(key.addr, addr_key(address), 16)
        try:
            del self.ue_by_addr[key]
        except KeyError:
            pass

    # -- counters --------------------------------------------------------------
    def arrivals(self) -> dict[int, tuple[int, int]]:
        """{queue: (bytes, packets)} counted at ingress, summed over CPUs (non-zero only)."""
        out = {}
        for k, per_cpu in self._arrivals.items():
            b = sum(c.bytes for c in per_cpu)
            p = sum(c.packets for c in per_cpu)
            if p:
                out[k.value] = (b, p)
        return out

    def other(self) -> dict[str, tuple[int, int]]:
        """Counters of traffic not held: {name: (bytes, packets)}."""
        out = {name: (0, 0) for name in OTHER_NAMES}
        for k, per_cpu in self._other.items():
            if k.value < len(OTHER_NAMES):
                out[OTHER_NAMES[k.value]] = (sum(c.bytes for c in per_cpu),
                                             sum(c.packets for c in per_cpu))
        return out

    # -- attachment ------------------------------------------------------------
    def attach(self, ns: str | None, ul_ifaces: list[str], dl_ifaces: list[str]) -> None:
        """Add a clsact qdisc and the direct-action filter on each interface's ingress."""
        from pyroute2 import IPRoute
        with netns.entered(ns):
            ipr = IPRoute()
        try:
            for ifaces, fn in ((ul_ifaces, self.fn_ul), (dl_ifaces, self.fn_dl)):
                for dev in ifaces:
                    idx = ipr.link_lookup(ifname=dev)
                    if not idx:
                        raise netns.CommandError(["attach", dev], 1, f"no device {dev} in {ns}")
                    idx = idx[0]
                    try:
                        ipr.tc("del", "clsact", idx)
                    except Exception:
                        pass
                    ipr.tc("add", "clsact", idx)
                    self._attached.append((ns, dev))
                    ipr.tc("add-filter", "bpf", idx, ":1", fd=fn.fd, name=fn.name,
                           parent="ffff:fff2", classid=1, direct_action=True)
        finally:
            ipr.close()

    def detach(self) -> None:
        for ns, dev in self._attached:
            if ns is None or netns.exists(ns):
                cmd = ["tc"] + (["-n", ns] if ns else []) + ["qdisc", "del", "dev", dev, "clsact"]
                netns.run(cmd, check=False)
        self._attached.clear()

    def close(self) -> None:
        self.detach()
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
