"""A pf scheduler with the link adaptation the T-Mobile logs show, for background users.

The engine's own link adaptation picks the MCS from the reported CQI
(``nr.cqi_to_mcs``: 15 CQI levels onto 28 MCS indices of 38.214 Table
5.1.3.1-2), so background users driven by an SINR trace only ever land on
every other MCS index, and the built-in policies give a small payload the
fewest PRBs at that MCS. The real gNBs do neither (docs/traffic-reconstruction.md):

* the MCS of a channel-limited grant follows the user's link, which the
  profile's MCS Markov chain describes (:mod:`.channel`); here it is read
  directly from the user's sampled MCS trajectory (38.214 5.1.3.1 index, no
  CQI quantisation);
* a payload that fits in ``small_payload_prbs`` PRBs at the link MCS is sent
  on that many PRBs at the *lowest* MCS that carries it (in the T-Mobile logs:
  grants under 100 bytes at MCS 0 on 8 PRBs, 100-500 bytes at MCS 2-4);
  larger payloads get the link MCS and the PRBs they need.

Users are ordered as ``pf`` orders them (achievable spectral efficiency over
the averaged served throughput, times the priority weight). Users without a
trajectory (the foreground) get the engine's ``la_mcs``. This is a Python
policy plugged into the engine (``neuralemu.cell.policy.Policy``); ``cell``
never imports it.
"""

from __future__ import annotations

import numpy as np

from neuralemu import nr
from neuralemu.cell.policy import Allocation, SlotContext, UeFeatures

DEFAULT_SMALL_PAYLOAD_PRBS = 8


class BackgroundLinkPolicy:
    """pf ordering, per-user MCS trajectories, small payloads at the lowest MCS that fits."""

    name = "recon_pf"

    def __init__(self, mcs_traces: dict[int, tuple[float, float, np.ndarray]] | None = None, *,
                 small_payload_prbs: dict[str, int] | int = DEFAULT_SMALL_PAYLOAD_PRBS,
                 dmrs_re_per_prb: int = 12, overhead_re_per_prb: int = 0) -> None:
        """``mcs_traces``: ue -> (start_us, step_us, MCS per step from start_us; held at the ends)."""
        self.traces = {int(k): (float(s), float(st), np.asarray(m, dtype=np.int64))
                       for k, (s, st, m) in (mcs_traces or {}).items()}
        if isinstance(small_payload_prbs, dict):
            self.small_prbs = {d: max(1, int(v)) for d, v in small_payload_prbs.items()}
        else:
            self.small_prbs = {"dl": max(1, int(small_payload_prbs)), "ul": max(1, int(small_payload_prbs))}
        self.dmrs = int(dmrs_re_per_prb)
        self.overhead = int(overhead_re_per_prb)
        self._luts: dict = {}

    @classmethod
    def from_background(cls, bg, profile: dict, cell=None) -> "BackgroundLinkPolicy":
        """Policy for the users of a :class:`~.background.Background` sampled from ``profile``."""
        traces = {}
        start = {} if bg is None else dict(zip(bg.sessions["ue"].astype(int), bg.sessions["start_us"].astype(float)))
        for ue, ch in ({} if bg is None else bg.channels).items():
            traces[int(ue)] = (start.get(int(ue), 0.0), float(ch["step_ms"]) * 1000.0, ch["mcs"])
        small = profile["channel"].get("small_payload_prbs", DEFAULT_SMALL_PAYLOAD_PRBS)
        kw = {}
        if cell is not None:
            kw = {"dmrs_re_per_prb": int(getattr(cell, "dmrs_re_per_prb", 12)),
                  "overhead_re_per_prb": int(getattr(cell, "overhead_re_per_prb", 0))}
        return cls(traces, small_payload_prbs=small, **kw)

    def served_bytes_grid(self, cell) -> dict[str, np.ndarray]:
        """Bytes one small-payload grant of ``cell`` can carry, per direction (sorted, unique).

        38.214 5.1.3.2 TBS of ``small_payload_prbs`` PRBs at each MCS of the
        cell's table, full slots, the cell's layers. A burst of a size the real
        gNB served (its TBS, padding included) is enqueued at the largest of
        these that does not exceed it, so that the emulated grant serves the
        same bytes instead of spilling into a second grant or a higher MCS.
        """
        from neuralemu.cell.tables import build_tables
        tb = build_tables(cell)
        out = {}
        for d, name in enumerate(("dl", "ul")):
            layers = max(1, int(cell.max_layers if d == 0 else cell.max_layers_ul))
            p = min(self.small_prbs.get(name, DEFAULT_SMALL_PAYLOAD_PRBS), tb.prbs_total)
            col = tb.tbs[d, 0, layers - 1, : int(tb.max_mcs[d]) + 1, p] // 8
            out[name] = np.unique(col[col > 0]).astype(np.int64)
        return out

    def link_mcs(self, ue_id: int, t_us: float, default: int) -> int:
        tr = self.traces.get(int(ue_id))
        if tr is None or not len(tr[2]):
            return int(default)
        s, step, m = tr
        i = int((t_us - s) // step)
        return int(m[min(max(i, 0), len(m) - 1)])

    def _lut(self, ctx: SlotContext) -> np.ndarray:
        key = (ctx.mcs_table, ctx.symbols, ctx.prbs_total, ctx.max_layers)
        t = self._luts.get(key)
        if t is None:
            dmrs = min(self.dmrs, 12 * ctx.symbols)
            oh = self.overhead if 12 * ctx.symbols - dmrs - self.overhead >= 0 else 0
            lut = nr.TbsLookup(ctx.mcs_table, ctx.symbols, dmrs, oh, max_prbs=ctx.prbs_total,
                               max_layers=max(1, ctx.max_layers))
            t = self._luts[key] = (np.asarray(lut.table[max(1, ctx.max_layers) - 1], dtype=np.int64),
                                   np.asarray(nr.mcs_spectral_efficiency(
                                       np.arange(nr.max_mcs(ctx.mcs_table) + 1), ctx.mcs_table), float))
        return t

    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        n = len(ues)
        alloc = Allocation.empty(n)
        alloc.layers[:] = max(1, ctx.max_layers)
        cand = np.flatnonzero(ues.buffer_bytes > 0)
        if not cand.size or ctx.prbs_available <= 0 or ctx.max_ues <= 0:
            return alloc
        tbs, eff = self._lut(ctx)                    # tbs[mcs, prbs] in bits
        top = len(eff) - 1
        mcs = np.array([min(top, max(0, self.link_mcs(ues.ue_id[i], ctx.t_us, ues.la_mcs[i])))
                        for i in cand], dtype=np.int64)
        metric = eff[mcs] / np.maximum(ues.avg_tput_bps[cand], 1.0) * ues.priority[cand]
        order = np.argsort(-metric, kind="stable")
        left = int(ctx.prbs_available)
        p_small = self.small_prbs.get(ctx.direction, DEFAULT_SMALL_PAYLOAD_PRBS)
        served = 0
        for j in order:
            if left <= 0 or served >= ctx.max_ues:
                break
            i = int(cand[j])
            m = int(mcs[j])
            need = float(ues.buffer_bytes[i]) * 8.0
            p0 = min(p_small, left)
            col = tbs[: m + 1, p0]
            if col[m] >= need:                       # fits on p0 PRBs: lowest MCS that carries it
                m = int(np.argmax(col >= need))
                p = p0
            else:                                    # link MCS, as many PRBs as the payload needs
                row = tbs[m, : left + 1]
                p = int(np.searchsorted(row, need, side="left"))
                p = min(max(p, 1), left)
            alloc.prbs[i] = p
            alloc.mcs[i] = m
            left -= p
            served += 1
        return alloc

    def observe(self, ctx, ues, alloc) -> None:
        return None
