"""NFQUEUE packet-message parsing (no root, no kernel): the bulk (numpy) and one-by-one paths
against the reference walk, on mixed attribute layouts, odd messages and multi-message
datagrams laid out as recvmmsg() leaves them."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from neuralemu.datapath import nfqueue as N


def _attr(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


def packet_msg(queue: int, pid: int, length: int, *, physindev: bool = False,
               timestamp: bool = False) -> bytes:
    a = _attr(N.NFQA_PACKET_HDR, struct.pack(">IHB", pid, 0x0800, 2))
    a += _attr(4, struct.pack(">I", 3))                       # NFQA_IFINDEX_INDEV
    if physindev:
        a += _attr(6, struct.pack(">I", 9))                   # NFQA_IFINDEX_PHYSINDEV
    a += _attr(N.NFQA_MARK, struct.pack(">I", 0x4E450000 | queue))
    if timestamp:
        a += _attr(0x8000 | 7, struct.pack(">QQ", 1, 2))      # nested flag bit set on purpose
    a += _attr(N.NFQA_CAP_LEN, struct.pack(">I", length))
    a += _attr(N.NFQA_PAYLOAD, b"E")
    body = struct.pack("=BB", 2, 0) + struct.pack(">H", queue)
    return struct.pack("=IHHII", 20 + len(a), N._TYPE_PACKET, 0, 0, 0) + body + a


def other_msg() -> bytes:
    return struct.pack("=IHHII", 36, N.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", 0) + bytes(16)


class _Q(N.NfQueue):
    def __init__(self) -> None:       # no socket: only the parsing state
        self._mbuf = None
        self._mmsg_setup()

    def fill(self, datagrams: list[bytes]) -> int:
        for i, d in enumerate(datagrams):
            self._mbuf[i, :] = 0
            self._mbuf[i, :len(d)] = np.frombuffer(d, dtype=np.uint8)
            self._mlen[i] = len(d)
        return len(datagrams)


def reference(datagrams: list[bytes]):
    q, ids, ln = [], [], []
    for d in datagrams:
        N.NfQueue._parse_python(d, len(d), q, ids, ln)
    return q, ids, ln


@pytest.mark.parametrize("n", [1, 5, 31, 32, 200, 1024])
def test_bulk_and_small_paths_match_the_reference_walk(n):
    rng = np.random.default_rng(n)
    grams = []
    next_id = {0: 1, 1: 1, 2: 1}
    for i in range(n):
        r = rng.random()
        if r < 0.05 and n > 4:
            grams.append(other_msg())
            continue
        q = int(rng.integers(0, 3))
        pid = next_id[q]
        next_id[q] += 1
        size = int(rng.integers(40, 65536))
        if r < 0.10 and n > 4:      # two messages in one datagram
            grams.append(packet_msg(q, pid, size) + packet_msg(q, pid + 1000, size + 1))
            continue
        grams.append(packet_msg(q, pid, size, physindev=(q % 2 == 1), timestamp=(r > 0.9)))
    ref_q, ref_id, ref_len = reference(grams)
    for numpy_min in (1, 10**9):
        N_MIN = N._NUMPY_MIN
        try:
            N._NUMPY_MIN = numpy_min
            qq = _Q()
            k = qq.fill(grams)
            q, ids, ln = qq._parse_slots(k)
        finally:
            N._NUMPY_MIN = N_MIN
        # arrival order is kept: identical sequences, not just the same sets
        assert q.tolist() == ref_q and ids.tolist() == ref_id and ln.tolist() == ref_len


def test_truncated_datagram_still_yields_its_packet():
    big = packet_msg(1, 7, 1500)
    pad = _attr(20, bytes(600))                           # makes the message bigger than a slot
    msg = bytearray(big + pad)
    struct.pack_into("=I", msg, 0, len(msg))
    qq = _Q()
    qq._mbuf[0, :] = np.frombuffer(bytes(msg[:N.MMSG_STRIDE]), dtype=np.uint8)
    qq._mlen[0] = N.MMSG_STRIDE                             # what recvmmsg reports when truncated
    for numpy_min in (1, 10**9):
        N_MIN = N._NUMPY_MIN
        try:
            N._NUMPY_MIN = numpy_min
            q, ids, ln = qq._parse_slots(1)
        finally:
            N._NUMPY_MIN = N_MIN
        assert (q.tolist(), ids.tolist(), ln.tolist()) == ([1], [7], [1500])
