"""``neuralemu workload``: generate open-loop workload CSVs and summarise them.

    neuralemu workload gen --kind bulk|cbr|onoff|gaming|web --ues 4 --duration-s 60 \
        --seed 1 --out W.csv [--units-out U.csv] [kind options, e.g. --rate-mbps 5]
    neuralemu workload info W.csv

Kind options are the fields of the workload's parameter class
(:mod:`neuralemu.workloads`), spelled with dashes; giving an option that the
chosen kind does not have is an error. docs/workloads.md lists them all.
"""

from __future__ import annotations

import dataclasses
import sys

from neuralemu.errors import InputError

SOURCE = "workload gen"
MAX_UES = 10_000


def parse_ues(spec: str) -> list[int]:
    """``"4"`` -> [1, 2, 3, 4]; ``"3,7,9"`` -> those ids; ``"100-103"`` -> a range; mixed with commas."""
    spec = spec.strip()
    try:
        if spec.isdigit():
            n = int(spec)
            if not 1 <= n <= MAX_UES:
                raise InputError(SOURCE, f"--ues count must be 1..{MAX_UES}, got {n}", field="ues")
            return list(range(1, n + 1))
        ues: list[int] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if "-" in part:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = int(lo_s), int(hi_s)
                if lo < 0 or hi < lo or hi - lo >= MAX_UES:
                    raise ValueError
                ues.extend(range(lo, hi + 1))
            else:
                ue = int(part)
                if ue < 0:
                    raise ValueError
                ues.append(ue)
    except ValueError:
        raise InputError(SOURCE, f"--ues must be a count N, ids 'a,b,c' or a range 'lo-hi', "
                                 f"got {spec!r}", field="ues") from None
    if not ues or len(set(ues)) != len(ues) or len(ues) > MAX_UES:
        raise InputError(SOURCE, f"--ues must name 1..{MAX_UES} distinct users, got {spec!r}",
                         field="ues")
    return ues


def _kind_fields() -> dict[str, dict[str, dataclasses.Field]]:
    from neuralemu.workloads import OPEN_LOOP_KINDS
    return {kind: {f.name: f for f in dataclasses.fields(cls)}
            for kind, cls in OPEN_LOOP_KINDS.items()}


def _option_table() -> dict[str, tuple[type, dict[str, object]]]:
    """field name -> (type, {kind: its default})."""
    table: dict[str, tuple[type, dict[str, object]]] = {}
    for kind, fields in _kind_fields().items():
        for name, f in fields.items():
            typ = type(f.default) if f.default is not None else float
            table.setdefault(name, (typ, {}))[1][kind] = f.default
    return table


def register(subparsers) -> None:
    parser = subparsers.add_parser("workload", help="generate and inspect workload CSVs",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="workload_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])

    gen = sub.add_parser("gen", help="write an open-loop workload CSV (t_us,ue,direction,size_bytes)")
    from neuralemu.workloads import OPEN_LOOP_KINDS
    gen.add_argument("--kind", required=True, choices=sorted(OPEN_LOOP_KINDS))
    gen.add_argument("--ues", required=True,
                     help="a count N (users 1..N), ids 'a,b,c', or a range 'lo-hi'")
    gen.add_argument("--duration-s", type=float, required=True)
    gen.add_argument("--seed", type=int, default=0, help="(default 0)")
    gen.add_argument("--out", required=True, help="workload CSV to write")
    gen.add_argument("--units-out", default=None,
                     help="units sidecar CSV (web pages, video frames); default for gaming and "
                          "web: OUT with .units.csv; 'none' to skip")
    opts = gen.add_argument_group("kind options (defaults are the kind's own, see docs/workloads.md)")
    for name, (typ, defaults) in sorted(_option_table().items()):
        used = ", ".join(f"{kind} {default}" for kind, default in sorted(defaults.items()))
        opts.add_argument("--" + name.replace("_", "-"), dest="opt_" + name, type=typ,
                          default=None, metavar=name.upper(), help=f"[{used}]")
    gen.set_defaults(func=_gen)

    info = sub.add_parser("info", help="per-user packet counts and rates of a workload CSV")
    info.add_argument("path")
    info.set_defaults(func=_info)


def _gen(args) -> int:
    from neuralemu.progress import progress
    from neuralemu.workloads import (UnitRecorder, generate, make_open_loop, write_units_csv,
                                     write_workload_csv)

    ues = parse_ues(args.ues)
    if not 0 < args.duration_s <= 30 * 24 * 3600:
        raise InputError(SOURCE, f"--duration-s must be > 0 (and at most 30 days), "
                                 f"got {args.duration_s}", field="duration_s")
    fields = _kind_fields()[args.kind]
    params = {}
    for key, value in vars(args).items():
        if not key.startswith("opt_") or value is None:
            continue
        name = key[4:]
        if name not in fields:
            raise InputError(SOURCE, f"--{name.replace('_', '-')} does not apply to "
                                     f"--kind {args.kind}", field=name)
        params[name] = value
    workload = make_open_loop(args.kind, params, source=SOURCE)
    units_out = args.units_out
    if units_out is None and args.kind in ("gaming", "web"):
        units_out = (args.out[:-4] if args.out.endswith(".csv") else args.out) + ".units.csv"
    if units_out == "none":
        units_out = None
    recorder = UnitRecorder()
    packets = generate(workload, ues, args.duration_s, args.seed)
    bar = progress(recorder.record(packets), desc=f"workload {args.kind}", unit="pkt")
    try:
        n = write_workload_csv(args.out, bar)
    except OSError as exc:
        raise InputError(args.out, f"cannot write: {exc.strerror or exc}") from None
    msg = f"wrote {n} packets for {len(ues)} users to {args.out}"
    if units_out:
        try:
            write_units_csv(units_out, recorder.table())
        except OSError as exc:
            raise InputError(units_out, f"cannot write: {exc.strerror or exc}") from None
        msg += f"; units in {units_out}"
    print(msg)
    return 0


def _info(args) -> int:
    from neuralemu.workloads import read_workload_csv

    df = read_workload_csv(args.path)
    if df.empty:
        print(f"{args.path}: no packets")
        return 0
    span_s = max((df.t_us.iloc[-1] - df.t_us.iloc[0]) / 1e6, 1e-6)
    print(f"{args.path}: {len(df)} packets, {df.ue.nunique()} users, "
          f"{df.t_us.iloc[0] / 1e6:.3f} s to {df.t_us.iloc[-1] / 1e6:.3f} s")
    g = df.groupby(["ue", "direction"]).agg(packets=("size_bytes", "size"),
                                            bytes=("size_bytes", "sum"))
    g["mean_mbps"] = g["bytes"] * 8 / span_s / 1e6
    print(g.round(3).to_string())
    return 0
