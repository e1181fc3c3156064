"""A test double with the engine API (docs/engine.md): a constant byte grant per
(UE, direction) per slot, FIFO, byte-exact segmentation, in-order delivery, drop-tail.

Only for exercising the datapath's release mechanics in isolation; the product
always runs neuralemu.cell.Engine.
"""

from __future__ import annotations

from collections import deque

from neuralemu.cell.traffic import Delivery, Drop


class SlotResult:
    def __init__(self, slot, t_us, delivered, dropped):
        self.slot, self.t_us, self.delivered, self.dropped, self.dcis = slot, t_us, delivered, dropped, []


class GrantEngine:
    def __init__(self, ue_ids, slot_us=500, grant_bytes=None, queue_limit_bytes=2_000_000):
        self.ue_ids = list(ue_ids)
        self.slot_us = slot_us
        self.slot = 0
        self.t_us = 0
        self.grant = grant_bytes or {}          # {(ue, dir): bytes per slot}
        self.limit = queue_limit_bytes
        self.q = {(u, d): deque() for u in self.ue_ids for d in ("dl", "ul")}
        self.qbytes = {k: 0 for k in self.q}
        self.credit = {k: 0 for k in self.q}
        self._st = {u: {d: dict(bytes_in=0, bytes_out=0, drops=0, dropped_bytes=0, queue_bytes=0)
                        for d in ("dl", "ul")} for u in self.ue_ids}
        self._pending_drops = []

    def enqueue(self, ue_id, direction, size_bytes, t_us, packet_id=None):
        k = (ue_id, direction)
        st = self._st[ue_id][direction]
        st["bytes_in"] += size_bytes
        if self.qbytes[k] + size_bytes > self.limit:
            st["drops"] += 1
            st["dropped_bytes"] += size_bytes
            self._pending_drops.append(Drop(packet_id, ue_id, direction, size_bytes, t_us, t_us, "queue"))
            return None
        self.q[k].append([packet_id, size_bytes, size_bytes, t_us])
        self.qbytes[k] += size_bytes
        return packet_id

    def step(self):
        delivered = []
        end = self.t_us + self.slot_us
        for k, fifo in self.q.items():
            budget = self.grant.get(k, 0)
            if not fifo:
                continue
            while fifo and budget > 0:
                p = fifo[0]
                take = min(budget, p[2])
                p[2] -= take
                budget -= take
                self.qbytes[k] -= take
                if p[2] == 0:
                    fifo.popleft()
                    delivered.append(Delivery(p[0], k[0], k[1], p[1], p[3], end))
                    self._st[k[0]][k[1]]["bytes_out"] += p[1]
        dropped, self._pending_drops = self._pending_drops, []
        res = SlotResult(self.slot, self.t_us, delivered, dropped)
        self.slot += 1
        self.t_us = end
        return res

    def stats(self):
        for (u, d), b in self.qbytes.items():
            self._st[u][d]["queue_bytes"] = b
        return {u: {d: dict(v) for d, v in ds.items()} for u, ds in self._st.items()}
