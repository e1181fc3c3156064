"""``neuralemu reconstruct`` and ``neuralemu background sample`` (traffic reconstruction).

    neuralemu reconstruct --dci D [--dci D2 ...] [--exclude-rnti R ...] --out bg.json
    neuralemu reconstruct --dci D --report out.png [--bursts-csv bursts.csv]
    neuralemu background sample bg.json --duration-s N --out W.csv [--seed S] [--count C]

See docs/traffic-reconstruction.md.
"""

from __future__ import annotations

import json
import sys

from neuralemu.errors import InputError


def _reconstruct(args) -> int:
    from neuralemu.traffic_recon import ReconParams, reconstruct
    from neuralemu.traffic_recon.dci import load_dci
    from neuralemu.traffic_recon.profile import fit_profile, save_profile

    if not (args.out or args.report or args.bursts_csv):
        raise InputError("reconstruct", "nothing to do: give --out, --report and/or --bursts-csv")
    params = ReconParams(burst_gap_us=args.burst_gap_ms * 1000.0)
    logs = [(path, load_dci(path)) for path in args.dci]
    if args.report or args.bursts_csv:
        rec = reconstruct(logs[0][1], params, exclude_rnti=args.exclude_rnti, source=logs[0][0])
        if args.bursts_csv:
            rec.bursts.to_csv(args.bursts_csv, index=False)
        if args.report:
            from neuralemu.traffic_recon.report import draw_report
            draw_report(rec, args.report, max_users=args.report_users)
        d = rec.diagnostics
        print(f"{logs[0][0]}: {d['users']} users, {d['bursts']} bursts, {d['observed_new_grants']} new "
              f"transmissions seen, {d['missed_grants_inferred']} inferred missed "
              f"(detection ratio {d['detection_ratio']:.2f})", file=sys.stderr)
    if args.out:
        profile = fit_profile(logs, params=params, exclude_rnti=args.exclude_rnti,
                              allow_gaps=args.allow_gaps, seed=args.seed)
        save_profile(profile, args.out)
        pop = profile["population"]
        shares = ", ".join(f"{c} {e['share']:.2f}" for c, e in profile["classes"].items())
        print(f"wrote {args.out}: {pop['sessions']} sessions over {pop['duration_s']:.0f} s, "
              f"{pop['concurrent_users']['mean']:.1f} concurrent users on average; classes: {shares}",
              file=sys.stderr)
    return 0


def _background_sample(args) -> int:
    from neuralemu.traffic_recon.background import sample_background
    from neuralemu.traffic_recon.profile import load_profile
    from neuralemu.workloads.csv_io import write_workload_csv

    profile = load_profile(args.profile)
    bg = sample_background(profile, args.duration_s, seed=args.seed, count=args.count, ue_base=args.ue_base)
    write_workload_csv(args.out, bg.workload)
    if args.ues:
        with open(args.ues, "w") as fh:
            json.dump(bg.ue_configs(), fh)
    print(f"wrote {args.out}: {len(bg.sessions)} background users, {len(bg.workload)} packets, "
          f"{int(bg.workload['size_bytes'].sum())} bytes", file=sys.stderr)
    return 0


def _positive(text: str) -> float:
    import argparse
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def register(subparsers) -> None:
    p = subparsers.add_parser("reconstruct", help="invert DCI logs into bursts and fit a background profile",
                              description="Reconstruct per-user traffic from DCI logs (NR-Scope CSV or canonical "
                                          "CSV/Parquet) and fit a background-traffic profile.")
    p.add_argument("--dci", action="append", required=True, metavar="PATH",
                   help="DCI log; repeat to fit one profile from several logs of the same cell")
    p.add_argument("--exclude-rnti", type=int, action="append", default=[], metavar="RNTI",
                   help="leave this user out (e.g. your own test phone); repeatable")
    p.add_argument("--out", metavar="PROFILE.json", help="write the fitted background profile")
    p.add_argument("--report", metavar="PNG", help="draw inferred bursts over the grants (first --dci)")
    p.add_argument("--report-users", type=int, default=8, help="users drawn in the report (busiest first)")
    p.add_argument("--bursts-csv", metavar="CSV", help="write the reconstructed bursts (first --dci)")
    p.add_argument("--burst-gap-ms", type=_positive, default=6.0,
                   help="silence that ends a burst (default 6 ms)")
    p.add_argument("--allow-gaps", action="store_true",
                   help="fit across recording gaps (>30 s without any DCI) instead of refusing")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_reconstruct)

    b = subparsers.add_parser("background", help="background traffic from a profile")
    bsub = b.add_subparsers(dest="background_command", metavar="ACTION")
    s = bsub.add_parser("sample", help="sample a background workload CSV from a profile")
    s.add_argument("profile", metavar="PROFILE.json")
    s.add_argument("--duration-s", type=_positive, required=True)
    s.add_argument("--out", required=True, metavar="W.csv", help="workload CSV t_us,ue,direction,size_bytes")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--count", type=float, default=None,
                   help="mean concurrent background users (default: the profile's)")
    s.add_argument("--ue-base", type=int, default=60000, help="first background user id")
    s.add_argument("--ues", metavar="UES.json", help="also write the users' engine configs (trace channels)")
    s.set_defaults(func=_background_sample)
    b.set_defaults(func=lambda args: (b.print_help(sys.stderr), 2)[1])
