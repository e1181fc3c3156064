"""A small ICMP echo prober (no ``ping`` binary needed): round-trip times from a namespace."""

from __future__ import annotations

import os
import select
import socket
import struct
import time

from neuralemu.datapath import netns


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(ns: str | None, dst: str, *, count: int = 10, interval_s: float = 0.05,
         timeout_s: float = 1.0, payload_bytes: int = 56) -> list[float]:
    """ICMP(v6) echo from namespace ``ns`` to ``dst``; RTTs in microseconds of the replies
    that came back (lost probes are missing)."""
    v6 = ":" in dst
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    with netns.entered(ns):
        sock = socket.socket(fam, socket.SOCK_RAW, proto)
    ident = (os.getpid() ^ id(sock)) & 0xFFFF
    sent: dict[int, int] = {}
    rtts: list[float] = []
    try:
        sock.setblocking(False)
        for seq in range(count):
            body = struct.pack("!d", time.monotonic()) + b"N" * max(0, payload_bytes - 8)
            typ = 128 if v6 else 8
            hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
            csum = 0 if v6 else _checksum(hdr + body)   # the kernel fills the ICMPv6 checksum
            pkt = struct.pack("!BBHHH", typ, 0, csum, ident, seq) + body
            sent[seq] = time.monotonic_ns()
            sock.sendto(pkt, (dst, 0))
            deadline = time.monotonic() + (interval_s if seq < count - 1 else timeout_s)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([sock], [], [], left)
                if not r:
                    continue
                data, _ = sock.recvfrom(2048)
                now = time.monotonic_ns()
                icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
                if len(icmp) < 8:
                    continue
                rtype, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
                if rtype == (129 if v6 else 0) and rid == ident and rseq in sent:
                    rtts.append((now - sent.pop(rseq)) / 1000.0)
                    if seq == count - 1 and not sent:
                        break
    finally:
        sock.close()
    return rtts
