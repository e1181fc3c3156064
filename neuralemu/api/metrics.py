"""Prometheus text exposition (format 0.0.4) of an engine snapshot.

Metric names follow Prometheus conventions: base units (bytes, seconds),
``_total`` for counters, histograms as ``_bucket{le=...}``, ``_sum``, ``_count``.
"""

from __future__ import annotations


def _esc(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items()) + "}"


def _num(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, float) and value != value:
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.declared: set[str] = set()

    def declare(self, name: str, kind: str, help_text: str) -> None:
        if name not in self.declared:
            self.declared.add(name)
            self.lines.append(f"# HELP {name} {help_text}")
            self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict, value) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_num(value)}")

    def histogram(self, name: str, labels: dict, hist: dict | None) -> None:
        if not hist:
            return
        for le, cum in zip(hist["le"], hist["cumulative"]):
            self.sample(f"{name}_bucket", labels | {"le": le if le == "+Inf" else repr(float(le))}, cum)
        self.sample(f"{name}_sum", labels, float(hist["sum"]))
        self.sample(f"{name}_count", labels, int(hist["count"]))


def render_metrics(snap: dict) -> str:
    w = _Writer()
    w.declare("neuralemu_up", "gauge", "1 when a scenario is running")
    w.sample("neuralemu_up", {}, 1 if snap.get("state") == "running" else 0)
    w.declare("neuralemu_slots_total", "counter", "slots run since the scenario started")
    w.sample("neuralemu_slots_total", {}, int(snap.get("slots_run", 0)))
    cell = snap.get("cell") or {}
    w.declare("neuralemu_cell_prb_utilization_ratio", "gauge",
              "share of the cell's PRBs granted over the last 100 ms")
    w.sample("neuralemu_cell_prb_utilization_ratio", {}, float(cell.get("prb_utilization", 0.0)))
    ues = snap.get("ues") or []
    specs = [
        ("neuralemu_ue_delivered_bytes_total", "counter", "bytes delivered to/from the UE",
         "bytes_delivered"),
        ("neuralemu_ue_arrived_bytes_total", "counter", "bytes that arrived for the UE", "bytes_in"),
        ("neuralemu_ue_dropped_packets_total", "counter", "packets dropped (queue or HARQ)", "drops"),
        ("neuralemu_ue_dropped_bytes_total", "counter", "bytes dropped (queue or HARQ)",
         "dropped_bytes"),
        ("neuralemu_ue_queue_bytes", "gauge", "bytes waiting in the UE's queue now", "buffer_bytes"),
        ("neuralemu_ue_throughput_bits_per_second", "gauge", "delivered rate over the last 100 ms",
         "throughput_bps"),
        ("neuralemu_ue_prbs", "gauge", "PRBs per slot over the last 100 ms", "prbs_avg"),
        ("neuralemu_ue_mcs", "gauge", "MCS index of the last new transmission", "mcs"),
    ]
    for name, kind, help_text, key in specs:
        w.declare(name, kind, help_text)
        for ue in ues:
            w.sample(name, {"ue": ue["id"]}, ue.get(key, 0) or 0)
    w.declare("neuralemu_ue_queue_delay_seconds", "histogram",
              "queueing + air delay of delivered packets, arrival to delivery")
    for ue in ues:
        w.histogram("neuralemu_ue_queue_delay_seconds", {"ue": ue["id"]}, ue.get("delay_hist"))
    hists = snap.get("histograms") or {}
    w.declare("neuralemu_slot_lateness_seconds", "histogram",
              "how late each slot started after its wall-clock boundary")
    w.histogram("neuralemu_slot_lateness_seconds", {}, hists.get("slot_lateness_seconds"))
    w.declare("neuralemu_scheduler_decision_seconds", "histogram",
              "CPU time of one slot's scheduling (engine step, decision included)")
    w.histogram("neuralemu_scheduler_decision_seconds", {}, hists.get("scheduler_decision_seconds"))
    return "\n".join(w.lines) + "\n"
