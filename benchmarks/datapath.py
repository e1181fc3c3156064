"""Live datapath figures, one ``key=value`` line each (needs root, iperf3).

- zero-loss UDP throughput through ample capacity (Mbps and packets/s), 1 UE and
  16 UEs, 1500- and 200-byte IP packets: the highest offered rate of a short
  ladder at which the datapath lost nothing (no drop-tail, no kernel NFQUEUE or
  netlink-socket drops) and every datagram sent reached the UE hosts. The
  sender is a paced UDP generator using UDP GSO (64 datagrams per system call)
  and the UE hosts count and discard the datagrams in an iptables raw rule, so
  neither end is the bottleneck (the datagrams still cross the middlebox one
  by one: NFQUEUE segments GSO packets unless ``gso=True``). The same with
  iperf3 as sender is printed too: on this 2-core VM iperf3 itself tops out at
  a few hundred Mbps even without the emulator (``plain_veth_iperf3_mbps``);
- release timing: per-packet lateness of the verdict behind the end of the slot
  that released it, p50/p99/p99.9 in slots at 30 kHz (0.5 ms), next to the
  clock's own wake-up lateness (select() timeouts), with and without SCHED_FIFO;
- added latency at zero load: ICMP RTT through the emulator minus the plain veth
  path, median, in ms and in slots.

    .venv/bin/python benchmarks/datapath.py [--quick] [--throughput-only] [--baseline-rev REV]

``--baseline-rev REV`` also measures the live loop of git revision REV in the same run
(before/after figures, printed with the prefix ``baseline_``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neuralemu.cell import Engine, make_policy  # noqa: E402
from neuralemu.datapath import testbed  # noqa: E402
from neuralemu.datapath.live import LiveEmulation, lateness_percentiles  # noqa: E402
from neuralemu.datapath.probe import ping  # noqa: E402

PREFIX = f"nb{os.getpid() % 1000}"


def ample_engine(n_ues: int) -> Engine:
    """100 MHz at 30 kHz, 4 layers, 256QAM at 40 dB: far more than the datapath can carry."""
    cell = dict(numerology=1, bandwidth_mhz=100, duplex="FDD", max_layers=4,
                max_ues_per_slot=min(16, max(1, n_ues)), queue_limit_bytes=4_000_000)
    ues = [dict(ue_id=100 + i, channel={"model": "fixed", "sinr_db": 40.0}) for i in range(n_ues)]
    return Engine(cell, ues, make_policy("pf"), seed=1, keep_log=False)


def udp_load(live, n_ues: int, total_mbps: float, ip_bytes: int, seconds: float) -> dict:
    tb = live.testbed
    per = total_mbps / n_ues * 1e6
    payload = ip_bytes - 28
    procs = []
    for i in range(1, n_ues + 1):
        port = 5400 + i
        srv = subprocess.Popen(["ip", "netns", "exec", tb.ns_srv, "iperf3", "-s", "-1", "-p", str(port),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(srv)
    time.sleep(0.3)
    rcvbuf0 = sum(rcvbuf_errors(tb.ns_ue(i)) for i in range(1, n_ues + 1))
    with live.lock:
        before = {k: (c.out_bytes, c.out_packets, c.drop_queue_packets + c.drop_harq_packets)
                  for k, c in live.counters.items()}
    clis = [subprocess.Popen(["ip", "netns", "exec", tb.ns_ue(i), "iperf3", "-c", tb.server_ipv4,
                              "-p", str(5400 + i), "-u", "-R", "-b", f"{per:.0f}", "-l", str(payload),
                              "-w", "8M", "-t", str(seconds), "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True) for i in range(1, n_ues + 1)]
    lost = sent = 0
    recv_bps = 0.0
    for c in clis:
        out, _ = c.communicate(timeout=seconds + 30)
        try:
            s = json.loads(out)["end"]["sum"]
            lost += s.get("lost_packets", 0)
            sent += s.get("packets", 0)
            recv_bps += s.get("bits_per_second", 0.0) * (1 - s.get("lost_percent", 0.0) / 100)
        except (ValueError, KeyError):
            pass
    time.sleep(0.3)
    for p in procs:
        p.kill()
    with live.lock:
        after = {k: (c.out_bytes, c.out_packets, c.drop_queue_packets + c.drop_harq_packets)
                 for k, c in live.counters.items()}
    out_b = sum(after[k][0] - before[k][0] for k in after)
    out_p = sum(after[k][1] - before[k][1] for k in after)
    drops = sum(after[k][2] - before[k][2] for k in after)
    kstats = live.conservation()
    kdrops = sum(v.get("kernel_queue_dropped", 0) + v.get("kernel_user_dropped", 0)
                 for k, v in kstats.items() if "/" in k)
    rcvbuf = sum(rcvbuf_errors(tb.ns_ue(i)) for i in range(1, n_ues + 1)) - rcvbuf0
    return {"mbps": out_b * 8 / seconds / 1e6, "pps": out_p / seconds, "drops": drops,
            "kernel_drops": kdrops, "loss": lost / sent if sent else 1.0, "iperf_mbps": recv_bps / 1e6,
            "host_loss": max(0, lost - rcvbuf) / sent if sent else 1.0, "rcvbuf_errors": rcvbuf}


# A paced UDP sender that is not the bottleneck: one sendmsg() carries up to 64 datagrams
# (UDP_SEGMENT, generic segmentation offload), so the sending host spends microseconds per
# 64 packets, not per packet. Runs in the server namespace; prints the datagrams it sent.
_GSO_SENDER = r"""
import socket, sys, time
dsts = sys.argv[1].split(","); rate_bps = float(sys.argv[2]); ip_bytes = int(sys.argv[3])
secs = float(sys.argv[4]); payload = ip_bytes - 28
segs = max(1, min(64, 60000 // payload))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
if segs > 1:
    s.setsockopt(socket.SOL_UDP, 103, payload)      # UDP_SEGMENT
buf = bytes(payload * segs)
interval = segs * ip_bytes * 8 / rate_bps
t0 = time.monotonic(); n = 0; sent = 0
while True:
    el = time.monotonic() - t0
    if el >= secs:
        break
    due = int(el / interval) + 1
    while n < due:
        try:
            s.sendto(buf, (dsts[n % len(dsts)], 9))     # SINK_PORT
            sent += segs
        except OSError:
            pass
        n += 1
    time.sleep(max(0.0, min(0.0005, interval - (time.monotonic() - t0 - n * interval))))
print(sent)
"""


SINK_PORT = 9


def add_sink(ns: str) -> None:
    """Count and discard the generator's datagrams at the UE host's ingress (an iptables raw
    rule: no socket, no ICMP port-unreachable per packet billed to the middlebox's softirq)."""
    from neuralemu.datapath import netns
    subprocess.run(["ip", "netns", "exec", ns, netns.iptables_bin(False), "-t", "raw", "-A",
                    "PREROUTING", "-p", "udp", "--dport", str(SINK_PORT), "-m", "comment",
                    "--comment", "neuralemu-bench-sink", "-j", "DROP"], check=True)


def udp_delivered(ns: str) -> int:
    """Datagrams the sink rule of namespace ``ns`` counted (see :func:`add_sink`)."""
    from neuralemu.datapath import netns
    text = subprocess.run(["ip", "netns", "exec", ns, netns.iptables_bin(False), "-t", "raw", "-L",
                           "PREROUTING", "-v", "-x", "-n"], capture_output=True, text=True).stdout
    for line in text.splitlines():
        if "neuralemu-bench-sink" in line:
            return int(line.split()[0])
    add_sink(ns)
    return 0


def gso_udp_load(live, n_ues: int, total_mbps: float, ip_bytes: int, seconds: float) -> dict:
    """Downlink UDP from the server to every UE at ``total_mbps`` (IP bytes), sent with UDP GSO;
    delivered = datagrams the UE hosts received (their UDP counters)."""
    tb = live.testbed
    d0 = sum(udp_delivered(tb.ns_ue(i)) for i in range(1, n_ues + 1))
    with live.lock:
        before = {k: (c.out_bytes, c.out_packets, c.drop_queue_packets + c.drop_harq_packets)
                  for k, c in live.counters.items()}
    cpu0 = live_cpu(live)
    us0 = live_cpu(live, split=True)
    w0 = time.monotonic()
    dsts = ",".join(tb.ue_ipv4(i) for i in range(1, n_ues + 1))
    out = subprocess.run(["ip", "netns", "exec", tb.ns_srv, sys.executable, "-c", _GSO_SENDER, dsts,
                          str(total_mbps * 1e6), str(ip_bytes), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    sent = int(out.strip() or 0)
    time.sleep(0.3)
    cpu1 = live_cpu(live)
    us1 = live_cpu(live, split=True)
    wall = time.monotonic() - w0
    with live.lock:
        after = {k: (c.out_bytes, c.out_packets, c.drop_queue_packets + c.drop_harq_packets)
                 for k, c in live.counters.items()}
    got = sum(udp_delivered(tb.ns_ue(i)) for i in range(1, n_ues + 1)) - d0
    out_b = sum(after[k][0] - before[k][0] for k in after)
    out_p = sum(after[k][1] - before[k][1] for k in after)
    drops = sum(after[k][2] - before[k][2] for k in after)
    kstats = live.conservation()
    kdrops = sum(v.get("kernel_queue_dropped", 0) + v.get("kernel_user_dropped", 0)
                 for k, v in kstats.items() if "/" in k)
    return {"mbps": out_b * 8 / seconds / 1e6, "pps": out_p / seconds, "drops": drops,
            "kernel_drops": kdrops, "sent": sent, "received": got,
            "drop_queue": sum(c.drop_queue_packets for c in live.counters.values()),
            "drop_harq": sum(c.drop_harq_packets for c in live.counters.values()),
            "loss": max(0, sent - got) / sent if sent else 1.0,
            "loop_cpu_share": (cpu1 - cpu0) / wall if cpu0 is not None else float("nan"),
            "loop_user_s": us1[0] - us0[0] if us0 else float("nan"),
            "loop_sys_s": us1[1] - us0[1] if us0 else float("nan")}


def live_cpu(live, split: bool = False):
    """CPU seconds the live loop thread has used so far (from /proc); with ``split``,
    (user, system) seconds."""
    tid = getattr(live, "loop_tid", None)
    if not tid:
        return None
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        if split:
            return int(parts[11]) / tck, int(parts[12]) / tck
        return (int(parts[11]) + int(parts[12])) / tck
    except (OSError, IndexError, ValueError):
        return None


def rcvbuf_errors(ns: str) -> int:
    """UDP datagrams the receiving host dropped because its socket buffer was full."""
    text = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True,
                          text=True).stdout
    lines = [ln.split() for ln in text.splitlines() if ln.startswith("Udp:")]
    if len(lines) < 2:
        return 0
    return int(dict(zip(lines[0][1:], lines[1][1:])).get("RcvbufErrors", 0))


def live_class(rev: str | None):
    """``LiveEmulation`` of this tree, or of git revision ``rev`` (its
    ``neuralemu/datapath/live.py`` loaded as a separate module, for before/after figures in
    the same run)."""
    if not rev:
        return LiveEmulation
    import importlib.util
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", root, "show", f"{rev}:neuralemu/datapath/live.py"],
                         capture_output=True, text=True, check=True).stdout
    path = os.path.join(tempfile.mkdtemp(prefix="ne-bench-"), "baseline_live.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("baseline_live", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["baseline_live"] = mod
    spec.loader.exec_module(mod)
    cls = mod.LiveEmulation
    run0 = cls._run

    def _run(self):            # so live_cpu() finds the baseline's loop thread too
        import threading
        self.loop_tid = threading.get_native_id()
        run0(self)
    cls._run = _run
    return cls


def zero_loss(n_ues: int, ip_bytes: int, ladder: list[float], seconds: float, load=None,
              cls=None, tag: str = "") -> dict:
    """The highest step of ``ladder`` (offered Mbps) with zero loss, and what it delivered."""
    load = load or gso_udp_load
    best = {"mbps": 0.0, "pps": 0.0, "loop_cpu_share": float("nan")}
    live = (cls or LiveEmulation)(ample_engine(n_ues), prefix=PREFIX)
    with live:
        kd0 = 0
        for rate in ladder:
            r = load(live, n_ues, rate, ip_bytes, seconds)
            new_kd = r["kernel_drops"] - kd0
            kd0 = r["kernel_drops"]
            if "sent" in r:      # GSO generator: every datagram sent reached the UE host
                ok = r["drops"] == 0 and new_kd == 0 and r["received"] >= r["sent"]
                detail = f"sent {r['sent']} received {r['received']}"
            else:                # iperf3: its own loss, apart from receiver socket overflow
                ok = r["drops"] == 0 and new_kd == 0 and r["host_loss"] < 0.001
                detail = (f"iperf loss {100 * r['loss']:.2f}% of which receiver socket overflow "
                          f"{r['rcvbuf_errors']} datagrams")
            print(f"# {tag}{n_ues} UE {ip_bytes} B offered {rate:.0f} Mbps: delivered {r['mbps']:.1f} Mbps "
                  f"{r['pps']:.0f} pps, drops {r['drops']}, kernel drops {new_kd}, {detail}, "
                  f"loop thread {r.get('loop_cpu_share', float('nan')):.2f} CPU",
                  file=sys.stderr, flush=True)
            if not ok:
                break
            if r["mbps"] > best["mbps"]:
                best = r
    return best


def plain_iperf3(n_ues: int, rate_mbps: float, seconds: float) -> float:
    """iperf3 UDP (1500-byte IP packets) over the bare testbed, no emulation: what the
    iperf3 sender and receiver themselves reach on this host."""
    tb = testbed.up(n_ues, PREFIX)

    class _Bare:
        counters: dict = {}

        def conservation(self):
            return {}
    bare = _Bare()
    bare.testbed, bare.lock = tb, __import__("threading").Lock()
    try:
        return udp_load(bare, n_ues, rate_mbps, 1500, seconds)["iperf_mbps"]
    finally:
        testbed.down(PREFIX)


def timing(realtime: int, seconds: float, rate_mbps: float) -> dict:
    live = LiveEmulation(ample_engine(1), prefix=PREFIX, realtime=realtime)
    with live:
        udp_load(live, 1, rate_mbps, 1500, seconds)
    slot_us = 500
    p = lateness_percentiles(live.lateness_us, live.slot_packets, slot_us, (50, 99, 99.9))
    w = lateness_percentiles(live.wake_lateness_us, None, slot_us, (50, 99, 99.9), per_packet=False)
    return {"release": p, "wake": w}


def fast_access_engine() -> Engine:
    """The ample cell with the quickest uplink access the engine allows (SR every slot, no
    SR-to-grant or k2 delay): what is left is the slot structure and the datapath."""
    cell = dict(numerology=1, bandwidth_mhz=100, duplex="FDD", max_layers=4,
                harq={"k2_slots": 0}, uplink={"sr_period_slots": 1, "sr_to_grant_slots": 0})
    return Engine(cell, [dict(ue_id=100, channel={"model": "fixed", "sinr_db": 40.0})],
                  make_policy("pf"), seed=1, keep_log=False)


def added_latency(count: int, engine: Engine) -> tuple[float, float]:
    tb = testbed.up(1, PREFIX)
    try:
        ping(tb.ns_ue(1), tb.server_ipv4, count=5, interval_s=0.2)   # ARP/bridge warm-up
        plain = float(np.median(ping(tb.ns_ue(1), tb.server_ipv4, count=count, interval_s=0.01)))
        live = LiveEmulation(engine, testbed=tb)
        with live:
            time.sleep(0.3)
            emu = float(np.median(ping(tb.ns_ue(1), tb.server_ipv4, count=count, interval_s=0.013)))
    finally:
        testbed.down(PREFIX)
    return plain / 1000, emu / 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter steps, fewer rates")
    ap.add_argument("--throughput-only", action="store_true", help="skip the latency/timing parts")
    ap.add_argument("--timing-only", action="store_true", help="only the latency/timing parts")
    ap.add_argument("--baseline-rev", metavar="REV",
                    help="also measure the loop of git revision REV (same run, same ladders)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/datapath.py needs root", file=sys.stderr)
        return 1
    secs = 1.5 if args.quick else 3.0
    testbed.down(PREFIX)
    print(f"load_average_1min={os.getloadavg()[0]:.1f}")
    try:
        if not args.throughput_only:
            for tag, eng in (("fast_ul_access", fast_access_engine()), ("default_sr_bsr", ample_engine(1))):
                plain_ms, emu_ms = added_latency(30, eng)
                print(f"rtt_plain_veth_ms_{tag}={plain_ms:.3f}")
                print(f"rtt_emulated_ms_{tag}={emu_ms:.3f}")
                print(f"added_rtt_zero_load_ms_{tag}={emu_ms - plain_ms:.3f}")
                print(f"added_rtt_zero_load_slots_30khz_{tag}={(emu_ms - plain_ms) / 0.5:.2f}")
            for rt in (10, 0):
                t = timing(rt, secs * 2, 100)
                tag = "fifo" if rt else "normal"
                for name, v in zip(("p50", "p99", "p999"), t["release"]):
                    print(f"release_lateness_{name}_slots_{tag}={v:.3f}")
                for name, v in zip(("p50", "p99", "p999"), t["wake"]):
                    print(f"clock_wake_lateness_{name}_slots_{tag}={v:.3f}")
        if args.timing_only:
            return 0
        big = [200, 500, 800, 1100, 1400] if args.quick else [200, 400, 600, 800, 1000, 1200, 1400, 1700]
        many = [200, 400, 700, 1000] if args.quick else [200, 300, 400, 500, 600, 800, 1000, 1200, 1400]
        small = [20, 60, 100, 140] if args.quick else [20, 40, 60, 80, 100, 120, 140, 170]
        loops = [("", None)] + ([("baseline_", live_class(args.baseline_rev))]
                                if args.baseline_rev else [])
        for n, size, ladder in ((1, 1500, big), (16, 1500, many), (1, 200, small), (16, 200, small)):
            for tag, cls in loops:
                r = zero_loss(n, size, ladder, secs, cls=cls, tag=tag)
                print(f"{tag}zero_loss_mbps_{n}ue_{size}B={r['mbps']:.1f}")
                print(f"{tag}zero_loss_pps_{n}ue_{size}B={r['pps']:.0f}")
                print(f"{tag}loop_cpu_share_at_zero_loss_{n}ue_{size}B={r['loop_cpu_share']:.2f}")
        # the same with iperf3 as the sender (one sendto per datagram): bounded by iperf3 itself
        print(f"plain_veth_iperf3_mbps_1ue_1500B={plain_iperf3(1, 2000, secs):.1f}")
        for tag, cls in loops:
            r = zero_loss(1, 1500, [100, 200, 300, 400, 600, 800], secs, load=udp_load, cls=cls,
                          tag=tag + "iperf3 ")
            print(f"{tag}iperf3_zero_loss_mbps_1ue_1500B={r['mbps']:.1f}")
    finally:
        testbed.down(PREFIX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
