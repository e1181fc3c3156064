"""``neuralemu demo`` (``make demo``): the whole product on bundled data, in a few minutes.

Stages (each with a progress bar; docs/evaluation.md):

1. ingest: the bundled real NR-Scope excerpt (``traces/nrscope/``) is read and summarised;
2. background: its users are reconstructed into a background-traffic profile (traffic_recon);
3. model: a learned scheduler is loaded from ``out/demo/model.nemu``, or trained on telemetry
   that the reference RAN simulator records from ``traces/scenarios/eval-pf.yaml``;
4. emulate (offline): the learned cell with the reconstructed background users carries a
   TCP-like bulk transfer (iperf3-like), a ping (small packets every 100 ms) and web page loads;
5. live: the same on the netns testbed through the live datapath when that stage is
   available (root, and the live API documented in docs/datapath.md); otherwise it is skipped
   with the reason printed;
6. report: ``out/demo/index.html`` with plots; a summary on stdout.

Everything the demo creates in the kernel is torn down on exit, Ctrl-C and SIGTERM
(the CLI turns SIGTERM into KeyboardInterrupt).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY = ROOT / "traces" / "nrscope" / "t_mobile2_morning_2_excerpt.csv"
TRUTH = ROOT / "traces" / "scenarios" / "eval-pf.yaml"
PHONE = 17921


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo on bundled telemetry (make demo)",
                              description="Ingest bundled telemetry, train or load a model, "
                                          "reconstruct background users, emulate traffic through "
                                          "the learned cell and write a report (out/demo/).")
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    p.add_argument("--quick", action="store_true", help="short stages (tests): a few seconds each")
    p.add_argument("--retrain", action="store_true", help="train even if out/demo/model.nemu exists")
    p.add_argument("--no-live", action="store_true", help="skip the live testbed stage")
    p.set_defaults(func=run)


def live_unavailable() -> str | None:
    """Why the live stage cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, eBPF)"
    if not (ROOT / "docs" / "datapath.md").is_file():
        return "the live datapath API is not documented yet (docs/datapath.md)"
    try:
        from neuralemu.datapath.live import LiveEmulation  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (any import failure means: not available)
        return f"the live datapath does not import: {exc}"
    return "the live stage of the demo is not wired to the datapath yet"


def run(args) -> int:
    from neuralemu.progress import progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = bool(args.quick)
    t_start = time.monotonic()
    stages = ["ingest", "background", "model", "emulate", "live", "report"]
    bar = progress(total=len(stages), desc="demo", unit="stage")
    info: dict = {}
    try:
        bar.set_description("demo: ingest telemetry")
        info["ingest"] = ingest(TELEMETRY)
        bar.update(1)
        bar.set_description("demo: reconstruct background")
        profile, bg_users = background_profile(TELEMETRY, out)
        info["background"] = {"profile": str(profile), "mean_users": round(bg_users, 2)}
        bar.update(1)
        bar.set_description("demo: model")
        learned, how = model(out, quick=quick, retrain=args.retrain)
        info["model"] = {"path": str(learned.model), "how": how, "samples": learned.samples}
        bar.update(1)
        bar.set_description("demo: emulate")
        results = emulate(learned, profile, bg_users, out, quick=quick)
        info["emulate"] = {k: v["summary"] for k, v in results.items()}
        bar.update(1)
        bar.set_description("demo: live")
        why = "disabled with --no-live" if args.no_live else live_unavailable()
        info["live"] = {"ran": False, "reason": why}
        bar.update(1)
        bar.set_description("demo: report")
        report = write_report(out, info, results)
        bar.update(1)
    finally:
        bar.close()
        teardown()
    info["seconds"] = round(time.monotonic() - t_start, 1)
    print(summary_text(info, report))
    return 0


def teardown() -> None:
    """Remove any kernel state the demo created (none unless the live stage ran)."""
    return None


def ingest(path: Path) -> dict:
    from neuralemu.telemetry import read_nrscope
    dci = read_nrscope(path)
    valid = dci[dci["valid"].astype(bool)]
    span_s = (int(valid["slot"].max()) - int(valid["slot"].min()) + 1) * float(dci.attrs["slot_us"]) / 1e6
    return {"file": str(path.relative_to(ROOT)), "dcis": int(len(dci)), "valid": int(len(valid)),
            "users": int(valid["rnti"].nunique()), "span_s": round(span_s, 1),
            "slot_us": float(dci.attrs["slot_us"]),
            "prbs_seen": int((valid["prb_start"] + valid["prb_count"]).max())}


def background_profile(path: Path, out: Path) -> tuple[Path, float]:
    from neuralemu.telemetry import read_nrscope
    from neuralemu.traffic_recon.profile import fit_profile, save_profile
    dci = read_nrscope(path)
    profile = fit_profile([(str(path), dci)], allow_gaps=True)
    p = out / "background.json"
    save_profile(profile, p)
    return p, float(profile["population"]["concurrent_users"]["mean"])


def model(out: Path, *, quick: bool, retrain: bool):
    """Load out/demo/model.nemu (with its telemetry-inferred cell), or record telemetry and train."""
    import json
    from neuralemu.eval import stages as S
    from neuralemu.eval.truth import load_truth
    meta = out / "model.json"
    path = out / "learned" / "model.nemu"
    if not retrain and path.is_file() and meta.is_file():
        from neuralemu.errors import InputError
        from neuralemu.scheduler_model.bundle import load_bundle
        try:
            bundle = load_bundle(path)
            d = json.loads(meta.read_text())
            return S.Learned(model=path, cell=bundle.cell.to_json(), fg=d["fg"], profile=None,
                             bg_mean_users=0.0, samples=d["samples"]), "loaded"
        except (InputError, ValueError, KeyError):
            pass                    # an old or damaged bundle: train a new one
    truth = load_truth(TRUTH, background=8)
    tel = S.record_telemetry(truth, out, seed=1, duration_s=6.0 if quick else 40.0)
    cfg = S.LearnConfig(epochs=2 if quick else 10, patience=3, seed=1)
    learned = S.learn(tel["dci"], tel["ue_log"], out / "learned", cfg)
    learned.profile = None          # the demo's background comes from the real telemetry
    meta.write_text(json.dumps({"fg": learned.fg, "samples": learned.samples}))
    return learned, "trained"


def _scenario(learned, profile: Path, bg_users: float, traffic: list[dict], duration_s: float) -> dict:
    from neuralemu.eval.stages import engine_cell
    return {"name": "demo", "seed": 7, "duration_s": duration_s,
            "cell": engine_cell(learned.cell),
            "policy": {"name": "learned", "params": {"model": str(learned.model)}},
            "ues": [{"ue_id": PHONE, "name": "phone", "traffic": traffic,
                     "channel": {"model": "stochastic", "distance_m": 150, "sinr_at_ref_db": 22,
                                 "fading_std_db": 3}}],
            "background": {"profile": str(profile), "count": max(1.0, round(bg_users, 1)),
                           "directions": list(learned.cell["directions"])}}


def emulate(learned, profile: Path, bg_users: float, out: Path, *, quick: bool) -> dict:
    import neuralemu.scheduler_model.policy  # noqa: F401  (registers "learned")
    from neuralemu.eval import runs as R
    from neuralemu.scenario import build_emulation
    duration = 3.0 if quick else 15.0

    def make(traffic, workload):
        sc = _scenario(learned, profile, bg_users, traffic, duration + 5.0)
        return build_emulation(sc, workload=workload, duration_s=duration + 5.0)

    res = {}
    bulk = R.run_bulk(make, PHONE, duration, 7)
    res["iperf3 (TCP-like bulk)"] = {"result": bulk, "summary": {"mean_mbps": round(bulk.scalar, 2)}}
    ping = run_ping(make, duration)
    res["ping"] = {"result": ping, "summary": {"median_rtt_ms": round(float(np.median(ping.samples)), 2),
                                               "count": int(ping.samples.size)}}
    web = R.run_web(make, PHONE, duration, 7)
    res["page load"] = {"result": web, "summary": {
        "pages": int(web.samples.size),
        "median_plt_ms": round(float(np.median(web.samples)), 1) if web.samples.size else None}}
    return res


def run_ping(make, duration_s: float):
    """ICMP-echo-like: 64-byte request (ul) then reply (dl) every 100 ms; RTT = ul + dl delay."""
    from neuralemu.eval.runs import RunResult
    t = np.arange(0, int(duration_s * 1e6), 100_000, dtype=np.int64)
    wl = pd.DataFrame({"t_us": np.concatenate([t, t + 20_000]), "ue": PHONE,
                       "direction": ["ul"] * len(t) + ["dl"] * len(t), "size_bytes": 84})
    wl = wl.sort_values("t_us", kind="stable").reset_index(drop=True)
    emu = make([], wl)
    emu.run(duration_s + 1.0)
    log = emu.engine.delivery_log()
    log = log[(log["ue"] == PHONE) & log["t_delivered_us"].notna()]
    delay = (log["t_delivered_us"].astype("float64") - log["t_arrival_us"]) / 1e3
    ul = delay[log["direction"] == "ul"].to_numpy()
    dl = delay[log["direction"] == "dl"].to_numpy()
    n = min(len(ul), len(dl))
    rtt = ul[:n] + dl[:n]
    return RunResult("ping", rtt, pd.DataFrame({"t_s": t[:n] / 1e6, "value": rtt}))


def write_report(out: Path, info: dict, results: dict) -> Path:
    import html
    import json
    from neuralemu.eval.report import _plt
    plt = _plt()
    figs = []
    for name, r in results.items():
        res = r["result"]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        if res.workload == "bulk":
            ax.plot(res.series["t_s"], res.series["value"], color="#1f77b4")
            ax.set_ylabel("throughput (Mbit/s)")
            ax.set_xlabel("time (s)")
        elif res.workload == "ping":
            ax.plot(res.series["t_s"], res.series["value"], ".-", color="#2ca02c")
            ax.set_ylabel("round-trip time (ms)")
            ax.set_xlabel("time (s)")
        else:
            x = np.sort(res.samples)
            if x.size:
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", color="#9467bd")
            ax.set_xlabel("page load time (ms)")
            ax.set_ylabel("CDF")
        ax.set_title(f"{name} through the learned cell with reconstructed background users",
                     fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fname = f"demo_{res.workload}.png"
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        figs.append(fname)
    e = html.escape
    imgs = "".join(f"<img src='{e(f)}' style='max-width:480px'>" for f in figs)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>NeuralEmu demo</title></head>"
            f"<body style='font-family:sans-serif;max-width:1000px;margin:2em auto'>"
            f"<h1>NeuralEmu demo</h1><pre>{e(json.dumps(info, indent=2, default=str))}</pre>{imgs}"
            f"</body></html>")
    (out / "summary.json").write_text(json.dumps(info, indent=2, default=str))
    path = out / "index.html"
    path.write_text(page)
    return path


def summary_text(info: dict, report: Path) -> str:
    ing, em = info["ingest"], info["emulate"]
    lines = ["NeuralEmu demo done",
             f"  telemetry: {ing['file']}: {ing['valid']} valid DCIs, {ing['users']} users, "
             f"{ing['span_s']} s",
             f"  background: {info['background']['mean_users']} concurrent users reconstructed",
             f"  model: {info['model']['how']} ({info['model']['path']})"]
    for k, v in em.items():
        lines.append(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    live = info["live"]
    lines.append(f"  live: {'ran' if live['ran'] else 'skipped: ' + str(live['reason'])}")
    lines.append(f"  report: {report}   ({info['seconds']} s)")
    return "\n".join(lines)
