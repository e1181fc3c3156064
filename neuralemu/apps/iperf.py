"""iperf3 between the testbed's server namespace and a UE namespace, JSON output parsed.

The server (``iperf3 -s -1``) runs in the server namespace, the client in the
UE's namespace; ``reverse=True`` (``-R``, the default) makes the server send,
so the flow is downlink through the cell, as a phone's download is.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

IPERF_TCP_HEADER_BYTES = 52    # IPv4 20 + TCP 20 + timestamps option 12
IPERF_UDP_HEADER_BYTES = 28    # IPv4 20 + UDP 8


def available_ccs() -> list[str]:
    """TCP congestion controls this kernel offers (``tcp_available_congestion_control``)."""
    try:
        return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()
    except OSError:
        return []


@dataclass
class IperfResult:
    protocol: str                 # tcp | udp
    cc: str | None
    seconds: float
    goodput_bps: float            # what the receiver got (application bytes)
    interval_bps: list[float] = field(default_factory=list)
    retransmits: int | None = None
    lost_percent: float | None = None     # udp
    jitter_ms: float | None = None        # udp

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class IperfError(RuntimeError):
    pass


def parse_iperf_json(text: str, protocol: str, cc: str | None) -> IperfResult:
    """The receiver's figures from ``iperf3 --json`` output (client side, any direction)."""
    try:
        j = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IperfError(f"iperf3 printed no JSON: {text[:200]!r}") from exc
    if j.get("error"):
        raise IperfError(f"iperf3: {j['error']}")
    end = j.get("end", {})
    intervals = [iv["sum"]["bits_per_second"] for iv in j.get("intervals", [])]
    if protocol == "tcp":
        recv = end.get("sum_received", {})
        sent = end.get("sum_sent", {})
        return IperfResult("tcp", cc, float(recv.get("seconds", 0.0)),
                           float(recv.get("bits_per_second", 0.0)), intervals,
                           retransmits=sent.get("retransmits"))
    s = end.get("sum_received") or end.get("sum", {})
    return IperfResult("udp", None, float(s.get("seconds", 0.0)), float(s.get("bits_per_second", 0.0)),
                       intervals, lost_percent=s.get("lost_percent"), jitter_ms=s.get("jitter_ms"))


def run_iperf(server_ns: str | None, client_ns: str | None, server_ip: str, *, seconds: float = 10,
              protocol: str = "tcp", cc: str | None = "cubic", udp_rate_bps: float = 10e6,
              udp_payload_bytes: int = 1400, reverse: bool = True, port: int = 5201,
              omit_s: int = 0) -> IperfResult:
    """One iperf3 test; the server process is always ended, also on failure."""
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"protocol must be tcp or udp, got {protocol!r}")
    if protocol == "tcp" and cc and cc not in available_ccs():
        raise IperfError(f"congestion control {cc!r} is not available in this kernel "
                         f"(has: {' '.join(available_ccs()) or 'none'})")

    def in_ns(ns, cmd):
        return (["ip", "netns", "exec", ns] + cmd) if ns else cmd

    srv = subprocess.Popen(in_ns(server_ns, ["iperf3", "-s", "-1", "-p", str(port)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        args = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds), "--json"]
        if omit_s:
            args += ["-O", str(omit_s)]
        if reverse:
            args.append("-R")
        if protocol == "tcp":
            if cc:
                args += ["-C", cc]
        else:
            args += ["-u", "-b", f"{udp_rate_bps:.0f}", "-l", str(udp_payload_bytes)]
        out = None
        for attempt in range(3):     # the server may not listen yet on a busy host
            out = subprocess.run(in_ns(client_ns, args), capture_output=True, text=True,
                                 timeout=seconds + omit_s + 30)
            if "unable to connect" not in out.stdout + out.stderr:
                break
            time.sleep(0.5)
        return parse_iperf_json(out.stdout, protocol, cc if protocol == "tcp" else None)
    finally:
        if srv.poll() is None:
            try:
                srv.wait(timeout=3)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
