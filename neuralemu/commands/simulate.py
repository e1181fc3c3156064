"""``neuralemu simulate`` (offline emulation of a workload) and ``neuralemu synth``
(the reference RAN simulator that writes training telemetry). See docs/scenario.md."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError

DELIVERY_COLUMNS = ["packet_id", "ue", "direction", "size_bytes", "t_arrival_us",
                    "t_delivered_us", "dropped"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="offline, faster-than-real-time emulation of a workload",
        description="Run a scenario's cell on a workload CSV (t_us,ue,direction,size_bytes) and "
                    "write the per-packet delivery log.")
    p.add_argument("--scenario", required=True, help="scenario YAML/JSON (docs/scenario.md)")
    p.add_argument("--workload", help="workload CSV; packet_id = its row index (0-based)")
    p.add_argument("--out", required=True, help="delivery log CSV to write")
    p.add_argument("--telemetry-out", help="directory for the emulated gNB's DCIs "
                                           "(dci.csv in NR-Scope format, dci.parquet)")
    p.add_argument("--duration-s", type=float, help="simulated time (default: the scenario's)")
    p.add_argument("--policy", help="override the scenario's policy name")
    p.set_defaults(func=cmd_simulate)

    s = subparsers.add_parser(
        "synth", help="reference RAN simulator: DCI log, UE-side log and true arrivals",
        description="Simulate a scenario (users with built-in traffic) and write dci.csv "
                    "(NR-Scope format), ue.csv (UE-side log), arrivals.csv (workload CSV) and "
                    "deliveries.csv to --out.")
    s.add_argument("--scenario", required=True)
    s.add_argument("--duration-s", type=float, help="simulated time (default: the scenario's)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--ue-log-every-slots", type=int, default=1,
                   help="sample the UE-side log every N slots (default 1: every slot)")
    s.add_argument("--workload", help="optional extra workload CSV")
    s.set_defaults(func=cmd_synth)


def _duration(args, sc) -> float:
    d = sc.duration_s if args.duration_s is None else float(args.duration_s)
    if not d > 0:
        raise InputError("--duration-s", f"must be > 0, got {args.duration_s}")
    return d


def _load(args, record_dci: bool):
    from neuralemu.scenario import build_emulation, load_scenario
    sc = load_scenario(args.scenario)
    if getattr(args, "policy", None):
        sc = sc.model_copy(update={"policy": sc.policy.model_copy(update={"name": args.policy,
                                                                           "params": {}})})
    duration = _duration(args, sc)
    workload = None
    if getattr(args, "workload", None):
        from neuralemu.workloads import read_workload_csv
        workload = read_workload_csv(args.workload)
    emu = build_emulation(sc, workload=workload, duration_s=duration, record_dci=record_dci)
    return sc, emu, duration, workload


def delivery_table(engine) -> pd.DataFrame:
    """Delivered, dropped and (at the end of the run) undelivered packets, by packet id."""
    log = engine.delivery_log()
    q = engine.queued_packets()
    if len(q):
        q = q.assign(t_delivered_us=pd.array([pd.NA] * len(q), dtype="Int64"), dropped=0)
        log = pd.concat([log, q[DELIVERY_COLUMNS]], ignore_index=True)
    return log.sort_values("packet_id", kind="stable").reset_index(drop=True)[DELIVERY_COLUMNS]


def write_delivery_csv(df: pd.DataFrame, path: str | Path) -> None:
    try:
        df.to_csv(path, index=False, lineterminator="\n")
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None


def _write_dcis(engine, out_dir: Path) -> int:
    from neuralemu.telemetry import write_dci_parquet, write_nrscope
    from neuralemu.telemetry.schema import str_column
    df = engine.canonical_dci_table()
    # canonical dtypes: pandas "str" columns
    for col, values in (("direction", ("dl", "ul")), ("mcs_table", ("qam64", "qam256", "qam64lowse"))):
        codes = pd.Categorical(df[col], categories=list(values)).codes.astype(np.int64)
        df[col] = str_column(values, codes)
    write_nrscope(df, out_dir / "dci.csv")
    write_dci_parquet(df, out_dir / "dci.parquet")
    return len(df)


def _out_dir(path: str) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(path, f"cannot create directory: {exc.strerror or exc}") from None
    return p


def cmd_simulate(args) -> int:
    sc, emu, duration, workload = _load(args, record_dci=bool(args.telemetry_out))
    tel = _out_dir(args.telemetry_out) if args.telemetry_out else None
    emu.run(duration, show_progress=True)
    df = delivery_table(emu.engine)
    write_delivery_csv(df, args.out)
    n_dci = _write_dcis(emu.engine, tel) if tel is not None else 0
    delivered = int(df["t_delivered_us"].notna().sum())
    dropped = int(df["dropped"].sum())
    print(f"simulated {duration:g} s: {len(df)} packets, {delivered} delivered, {dropped} dropped, "
          f"{len(df) - delivered - dropped} still in the cell"
          + (f"; {n_dci} DCIs to {tel}" if tel is not None else ""), file=sys.stderr)
    return 0


def cmd_synth(args) -> int:
    if args.ue_log_every_slots < 1:
        raise InputError("--ue-log-every-slots", "must be >= 1")
    sc, emu, duration, _ = _load(args, record_dci=True)
    out = _out_dir(args.out)
    eng = emu.engine
    every = int(args.ue_log_every_slots)
    chunks: list[dict] = []

    def sample(engine) -> None:
        snap = engine.ue_snapshot()
        snap["t_us"] = np.full(snap["ue"].shape[0], engine.t_us, dtype=np.int64)
        chunks.append(snap)

    sample(eng)
    emu.run(duration, show_progress=True, chunk_slots=every, on_chunk=sample)
    chunks.pop()        # the state after the last slot belongs to no slot of the run
    from neuralemu.telemetry import write_ue_log
    from neuralemu.telemetry.schema import str_column
    cat = {k: np.concatenate([c[k] for c in chunks]) if chunks else np.zeros(0)
           for k in ("t_us", "ue", "direction", "buffer_bytes", "cqi", "sinr_db")}
    ue_log = pd.DataFrame({
        "t_us": cat["t_us"].astype(np.int64), "ue": cat["ue"].astype(np.int64),
        "direction": str_column(("dl", "ul"), cat["direction"].astype(np.int64)),
        "buffer_bytes": cat["buffer_bytes"].astype(np.int64), "cqi": cat["cqi"].astype(np.int64),
        "sinr_db": np.round(cat["sinr_db"].astype(np.float64), 2)})
    write_ue_log(ue_log, out / "ue.csv")
    n_dci = _write_dcis(eng, out)
    deliveries = delivery_table(eng)
    write_delivery_csv(deliveries, out / "deliveries.csv")
    arrivals = deliveries[["t_arrival_us", "ue", "direction", "size_bytes", "packet_id"]]
    arrivals = arrivals.sort_values(["t_arrival_us", "packet_id"], kind="stable")
    arrivals = arrivals.rename(columns={"t_arrival_us": "t_us"})[["t_us", "ue", "direction",
                                                                  "size_bytes"]]
    from neuralemu.workloads import write_workload_csv
    try:
        write_workload_csv(out / "arrivals.csv", arrivals)
    except OSError as exc:
        raise InputError(str(out / "arrivals.csv"), f"cannot write: {exc}") from None
    print(f"synth {duration:g} s: {n_dci} DCIs, {len(ue_log)} UE-log rows, {len(arrivals)} "
          f"arrivals -> {out}", file=sys.stderr)
    return 0
