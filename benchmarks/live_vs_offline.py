"""Real applications through the live middlebox vs the offline emulation of the same workload.

    sudo .venv/bin/python benchmarks/live_vs_offline.py [--runs 5] [--seconds 10]
        [--scenario neuralemu/apps/scenarios/apps_fdd10.yaml] [--policy learned --model M.nemu]
        [--apps iperf-tcp,iperf-bbr,iperf-udp,web,video]

Prints ``key=value`` lines, one block per app (prefixed with the app name): the live
figure of every run, their median, the offline figure, and live/offline. Acceptance
(docs/apps.md): iperf3 TCP goodput and Chromium page load time agree within 10 %
(median of 5 runs). Needs root (network namespaces, eBPF, NFQUEUE).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuralemu.apps import compare  # noqa: E402
from neuralemu.apps.iperf import available_ccs  # noqa: E402

ALL = ("iperf-tcp", "iperf-bbr", "iperf-udp", "web", "video")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1]
                                              / "neuralemu/apps/scenarios/apps_fdd10.yaml"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--policy")
    ap.add_argument("--model")
    ap.add_argument("--apps", default=",".join(ALL))
    ap.add_argument("--prefix", default="bench")
    args = ap.parse_args()
    common = dict(runs=args.runs, prefix=args.prefix, policy=args.policy, model=args.model,
                  log=lambda m: print(f"# {m}", file=sys.stderr, flush=True))
    failed = []
    for app in args.apps.split(","):
        t0 = time.monotonic()
        if app == "iperf-tcp":
            r = compare.compare_iperf(args.scenario, protocol="tcp", cc="cubic", seconds=args.seconds,
                                      **common)
        elif app == "iperf-bbr":
            if "bbr" not in available_ccs():
                print("iperf-bbr.skipped=no bbr in tcp_available_congestion_control")
                continue
            r = compare.compare_iperf(args.scenario, protocol="tcp", cc="bbr", seconds=args.seconds,
                                      **common)
        elif app == "iperf-udp":
            r = compare.compare_iperf(args.scenario, protocol="udp", seconds=args.seconds,
                                      **dict(common, runs=min(args.runs, 3)))
        elif app == "web":
            r = compare.compare_web(args.scenario, **common)
        elif app == "video":
            r = compare.compare_video(args.scenario, seconds=args.seconds,
                                      **dict(common, runs=min(args.runs, 3)))
        else:
            print(f"unknown app {app!r}; known: {','.join(ALL)}", file=sys.stderr)
            return 2
        for line in r.lines():
            print(f"{app}.{line}")
        print(f"{app}.wall_s={time.monotonic() - t0:.1f}", flush=True)
        if app in ("iperf-tcp", "iperf-bbr", "web") and abs(r.ratio - 1) > 0.10:
            failed.append(app)
    print(f"within_10pct={'no: ' + ','.join(failed) if failed else 'yes'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
