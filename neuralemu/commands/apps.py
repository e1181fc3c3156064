"""``neuralemu apps``: real applications through the live middlebox, next to the offline run.

    neuralemu apps run --scenario S.yaml --app iperf-tcp|iperf-udp|web|video [--cc cubic|bbr]
        [--runs 5] [--seconds 10] [--page-seed 5] [--bitrate-mbps 2] [--policy P] [--model M.nemu]
        [--prefix apps] [--json OUT.json]
    neuralemu apps page --seed 5 --out DIR

See docs/apps.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from neuralemu.errors import InputError


def _prefix(text: str) -> str:
    from neuralemu.datapath.testbed import PREFIX_RE
    if not PREFIX_RE.match(text):
        raise argparse.ArgumentTypeError("1-8 characters: a lowercase letter, then lowercase "
                                         "letters or digits")
    return text


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return v


def register(subparsers) -> None:
    from neuralemu.apps.compare import APPS
    p = subparsers.add_parser("apps", help="real apps (iperf3, Chromium, UDP video) live vs offline",
                              description="Run a real application through the live middlebox "
                                          "(needs root) and compare it with the offline emulation "
                                          "of the same workload. See docs/apps.md.")
    sub = p.add_subparsers(dest="apps_command", metavar="SUBCOMMAND")
    r = sub.add_parser("run", help="live runs of one app and the offline mirror")
    r.add_argument("--scenario", required=True, help="scenario YAML/JSON; the app runs on its first user")
    r.add_argument("--app", required=True, choices=APPS)
    r.add_argument("--cc", default="cubic", help="iperf-tcp: TCP congestion control (cubic, bbr, reno)")
    r.add_argument("--runs", type=_positive_int, default=5, help="live repetitions (default 5)")
    r.add_argument("--seconds", type=_positive_float, default=10.0,
                   help="iperf/video: seconds per run (default 10)")
    r.add_argument("--page-seed", type=int, default=5, help="web: the page's seed (default 5)")
    r.add_argument("--bitrate-mbps", type=_positive_float, default=2.0, help="video bitrate")
    r.add_argument("--udp-rate-mbps", type=_positive_float,
                   help="iperf-udp: offered rate (default 1.5x the offline capacity)")
    r.add_argument("--policy", help="override the scenario's policy (e.g. learned, pf)")
    r.add_argument("--model", help="policy learned: the model bundle (.nemu)")
    r.add_argument("--prefix", type=_prefix, default="apps", help="testbed prefix (default apps)")
    r.add_argument("--json", help="also write the full result as JSON here")
    r.set_defaults(func=cmd_run)
    g = sub.add_parser("page", help="write the test page of a seed to a directory")
    g.add_argument("--seed", type=int, default=5)
    g.add_argument("--out", required=True)
    g.set_defaults(func=cmd_page)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def cmd_run(args) -> int:
    from neuralemu.apps import compare
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    common = dict(runs=args.runs, prefix=args.prefix, policy=args.policy, model=args.model, log=log)
    if args.app in ("iperf-tcp", "iperf-udp"):
        res = compare.compare_iperf(args.scenario, protocol=args.app[6:], cc=args.cc,
                                    seconds=args.seconds,
                                    udp_rate_bps=args.udp_rate_mbps * 1e6 if args.udp_rate_mbps else None,
                                    **common)
    elif args.app == "web":
        res = compare.compare_web(args.scenario, page_seed=args.page_seed, **common)
    else:
        res = compare.compare_video(args.scenario, bitrate_mbps=args.bitrate_mbps,
                                    seconds=args.seconds, **common)
    print("\n".join(res.lines()))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(res.as_dict(), f, indent=1)
        except OSError as exc:
            raise InputError(args.json, f"cannot write: {exc.strerror}") from None
    return 0


def cmd_page(args) -> int:
    from neuralemu.apps.webpage import make_page, write_page
    page = make_page(args.seed)
    try:
        write_page(page, args.out)
    except OSError as exc:
        raise InputError(args.out, f"cannot write: {exc.strerror}") from None
    print(" ".join(f"{k}={v}" for k, v in page.summary().items()))
    return 0
