"""The only kernel state NeuralEmu puts in the root namespace: the outside link of ``shell``.

``neuralemu shell`` links its testbed's core side to the root namespace so the
command under test reaches the outside, like ``mm-link``::

    P-ue1 -> P-mb (the emulated cell) -> core -> P-srv --veth-- P-out [root namespace] -> outside
                                               MASQUERADE on "out"     MASQUERADE + FORWARD

The server namespace routes by default to the root namespace over a veth pair
(``out`` in ``P-srv``, ``P-out`` in the root namespace, a free /30 of
:data:`LINK_NET`) and masquerades what leaves through it, so replies come back
to it and cross the cell downlink; the middlebox routes by default to the
server. In the root namespace, a MASQUERADE rule (for the outside world) and two
FORWARD rules let the link's traffic out; IPv4 forwarding is switched on if it was
off, and back off when the last NeuralEmu link goes. Every rule carries the
comment ``neuralemu:<prefix>``; this module finds and deletes exactly those.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from neuralemu.datapath import netns

LINK_NET = ipaddress.IPv4Network("198.19.128.0/17")   # RFC 2544 range, beyond the testbed's core /24
_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

TAG = "neuralemu:"
_BINS = ("iptables", "ip6tables", "iptables-legacy", "ip6tables-legacy")


def _saves():
    for b in _BINS:
        if shutil.which(b) and shutil.which(b + "-save"):
            yield b, netns.run([b + "-save"], check=False).stdout


def list_rules(prefix: str | None = None) -> list[tuple[str, str]]:
    """[(prefix, "bin table rule")] for every root-namespace rule tagged by this project."""
    rules = []
    for b, save in _saves():
        table = "filter"
        for line in save.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            m = re.search(r'--comment "?' + TAG + r'([a-z0-9]+)"?', line)
            if line.startswith("-A ") and m and (prefix is None or m.group(1) == prefix):
                rules.append((m.group(1), f"{b} -t {table} {line}"))
    return rules


def rule_prefixes() -> set[str]:
    return {p for p, _ in list_rules()}


def remove_rules(prefix: str) -> int:
    """Remove ``prefix``'s root-namespace rules and outside link (see :func:`unlink_outside`)."""
    removed = 0
    for _, rule in list_rules(prefix):
        args = shlex.split(rule)
        b, table, spec = args[0], args[2], args[3:]
        spec[0] = "-D"
        if netns.run([b, "-t", table] + spec, check=False).returncode == 0:
            removed += 1
    unlink_outside(prefix)
    return removed


def add_rule(prefix: str, table: str, spec: list[str], v6: bool = False) -> None:
    b = "ip6tables" if v6 else "iptables"
    if not shutil.which(b):
        b = netns.iptables_bin(v6)
    netns.run([b, "-t", table] + spec + ["-m", "comment", "--comment", TAG + prefix])


# -- the outside link of `shell` ---------------------------------------------------------
@dataclass
class OutsideLink:
    prefix: str
    root_if: str          # veth end in the root namespace
    root_ip: str          # its address: the server namespace's default gateway
    ns_ip: str            # the server namespace's end (what the outside sees as the source)

    @property
    def state_file(self) -> Path:
        return _state_dir() / f"{self.prefix}.json"


def _state_dir() -> Path:
    from neuralemu.datapath.testbed import STATE_DIR
    return STATE_DIR / "outside"


def _root_ifname(prefix: str) -> str:
    return f"{prefix}-out"


def _free_block() -> ipaddress.IPv4Network:
    """A /30 of :data:`LINK_NET` with no address of the root namespace in it."""
    out = netns.run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    used = [ipaddress.IPv4Interface(m) for m in re.findall(r"inet (\S+)", out)]
    for block in LINK_NET.subnets(new_prefix=30):
        if not any(u.ip in block for u in used):
            return block
    raise RuntimeError(f"no free /30 left in {LINK_NET} for the outside link")


def link_outside(tb) -> OutsideLink:
    """Link testbed ``tb``'s server namespace to the root namespace with NAT (see the module
    docstring). Undone by :func:`unlink_outside` (and by ``testbed down``)."""
    prefix = tb.prefix
    unlink_outside(prefix)
    block = _free_block()
    hosts = list(block.hosts())
    link = OutsideLink(prefix, _root_ifname(prefix), str(hosts[0]), str(hosts[1]))
    _state_dir().mkdir(parents=True, exist_ok=True)
    forward_was = _FORWARD.read_text().strip() if _FORWARD.exists() else "1"
    link.state_file.write_text(json.dumps(link.__dict__))
    netns.ip_batch([f"link add {link.root_if} type veth peer name out netns {tb.ns_srv}",
                    f"link set {link.root_if} alias {TAG}{prefix}",
                    f"addr add {link.root_ip}/30 dev {link.root_if}",
                    f"link set {link.root_if} up"])
    netns.ip_batch([f"addr add {link.ns_ip}/30 dev out", "link set out up",
                    f"route add default via {link.root_ip}"], ns=tb.ns_srv)
    netns.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], ns=tb.ns_srv)
    netns.run([netns.iptables_bin(False), "-t", "nat", "-A", "POSTROUTING", "-o", "out", "-m",
               "comment", "--comment", TAG + prefix, "-j", "MASQUERADE"], ns=tb.ns_srv)
    netns.ip_batch([f"route replace default via {tb.server_ipv4}"], ns=tb.ns_mb)
    # root namespace: out to the world (the host's own addresses are reached without these)
    add_rule(prefix, "nat", ["-A", "POSTROUTING", "-s", str(block), "!", "-o", link.root_if,
                             "-j", "MASQUERADE"])
    add_rule(prefix, "filter", ["-I", "FORWARD", "-i", link.root_if, "-j", "ACCEPT"])
    add_rule(prefix, "filter", ["-I", "FORWARD", "-o", link.root_if, "-m", "conntrack",
                                "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"])
    if forward_was != "1":
        (_state_dir() / "forward_was_off").touch()     # put back by the last unlink_outside
        _FORWARD.write_text("1\n")
    return link


def unlink_outside(prefix: str) -> bool:
    """Remove ``prefix``'s outside link: root rules, the root-side veth, and IPv4 forwarding
    back off if NeuralEmu switched it on and no other prefix's link remains. True if there
    was one."""
    state = _state_dir() / f"{prefix}.json"
    had = state.exists()
    for _, rule in list_rules(prefix):
        args = shlex.split(rule)
        spec = args[3:]
        spec[0] = "-D"
        netns.run([args[0], "-t", args[2]] + spec, check=False)
    ifname = _root_ifname(prefix)
    if netns.run(["ip", "link", "show", ifname], check=False).returncode == 0:
        netns.run(["ip", "link", "del", ifname], check=False)
    state.unlink(missing_ok=True)
    marker = _state_dir() / "forward_was_off"
    if marker.exists() and not list(_state_dir().glob("*.json")):
        if _FORWARD.exists():
            _FORWARD.write_text("0\n")
        marker.unlink(missing_ok=True)
    return had
