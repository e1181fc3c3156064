"""The netns testbed: N UE hosts, a middlebox, a server, all tagged with a prefix.

Topology (``prefix`` = P, UE i = 1..N)::

    P-ue1 [eth0 198.18.0.2] --veth-- u1 \\
    P-ue2 [eth0 198.18.0.3] --veth-- u2  > br0 198.18.0.1 [P-mb] core 198.19.0.1 --veth-- eth0 198.19.0.2 [P-srv]
    ...                                /

The middlebox routes between its UE side (the bridge ``br0``) and its core side
(``core``). UEs carry /32 (/128) addresses with the middlebox as their only
gateway, so even UE-to-UE traffic crosses the middlebox, as it crosses the
core in a real network. Addresses come from 198.18.0.0/15 (RFC 2544
benchmarking range) and from the ULA prefix fd4e:4555:6d75::/48 (RFC 4193),
which no real LAN uses.

With real NICs (``ue_if`` and ``core_if``), both NICs move into the middlebox
namespace and are bridged; the UE and server namespaces are not created.

Every namespace carries the tag ``neuralemu:P`` as the alias of its loopback
device, so ``down --all`` and ``status`` find exactly what this project
created and nothing else. A JSON state file in ``/run/neuralemu/`` records
each testbed, so the NICs of a real-NIC testbed go back where they were.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuralemu.datapath import netns
from neuralemu.errors import InputError

STATE_DIR = Path(os.environ.get("NEURALEMU_STATE_DIR", "/run/neuralemu"))
TAG = "neuralemu:"
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
MAX_UES = 4000

UE_NET_V4 = ipaddress.IPv4Network("198.18.0.0/16")
CORE_NET_V4 = ipaddress.IPv4Network("198.19.0.0/24")
UE_NET_V6 = ipaddress.IPv6Network("fd4e:4555:6d75:1::/64")
CORE_NET_V6 = ipaddress.IPv6Network("fd4e:4555:6d75:2::/64")


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix or ""):
        raise InputError("--prefix", f"'{prefix}' must be 1-8 characters, a lowercase letter "
                         "then lowercase letters or digits")
    return prefix


@dataclass
class Testbed:
    """What ``up`` built; everything the datapath needs to know about it."""

    prefix: str
    n_ues: int
    mtu: int = 1500
    ue_if: str | None = None          # real-NIC mode: NIC on the UE side
    core_if: str | None = None        # real-NIC mode: NIC on the core side
    created_us: int = field(default_factory=lambda: time.time_ns() // 1000)

    # -- names ---------------------------------------------------------------
    @property
    def real_nics(self) -> bool:
        return self.ue_if is not None

    @property
    def ns_mb(self) -> str:
        return f"{self.prefix}-mb"

    @property
    def ns_srv(self) -> str | None:
        return None if self.real_nics else f"{self.prefix}-srv"

    def ns_ue(self, i: int) -> str:
        """Namespace of UE ``i`` (1-based)."""
        self._check_ue(i)
        return f"{self.prefix}-ue{i}"

    @property
    def namespaces(self) -> list[str]:
        if self.real_nics:
            return [self.ns_mb]
        return [self.ns_mb, self.ns_srv] + [self.ns_ue(i) for i in range(1, self.n_ues + 1)]

    @property
    def ul_ifaces(self) -> list[str]:
        """Middlebox interfaces whose ingress carries uplink (UE -> core)."""
        return [self.ue_if] if self.real_nics else ["br0"]

    @property
    def dl_ifaces(self) -> list[str]:
        """Middlebox interfaces whose ingress carries downlink (core -> UE)."""
        return [self.core_if] if self.real_nics else ["core"]

    # -- addresses -----------------------------------------------------------
    def _check_ue(self, i: int) -> None:
        if not 1 <= i <= MAX_UES:
            raise InputError("testbed", f"UE index {i} out of range 1..{MAX_UES}")

    def ue_ipv4(self, i: int) -> str:
        self._check_ue(i)
        return str(UE_NET_V4.network_address + 1 + i)

    def ue_ipv6(self, i: int) -> str:
        self._check_ue(i)
        return str(UE_NET_V6.network_address + 1 + i)

    gw_ue_ipv4 = str(UE_NET_V4.network_address + 1)
    gw_ue_ipv6 = str(UE_NET_V6.network_address + 1)
    gw_core_ipv4 = str(CORE_NET_V4.network_address + 1)
    gw_core_ipv6 = str(CORE_NET_V6.network_address + 1)
    server_ipv4 = str(CORE_NET_V4.network_address + 2)
    server_ipv6 = str(CORE_NET_V6.network_address + 2)

    # -- state ----------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"{self.prefix}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, prefix: str) -> "Testbed | None":
        path = STATE_DIR / f"{prefix}.json"
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def is_up(self) -> bool:
        return all(ns_tag(ns) == TAG + self.prefix for ns in self.namespaces)


def ns_tag(ns: str) -> str | None:
    """The ``neuralemu:<prefix>`` tag of a namespace (alias of its ``lo``), or None."""
    if not netns.exists(ns):
        return None
    proc = netns.run(["ip", "-n", ns, "-o", "link", "show", "lo"], check=False)
    m = re.search(r"alias (\S+)", proc.stdout)
    return m.group(1) if m else None


def tagged_namespaces(prefix: str | None = None) -> dict[str, str]:
    """Namespaces this project created: {name: prefix}. Only tagged ones, never others'."""
    found = {}
    for ns in netns.list_netns():
        tag = ns_tag(ns)
        if tag and tag.startswith(TAG):
            p = tag[len(TAG):]
            if prefix is None or p == prefix:
                found[ns] = p
    return found


def _sysctl(ns: str, settings: dict[str, str]) -> None:
    args = ["sysctl", "-q", "-w"] + [f"{k}={v}" for k, v in settings.items()]
    netns.run(args, ns=ns)


def up(n_ues: int = 1, prefix: str = "ne", *, mtu: int = 1500, ue_if: str | None = None,
       core_if: str | None = None) -> Testbed:
    """Build the testbed (idempotent: an identical one that is up is returned as is)."""
    check_prefix(prefix)
    if (ue_if is None) != (core_if is None):
        raise InputError("testbed", "real-NIC mode needs both --ue-if and --core-if")
    if ue_if is None and not 1 <= n_ues <= MAX_UES:
        raise InputError("--ues", f"must be 1..{MAX_UES}, got {n_ues}")
    if not 576 <= mtu <= 9000:
        raise InputError("--mtu", f"must be 576..9000, got {mtu}")
    tb = Testbed(prefix=prefix, n_ues=n_ues if ue_if is None else 0, mtu=mtu,
                 ue_if=ue_if, core_if=core_if)
    old = Testbed.load(prefix)
    if old is not None and old.is_up() and (old.n_ues, old.mtu, old.ue_if, old.core_if) == (
            tb.n_ues, tb.mtu, tb.ue_if, tb.core_if):
        return old
    down(prefix)   # a different or half-built testbed with this prefix: start clean
    try:
        if tb.real_nics:
            _build_real_nics(tb)
        else:
            _build_veth(tb)
        tb.save()
    except BaseException:
        down(prefix)
        raise
    return tb


def _build_veth(tb: Testbed) -> None:
    P, mtu = tb.prefix, tb.mtu
    netns.ip_batch([f"netns add {ns}" for ns in tb.namespaces])
    for ns in tb.namespaces:    # tag first: from now on down() finds it
        netns.ip_batch([f"link set lo alias {TAG}{P}", "link set lo up"], ns=ns)
    _sysctl(tb.ns_mb, {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1",
                       "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                       "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"})
    mb = [f"link add br0 mtu {mtu} type bridge stp_state 0 forward_delay 0",
          f"link add core mtu {mtu} type veth peer name eth0 netns {tb.ns_srv} mtu {mtu}"]
    for i in range(1, tb.n_ues + 1):
        mb.append(f"link add u{i} mtu {mtu} type veth peer name eth0 netns {tb.ns_ue(i)} mtu {mtu}")
        mb.append(f"link set u{i} master br0 up")
    mb += [f"addr add {tb.gw_ue_ipv4}/{UE_NET_V4.prefixlen} dev br0",
           f"addr add {tb.gw_ue_ipv6}/{UE_NET_V6.prefixlen} dev br0 nodad",
           f"addr add {tb.gw_core_ipv4}/{CORE_NET_V4.prefixlen} dev core",
           f"addr add {tb.gw_core_ipv6}/{CORE_NET_V6.prefixlen} dev core nodad",
           "link set br0 up", "link set core up"]
    netns.ip_batch(mb, ns=tb.ns_mb)
    netns.ip_batch([f"addr add {tb.server_ipv4}/{CORE_NET_V4.prefixlen} dev eth0",
                    f"addr add {tb.server_ipv6}/{CORE_NET_V6.prefixlen} dev eth0 nodad",
                    "link set eth0 up",
                    f"route add {UE_NET_V4.supernet(1)} via {tb.gw_core_ipv4}",
                    f"route add fd4e:4555:6d75::/48 via {tb.gw_core_ipv6}"], ns=tb.ns_srv)
    for i in range(1, tb.n_ues + 1):
        netns.ip_batch([f"addr add {tb.ue_ipv4(i)}/32 dev eth0",
                        f"addr add {tb.ue_ipv6(i)}/128 dev eth0 nodad",
                        "link set eth0 up",
                        f"route add {tb.gw_ue_ipv4} dev eth0",
                        f"route add default via {tb.gw_ue_ipv4}",
                        f"route add {tb.gw_ue_ipv6} dev eth0",
                        f"route add default via {tb.gw_ue_ipv6}"], ns=tb.ns_ue(i))


def _build_real_nics(tb: Testbed) -> None:
    for nic in (tb.ue_if, tb.core_if):
        if netns.run(["ip", "link", "show", nic], check=False).returncode != 0:
            raise InputError("testbed", f"no interface '{nic}' in the current namespace")
    netns.ip_batch([f"netns add {tb.ns_mb}"])
    netns.ip_batch([f"link set lo alias {TAG}{tb.prefix}", "link set lo up"], ns=tb.ns_mb)
    tb.save()       # from here on, down() knows to give the NICs back
    netns.ip_batch([f"link set {tb.ue_if} netns {tb.ns_mb}", f"link set {tb.core_if} netns {tb.ns_mb}"])
    # Bridged frames go through iptables (br_netfilter), where NFQUEUE holds them.
    netns.ip_batch(["link add br0 type bridge stp_state 0 forward_delay 0",
                    f"link set {tb.ue_if} master br0 up", f"link set {tb.core_if} master br0 up",
                    "link set br0 up"], ns=tb.ns_mb)
    _sysctl(tb.ns_mb, {"net.bridge.bridge-nf-call-iptables": "1",
                       "net.bridge.bridge-nf-call-ip6tables": "1"})


def _kill_pids(ns: str) -> None:
    pids = netns.pids_in(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(_alive(p) for p in alive):
            time.sleep(0.02)
        pids = [p for p in alive if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie (our own un-reaped child) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def down(prefix: str) -> list[str]:
    """Remove every namespace (and so every veth, filter, program, rule in it) of ``prefix``.

    Real NICs go back to the namespace they came from, with their clsact qdisc
    removed. Returns the namespaces removed.
    """
    check_prefix(prefix)
    tb = Testbed.load(prefix)
    removed = []
    if tb is not None and tb.real_nics and netns.exists(tb.ns_mb):
        for nic in (tb.ue_if, tb.core_if):
            netns.run(["tc", "qdisc", "del", "dev", nic, "clsact"], ns=tb.ns_mb, check=False)
            netns.run(["ip", "-n", tb.ns_mb, "link", "set", nic, "nomaster"], check=False)
            netns.run(["ip", "-n", tb.ns_mb, "link", "set", nic, "netns", "1"], check=False)
    for ns in tagged_namespaces(prefix):
        _kill_pids(ns)
        netns.run(["ip", "netns", "del", ns], check=False)
        removed.append(ns)
    from neuralemu.datapath import rootns   # root-namespace rules of `shell`
    rootns.remove_rules(prefix)
    try:
        (STATE_DIR / f"{prefix}.json").unlink()
    except FileNotFoundError:
        pass
    return removed


def down_all() -> list[str]:
    removed = []
    prefixes = set(tagged_namespaces().values())
    if STATE_DIR.is_dir():
        prefixes |= {p.stem for p in STATE_DIR.glob("*.json") if PREFIX_RE.match(p.stem)}
    from neuralemu.datapath import rootns
    prefixes |= set(rootns.rule_prefixes())
    for p in sorted(prefixes):
        removed += down(p)
    return removed


def status(prefix: str | None = None) -> list[dict]:
    """Everything of this project still in the kernel, one dict per object.

    Kinds: ``netns``, ``qdisc``, ``filter``, ``iptables``, ``bpf_prog``,
    ``state`` (a state file without namespaces).
    """
    from neuralemu.datapath import bpfsys, rootns
    items: list[dict] = []
    spaces = tagged_namespaces(prefix)
    for ns, p in sorted(spaces.items()):
        items.append({"kind": "netns", "prefix": p, "name": ns})
        qd = netns.run(["tc", "-n", ns, "qdisc", "show"], check=False).stdout
        for line in qd.splitlines():
            if "clsact" in line or "htb" in line or "tbf" in line:
                items.append({"kind": "qdisc", "prefix": p, "name": f"{ns}: {line.strip()}"})
        links = netns.run(["ip", "-n", ns, "-o", "link", "show"], check=False).stdout
        for m in re.finditer(r"^\d+: ([^:@]+)", links, re.M):
            dev = m.group(1)
            for hook in ("ingress", "egress"):
                out = netns.run(["tc", "-n", ns, "filter", "show", "dev", dev, hook], check=False).stdout
                for line in out.splitlines():
                    if "bpf" in line and "handle" in line:
                        items.append({"kind": "filter", "prefix": p,
                                      "name": f"{ns}/{dev}/{hook}: {line.strip()}"})
        for v6 in (False, True):
            try:
                save = netns.run([netns.iptables_bin(v6) + "-save"], ns=ns, check=False).stdout
            except netns.CommandError:
                continue
            for line in save.splitlines():
                if TAG in line:
                    items.append({"kind": "ip6tables" if v6 else "iptables", "prefix": p,
                                  "name": f"{ns}: {line}"})
    for rule in rootns.list_rules(prefix):
        items.append({"kind": "iptables", "prefix": rule[0], "name": f"(root ns): {rule[1]}"})
    for prog in bpfsys.list_programs():
        name = prog["name"]
        m = re.match(r"^([a-z][a-z0-9]{0,7})_cls_(ul|dl)$", name)
        if m and (prefix is None or m.group(1) == prefix):
            items.append({"kind": "bpf_prog", "prefix": m.group(1),
                          "name": f"id {prog['id']} {name} (held by a running process)"})
    if STATE_DIR.is_dir():
        for f in sorted(STATE_DIR.glob("*.json")):
            if (prefix is None or f.stem == prefix) and f.stem not in spaces.values():
                items.append({"kind": "state", "prefix": f.stem, "name": str(f)})
    return items
