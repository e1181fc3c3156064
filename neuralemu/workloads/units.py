"""Application data units (web pages, video frames): the sidecar and completion times.

Generators tag packets with a ``unit`` (page or frame index per user). The
workload CSV has no column for it, so :class:`UnitRecorder` collects, while
packets stream by, one row per ``(ue, direction, unit_id)``:

``ue,direction,unit_id,t_start_us,t_first_us,t_last_us,n_packets,size_bytes``

``t_first_us``/``t_last_us`` are the unit's first and last packet in that
direction; ``t_start_us`` is the unit's first packet in either direction (for a
web page: the click, i.e. the first uplink request). Units of one
``(ue, direction)`` never overlap in ``[t_first_us, t_last_us]``, so
:func:`assign_units` maps workload rows back to units exactly, and
:func:`unit_completion` turns a delivery log into page load times or frame
delivery delays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.workloads.packet import Packet

UNIT_COLUMNS = ("ue", "direction", "unit_id", "t_start_us", "t_first_us", "t_last_us",
                "n_packets", "size_bytes")


class UnitRecorder:
    """Pass packets through while recording per-unit statistics."""

    def __init__(self) -> None:
        self._units: dict[tuple[int, str, int], list[int]] = {}

    def record(self, packets: Iterable[Packet]) -> Iterator[Packet]:
        units = self._units
        for p in packets:
            if p.unit >= 0:
                key = (p.ue, p.direction, p.unit)
                u = units.get(key)
                if u is None:
                    units[key] = [p.t_us, p.t_us, 1, p.size_bytes]
                else:
                    u[1] = p.t_us
                    u[2] += 1
                    u[3] += p.size_bytes
            yield p

    def table(self) -> pd.DataFrame:
        rows = [(ue, d, unit, first, last, n, size)
                for (ue, d, unit), (first, last, n, size) in self._units.items()]
        df = pd.DataFrame(rows, columns=["ue", "direction", "unit_id", "t_first_us",
                                         "t_last_us", "n_packets", "size_bytes"])
        df = df.astype({"ue": "int64", "unit_id": "int64", "t_first_us": "int64",
                        "t_last_us": "int64", "n_packets": "int64", "size_bytes": "int64"})
        df["t_start_us"] = df.groupby(["ue", "unit_id"])["t_first_us"].transform("min")
        df = df.sort_values(["ue", "unit_id", "direction"], kind="stable").reset_index(drop=True)
        return df[list(UNIT_COLUMNS)]


def write_units_csv(path: str | Path, units: pd.DataFrame) -> None:
    units[list(UNIT_COLUMNS)].to_csv(path, index=False)


def read_units_csv(path: str | Path) -> pd.DataFrame:
    path = str(path)
    try:
        df = pd.read_csv(path, dtype={"direction": str})
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"cannot read units CSV: {exc}") from None
    for col in UNIT_COLUMNS:
        if col not in df.columns:
            raise InputError(path, f"header lacks column {col}", line=1, field=col)
    for col in UNIT_COLUMNS:
        if col == "direction":
            bad = ~df[col].isin(["dl", "ul"])
        else:
            bad = pd.to_numeric(df[col], errors="coerce").isna()
        if bool(bad.any()):
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(path, f"bad value {df[col].iloc[i]!r}", line=i + 2, field=col)
    return df.astype({c: "int64" for c in UNIT_COLUMNS if c != "direction"})


def assign_units(packets: pd.DataFrame, units: pd.DataFrame) -> np.ndarray:
    """The unit id of every row of a workload (or delivery log) DataFrame, -1 for none.

    Needs columns ``ue``, ``direction`` and a time column: ``t_us`` (workload)
    or ``t_arrival_us`` (delivery log).
    """
    t_col = "t_us" if "t_us" in packets.columns else "t_arrival_us"
    out = np.full(len(packets), -1, dtype=np.int64)
    t_all = packets[t_col].to_numpy(dtype=np.int64)
    ue_all = packets["ue"].to_numpy()
    dir_all = packets["direction"].to_numpy()
    for (ue, direction), group in units.groupby(["ue", "direction"], sort=False):
        group = group.sort_values("t_first_us")
        first = group["t_first_us"].to_numpy(dtype=np.int64)
        last = group["t_last_us"].to_numpy(dtype=np.int64)
        ids = group["unit_id"].to_numpy(dtype=np.int64)
        rows = np.flatnonzero((ue_all == ue) & (dir_all == direction))
        t = t_all[rows]
        k = np.searchsorted(first, t, side="right") - 1
        inside = (k >= 0) & (t <= last[np.clip(k, 0, None)])
        out[rows[inside]] = ids[k[inside]]
    return out


def unit_completion(deliveries: pd.DataFrame, units: pd.DataFrame,
                    direction: str = "dl") -> pd.DataFrame:
    """Completion of every unit in ``direction`` from a delivery log.

    ``deliveries`` has the delivery-log columns (``ue, direction,
    t_arrival_us, t_delivered_us, dropped``). Returns one row per unit with
    ``t_done_us`` (last packet delivered), ``latency_us`` (``t_done_us -
    t_start_us``: the page load time for web pages, the frame delay for video
    frames) and ``complete`` (every packet delivered; otherwise the times are
    NaN). A unit with no row in the log counts as incomplete.
    """
    deliveries = deliveries[deliveries["direction"] == direction]
    unit_ids = assign_units(deliveries, units)
    d = pd.DataFrame({
        "ue": deliveries["ue"].to_numpy(), "unit_id": unit_ids,
        "t_delivered_us": pd.to_numeric(deliveries["t_delivered_us"], errors="coerce")
        .astype("float64").to_numpy(),
        "dropped": deliveries["dropped"].astype(bool).to_numpy(),
    })
    d = d[d["unit_id"] >= 0]
    agg = d.groupby(["ue", "unit_id"]).agg(t_done_us=("t_delivered_us", "max"),
                                           n_delivered=("dropped", lambda s: int((~s).sum())))
    out = units[units["direction"] == direction].merge(agg.reset_index(), on=["ue", "unit_id"],
                                                        how="left")
    out["n_delivered"] = out["n_delivered"].fillna(0).astype("int64")
    out["complete"] = out["n_delivered"] == out["n_packets"]
    out.loc[~out["complete"], "t_done_us"] = np.nan
    out["latency_us"] = out["t_done_us"] - out["t_start_us"]
    return out.reset_index(drop=True)
