"""``neuralemu ingest`` and ``neuralemu inspect``: telemetry files to Parquet, and a summary.

ingest FILE --out X.parquet [--format nrscope|ue|mahimahi] [--mu N]
inspect FILE [--plot out.png] [--prbs N] [--mu N] [--top N]

See docs/telemetry.md for the formats and the definitions of every figure.
"""

from __future__ import annotations

import argparse
import sys

from neuralemu.errors import InputError

INGEST_FORMATS = ("nrscope", "ue", "mahimahi")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="convert telemetry (NR-Scope CSV, UE-side log, Mahimahi trace) to Parquet",
        description="Read a telemetry file, validate it, and write the canonical table as Parquet.")
    p.add_argument("file", help="input file")
    p.add_argument("--out", required=True, help="output .parquet file")
    p.add_argument("--format", choices=INGEST_FORMATS, default=None,
                   help="input format (default: detected from the header)")
    p.add_argument("--mu", type=int, default=None,
                   help="numerology 0..3 (NR-Scope: default inferred from slot_index; "
                        "Mahimahi: slot grid, default 0)")
    p.set_defaults(func=run_ingest)

    q = subparsers.add_parser(
        "inspect", help="summarise a per-DCI table (Parquet or raw NR-Scope CSV)",
        description="Print duration, RNTIs, DCI rate, PRB utilisation, MCS and retransmissions.")
    q.add_argument("file", help="a Parquet file from `neuralemu ingest`, or an NR-Scope CSV")
    q.add_argument("--plot", default=None, help="write PRBs and MCS over time of the busiest users here")
    q.add_argument("--prbs", type=int, default=None,
                   help="cell width in PRBs (default: largest prb_start+prb_count seen)")
    q.add_argument("--mu", type=int, default=None, help="numerology for a raw NR-Scope CSV")
    q.add_argument("--top", type=int, default=4, help="users to plot (default 4)")
    q.set_defaults(func=run_inspect)


def _read(path: str, fmt: str | None, mu: int | None):
    """(kind, table) for any supported input."""
    from neuralemu.telemetry.detect import detect_format
    from neuralemu.telemetry.mahimahi import mahimahi_slot_table, read_mahimahi
    from neuralemu.telemetry.nrscope import read_nrscope
    from neuralemu.telemetry.parquet import read_table_parquet
    from neuralemu.telemetry.ue_log import read_ue_log

    if mu is not None and not 0 <= mu <= 3:
        raise InputError("--mu", f"numerology must be 0..3, got {mu}")
    fmt = fmt or detect_format(path)
    if fmt == "nrscope":
        return "dci", read_nrscope(path, mu=mu, show_progress=True)
    if fmt == "ue":
        return "ue_log", read_ue_log(path)
    if fmt == "mahimahi":
        return "slot_bytes", mahimahi_slot_table(read_mahimahi(path), 0 if mu is None else mu, path)
    df = read_table_parquet(path)
    return df.attrs.get("kind", "dci"), df


def run_ingest(args: argparse.Namespace) -> int:
    from neuralemu.telemetry.parquet import write_dci_parquet, write_table_parquet

    kind, df = _read(args.file, args.format, args.mu)
    if kind == "dci":
        write_dci_parquet(df, args.out)
        print(f"{args.out}: {len(df)} DCIs ({int(df['valid'].sum())} valid), "
              f"{df['rnti'].nunique()} RNTIs, mu {df.attrs['mu']}")
    else:
        write_table_parquet(df, args.out, kind)
        print(f"{args.out}: {len(df)} rows ({kind})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from neuralemu.telemetry.plot import plot_busiest_users
    from neuralemu.telemetry.summary import dci_summary, format_dci_summary

    if args.prbs is not None and not 1 <= args.prbs <= 275:
        raise InputError("--prbs", f"cell width must be 1..275 PRBs, got {args.prbs}")
    kind, df = _read(args.file, None, args.mu)
    if kind == "dci":
        print(format_dci_summary(dci_summary(df, args.prbs)))
        if args.plot:
            rntis = plot_busiest_users(df, args.plot, top=max(1, args.top))
            print(f"plot:          {args.plot} (RNTIs {', '.join(map(str, rntis)) or 'none'})")
        return 0
    print(_other_summary(kind, df))
    if args.plot:
        print("plot:          only per-DCI tables are plotted", file=sys.stderr)
    return 0


def _other_summary(kind: str, df) -> str:
    if kind == "slot_bytes":
        slots = len(df)
        duration_s = slots * int(df.attrs["slot_us"]) / 1e6
        total = int(df["bytes"].sum())
        rate = 8 * total / duration_s / 1e6 if duration_s else 0.0
        return (f"source:        {df.attrs.get('source', '')}\n"
                f"duration:      {duration_s:.3f} s ({slots} slots of {df.attrs['slot_us']} us)\n"
                f"bytes:         {total} (mean {rate:.2f} Mbit/s)")
    t = df["t_us"]
    duration_s = (int(t.iloc[-1]) - int(t.iloc[0])) / 1e6 if len(df) else 0.0
    return (f"source:        {df.attrs.get('source', '')}\n"
            f"duration:      {duration_s:.3f} s ({len(df)} reports)\n"
            f"UEs:           {df['ue'].nunique()}\n"
            f"buffer_bytes:  mean {df['buffer_bytes'].mean():.0f}\n"
            f"CQI:           mean {df['cqi'].mean():.2f}")
