"""``neuralemu demo`` (``make demo``): the whole product on bundled data, in a few minutes.

Stages (each with a progress bar; docs/evaluation.md):

1. ingest: the bundled real NR-Scope excerpt (``traces/nrscope/``) is read and summarised;
2. background: its users are reconstructed into a background-traffic profile (traffic_recon);
3. model: a learned scheduler is loaded from ``out/demo/model.nemu``, or trained on telemetry
   that the reference RAN simulator records from ``traces/scenarios/eval-pf.yaml``;
4. emulate (offline): the learned cell with the reconstructed background users carries a
   TCP-like bulk transfer (iperf3-like), a ping (small packets every 100 ms) and web page loads;
5. live (root): the same learned cell with the background users on the netns testbed
   (``LiveEmulation.from_scenario``): a real iperf3 TCP download, ICMP pings
   (datapath/probe.py) and a headless Chromium page load (apps/) on the phone, each bounded
   by a timeout; throughput per second, RTT, page load time, the conservation summary and
   the release lateness are recorded; without root (or with ``--no-live``) it is skipped
   with the reason printed;
6. report: ``out/demo/index.html`` with plots; a summary on stdout.

Exit code 0 when every stage worked, 1 with a one-line reason on stderr when one genuinely
failed (nothing carried offline, a live app without a result, broken conservation, kernel
state left behind, a crash), 2 for bad input.

Everything the demo creates in the kernel is torn down on exit, Ctrl-C and SIGTERM
(the CLI turns SIGTERM into KeyboardInterrupt).
"""

from __future__ import annotations

import json
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
LIVE_PREFIX = "demo"


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo on bundled telemetry (make demo)",
                              description="Ingest bundled telemetry, train or load a model, "
                                          "reconstruct background users, emulate traffic through "
                                          "the learned cell and write a report (out/demo/).")
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    p.add_argument("--quick", action="store_true", help="short stages (tests): a few seconds each")
    p.add_argument("--retrain", action="store_true", help="train even if out/demo/model.nemu exists")
    p.add_argument("--no-live", action="store_true", help="skip the live testbed stage")
    p.add_argument("--policy", default="learned", choices=["learned", "pf", "rr", "maxcqi"],
                   help="scheduler of the emulate and live stages (default learned; an analytical "
                        "one checks the demo's own pipeline)")
    p.add_argument("--prefix", default=LIVE_PREFIX,
                   help=f"testbed prefix of the live stage (default {LIVE_PREFIX})")
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
    import shutil
    missing = [b for b in ("iperf3", "ip", "iptables") if shutil.which(b) is None]
    if missing:
        return f"missing programs: {', '.join(missing)} (deploy/install-deps.sh)"
    return None


def run(args) -> int:
    from neuralemu.datapath.testbed import check_prefix
    from neuralemu.errors import InputError
    from neuralemu.progress import progress
    check_prefix(args.prefix)               # bad input: one line, exit 2, before any work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = bool(args.quick)
    t_start = time.monotonic()
    stages = ["ingest", "background", "model", "emulate", "live", "report"]
    bar = progress(total=len(stages), desc="demo", unit="stage")
    info: dict = {}
    stage = stages[0]

    def begin(name: str, text: str) -> None:
        nonlocal stage
        stage = name
        bar.set_description(f"demo: {text}")

    try:
        begin("ingest", "ingest telemetry")
        info["ingest"] = ingest(TELEMETRY)
        bar.update(1)
        begin("background", "reconstruct background")
        profile, bg_users = background_profile(TELEMETRY, out)
        info["background"] = {"profile": str(profile), "mean_users": round(bg_users, 2)}
        bar.update(1)
        begin("model", "model")
        learned, how = model(out, quick=quick, retrain=args.retrain)
        info["model"] = {"path": str(learned.model), "how": how, "samples": learned.samples,
                         "policy": args.policy}
        bar.update(1)
        begin("emulate", "emulate")
        results = emulate(learned, profile, bg_users, out, quick=quick, policy=args.policy)
        info["emulate"] = {k: v["summary"] for k, v in results.items()}
        bar.update(1)
        begin("live", "live")
        why = "disabled with --no-live" if args.no_live else live_unavailable()
        if why is None:
            _LIVE_PREFIXES.append(args.prefix)
            info["live"] = live_stage(learned, profile, bg_users, out, quick=quick,
                                      prefix=args.prefix, policy=args.policy,
                                      log=lambda m: bar.set_description(f"demo: {m}"))
        else:
            info["live"] = {"ran": False, "reason": why}
        bar.update(1)
        begin("report", "report")
        report = write_report(out, info, results)
        bar.update(1)
    except InputError:
        raise                               # bad input: the CLI prints one line, exit 2
    except Exception as exc:  # noqa: BLE001  (a stage crashed: one line here, details in a file)
        import traceback
        err = out / "error.txt"
        err.write_text(traceback.format_exc())
        bar.close()
        print(f"neuralemu demo: failed: {stage}: {type(exc).__name__}: {_one_line(exc)} "
              f"(traceback in {err})", file=sys.stderr)
        return 1
    finally:
        bar.close()
        teardown()
    info["seconds"] = round(time.monotonic() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(_no_series(info), indent=2, default=str))
    print(summary_text(info, report))
    failed = stage_failures(info)
    if failed:
        print(f"neuralemu demo: failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


_LIVE_PREFIXES: list[str] = []     # testbeds the live stage may have built (for teardown)


def teardown() -> None:
    """Remove any kernel state the demo created (none unless the live stage ran): the live
    stage cleans up after itself; this is the backstop for an interrupt inside its clean-up."""
    if not _LIVE_PREFIXES:
        return
    from neuralemu.datapath import testbed
    while _LIVE_PREFIXES:
        testbed.down(_LIVE_PREFIXES.pop())


def stage_failures(info: dict) -> list[str]:
    """One short reason per stage that genuinely failed: an offline app that carried nothing,
    a live stage that ran and failed. A skipped live stage (no root, --no-live) is no failure."""
    out = []
    em = info.get("emulate", {})
    if em.get("iperf3 (TCP-like bulk)", {}).get("mean_mbps", 1) <= 0:
        pol = info.get("model", {}).get("policy", "learned")
        out.append(f"offline emulation: the bulk transfer got 0 Mbit/s through the {pol} cell")
    live = info.get("live", {})
    if live.get("ran") and not live.get("ok"):
        out.append("live: " + ", ".join(live.get("failures") or ["failed"]))
    return out


def _no_series(info: dict) -> dict:
    """summary.json without the long per-sample lists (they are in the plots)."""
    import copy
    d = copy.deepcopy(info)
    live = d.get("live", {})
    live.pop("per_second", None)
    for a in live.get("apps", {}).values():
        a.pop("rtt_ms", None)
    return d


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


def _scenario(learned, profile: Path, bg_users: float, traffic: list[dict], duration_s: float,
              policy: str = "learned") -> dict:
    from neuralemu.eval.stages import engine_cell
    return {"name": "demo", "seed": 7, "duration_s": duration_s,
            "cell": engine_cell(learned.cell),
            "policy": ({"name": "learned", "params": {"model": str(learned.model)}}
                       if policy == "learned" else {"name": policy}),
            "ues": [{"ue_id": PHONE, "name": "phone", "traffic": traffic,
                     "channel": {"model": "stochastic", "distance_m": 150, "sinr_at_ref_db": 22,
                                 "fading_std_db": 3}}],
            "background": {"profile": str(profile), "count": max(1.0, round(bg_users, 1)),
                           "directions": list(learned.cell["directions"])}}


def emulate(learned, profile: Path, bg_users: float, out: Path, *, quick: bool,
            policy: str = "learned") -> dict:
    import neuralemu.scheduler_model.policy  # noqa: F401  (registers "learned")
    from neuralemu.eval import runs as R
    from neuralemu.scenario import build_emulation
    duration = 3.0 if quick else 15.0

    def make(traffic, workload):
        sc = _scenario(learned, profile, bg_users, traffic, duration + 5.0, policy)
        return build_emulation(sc, workload=workload, duration_s=duration + 5.0)

    res = {}
    bulk = R.run_bulk(make, PHONE, duration, 7)
    res["iperf3 (TCP-like bulk)"] = {"result": bulk, "summary": {"mean_mbps": round(bulk.scalar, 2)}}
    ping = run_ping(make, duration)
    res["ping"] = {"result": ping, "summary": {
        "median_rtt_ms": round(float(np.median(ping.samples)), 2) if ping.samples.size else None,
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


# ------------------------------------------------------------------------------ live stage
def live_plan(quick: bool) -> dict:
    """How long each live app runs (``--quick``: a few seconds each, for tests)."""
    if quick:
        return {"iperf_s": 3, "pings": 20, "ping_interval_s": 0.1, "page_loads": 1,
                "browser_timeout_s": 10.0, "background_s": 10.0}
    return {"iperf_s": 10, "pings": 50, "ping_interval_s": 0.1, "page_loads": 3,
            "browser_timeout_s": 30.0, "background_s": 30.0}


class _SecondLog:
    """Per-second figures from the live loop's snapshots (called on the loop thread: cheap).

    ``phone_dl_mbps``: IP bytes the datapath released to the phone (real packets);
    ``background_dl_mbps``: bytes the engine delivered to the synthetic background users."""

    def __init__(self, phone: int) -> None:
        self.phone = phone
        self.t0 = time.time()
        self.rows: list[dict] = []
        self._last: dict = {}

    def __call__(self, snap) -> None:
        phone = snap.queues.get((self.phone, "dl"), {}).get("out_bytes", 0)
        bg = sum(int(st.get("dl", {}).get("bytes_out", 0))
                 for ue, st in snap.engine_stats.items() if ue != self.phone)
        last = self._last or {"phone": 0, "bg": 0, "t": self.t0}
        dt = max(1e-3, snap.t_wall - last["t"])
        self.rows.append({"t_s": round(snap.t_wall - self.t0, 2),
                          "phone_dl_mbps": (phone - last["phone"]) * 8 / dt / 1e6,
                          "background_dl_mbps": (bg - last["bg"]) * 8 / dt / 1e6,
                          "lateness_p99_slots": float(snap.lateness_slots_p99)})
        self._last = {"phone": phone, "bg": bg, "t": snap.t_wall}

    def mark(self) -> float:
        return round(time.time() - self.t0, 2)


def _drain(live, ue: int, timeout_s: float = 3.0) -> None:
    """Wait (bounded) until the phone's queues are empty, so one app does not load the next."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with live.lock:
            st = live.engine.stats().get(ue, {})
        if all(st.get(d, {}).get("queue_bytes", 0) == 0 for d in ("dl", "ul")):
            return
        time.sleep(0.1)


def live_iperf(tb, plan: dict) -> dict:
    """iperf3 TCP (CUBIC) download to the phone; bounded by run_iperf's own timeout."""
    import subprocess
    from neuralemu.apps.iperf import IperfError, run_iperf
    try:
        r = run_iperf(tb.ns_srv, tb.ns_ue(1), tb.server_ipv4, seconds=plan["iperf_s"],
                      protocol="tcp", cc="cubic", port=5201)
    except subprocess.TimeoutExpired as exc:
        return {"ok": False, "error": f"iperf3: no result in {exc.timeout:.0f} s (killed)"}
    except (IperfError, OSError) as exc:
        return {"ok": False, "error": f"iperf3: {_one_line(exc)}"}
    out = {"ok": r.goodput_bps > 0, "goodput_mbps": round(r.goodput_bps / 1e6, 3),
           "seconds": r.seconds, "retransmits": r.retransmits,
           "interval_mbps": [round(v / 1e6, 3) for v in r.interval_bps]}
    if not out["ok"]:
        out["error"] = "iperf3: 0 bit/s received"
    return out


def live_ping(tb, plan: dict) -> dict:
    """ICMP echo from the phone to the server (datapath/probe.py; the host has no ping)."""
    from neuralemu.datapath.probe import ping
    try:
        rtts_us = ping(tb.ns_ue(1), tb.server_ipv4, count=plan["pings"],
                       interval_s=plan["ping_interval_s"], timeout_s=2.0)
    except OSError as exc:
        return {"ok": False, "error": f"ping: {_one_line(exc)}", "sent": plan["pings"], "received": 0}
    rtt_ms = np.asarray(rtts_us, dtype=float) / 1e3
    out = {"ok": rtt_ms.size > 0, "sent": plan["pings"], "received": int(rtt_ms.size),
           "rtt_ms": [round(float(v), 3) for v in rtt_ms]}
    if rtt_ms.size:
        out.update({"median_rtt_ms": round(float(np.median(rtt_ms)), 2),
                    "p95_rtt_ms": round(float(np.percentile(rtt_ms, 95)), 2)})
    else:
        out["error"] = f"ping: no echo reply to {plan['pings']} probes"
    return out


def prepare_page(tmp: Path):
    """Write the seeded test page (apps/webpage.py, seed 5) and the warm-up page under ``tmp``.
    Done before the live cell starts: generating 1.5 MB of page objects in this process holds
    the interpreter long enough to stall the live loop thread."""
    from neuralemu.apps.compare import _write_warmup
    from neuralemu.apps.webpage import make_page, write_page
    page = make_page(5)
    write_page(page, tmp / "page")
    _write_warmup(tmp / "warm")
    return page


def live_page_load(tb, plan: dict, tmp: Path, page) -> dict:
    """Headless Chromium in the phone's namespace loads the test page (``prepare_page``)
    from the web server in the server namespace; every load is bounded by the browser timeout."""
    from neuralemu.apps.browser import CdpError, Chromium, chromium_binary
    from neuralemu.apps.compare import APP_RT_PRIORITY, WARMUP_PORT, WEB_PORT
    from neuralemu.apps.webserver import WebServer
    if chromium_binary() is None:
        return {"ok": False, "error": "page load: no chromium binary (deploy/install-deps.sh)"}
    root, warm = tmp / "page", tmp / "warm"
    out = {"ok": False, "page": page.summary(), "plt_ms": [], "errors": []}
    url = f"http://{tb.server_ipv4}:{WEB_PORT}/index.html"
    warm_url = f"http://{tb.server_ipv4}:{WARMUP_PORT}/index.html"
    try:
        with WebServer(tb.ns_srv, root, tb.server_ipv4, WEB_PORT, rt_priority=APP_RT_PRIORITY), \
                WebServer(tb.ns_srv, warm, tb.server_ipv4, WARMUP_PORT, rt_priority=APP_RT_PRIORITY):
            for _ in range(plan["page_loads"]):
                try:
                    with Chromium(tb.ns_ue(1), timeout_s=plan["browser_timeout_s"],
                                  rt_priority=APP_RT_PRIORITY) as browser:
                        r = browser.load(url, warmup_url=warm_url)
                except (CdpError, OSError, TimeoutError) as exc:
                    out["errors"].append(_one_line(exc))
                    break            # a load that timed out: more loads would only time out too
                if r.n_resources != len(page.objects) - 1:
                    out["errors"].append(f"fetched {r.n_resources} of {len(page.objects) - 1} objects")
                    continue
                out["plt_ms"].append(round(r.plt_ms, 1))
    except RuntimeError as exc:          # the web server did not start
        out["errors"].append(_one_line(exc))
    out["ok"] = bool(out["plt_ms"]) and not out["errors"]
    if out["plt_ms"]:
        out["median_plt_ms"] = round(float(np.median(out["plt_ms"])), 1)
    if not out["ok"]:
        out["error"] = (f"page load: {len(out['plt_ms'])}/{plan['page_loads']} loads completed"
                        + (f" ({out['errors'][0]})" if out["errors"] else ""))
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def conservation_summary(final: dict | None) -> dict:
    """The datapath's conservation check, summed per direction: in = out + drops + queued."""
    if not final:
        return {"ok": False, "error": "no conservation summary (the live loop did not stop cleanly)"}
    users = {k: v for k, v in final.items() if "/" in k}
    total = {d: {f: sum(v[f] for k, v in users.items() if k.endswith("/" + d))
                 for f in ("in_bytes", "out_bytes", "drop_bytes", "queued_bytes", "balance_bytes",
                           "kernel_queue_dropped")} for d in ("dl", "ul")}
    bad = [k for k, v in users.items() if v["balance_bytes"] != 0]
    out = {"ok": not bad, "per_direction": total,
           "unclassified": final.get("unclassified", {})}
    if bad:
        out["error"] = f"conservation broken for {', '.join(bad)} (in != out + drops + queued)"
    return out


def live_stage(learned, profile: Path, bg_users: float, out: Path, *, quick: bool,
               prefix: str, log=None, policy: str = "learned") -> dict:
    """Bring up ``prefix``'s testbed with the learned cell and the reconstructed background
    users (LiveEmulation.from_scenario: the background users are in the engine, their arrivals
    fed as it runs), run iperf3, ping and a Chromium page load on the phone (testbed UE 1),
    stop and tear everything down (also on Ctrl-C/SIGTERM and on any error)."""
    import tempfile
    from neuralemu.datapath import testbed
    from neuralemu.datapath.live import LiveEmulation, lateness_percentiles
    import neuralemu.scheduler_model.policy  # noqa: F401  (registers "learned")
    plan = live_plan(quick)
    say = log or (lambda msg: None)
    sc = _scenario(learned, profile, bg_users, [], plan["background_s"], policy)
    seconds = _SecondLog(PHONE)
    res: dict = {"ran": True, "prefix": prefix, "policy": policy, "plan": plan, "apps": {},
                 "phases": []}
    live = LiveEmulation.from_scenario(sc, duration_s=plan["background_s"], prefix=prefix,
                                       on_second=seconds)
    res["background_users"] = len(live.emulation.background_ues) if live.emulation else 0
    errors: list[str] = []
    t_live = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="neuralemu-demo-") as tmp:
            page = prepare_page(Path(tmp))
            say(f"live: starting the testbed and the {policy} cell")
            live.start()
            seconds.t0 = time.time()             # the plot's time axis starts with the live cell
            tb = live.testbed
            apps = res["apps"]
            for name, fn in (("iperf3", lambda: live_iperf(tb, plan)),
                             ("ping", lambda: live_ping(tb, plan)),
                             ("page load", lambda: live_page_load(tb, plan, Path(tmp), page))):
                say(f"live: {name}")
                t0 = seconds.mark()
                apps[name] = fn()
                res["phases"].append({"app": name, "t0_s": t0, "t1_s": seconds.mark()})
                _drain(live, PHONE)
    except Exception as exc:  # noqa: BLE001  (testbed/eBPF/loop failure: reported, not a traceback)
        errors.append(f"live datapath: {_one_line(exc)}")
    finally:
        try:
            live.stop()
        except RuntimeError as exc:          # the loop thread failed; stop() still cleaned up
            errors.append(_one_line(exc))
        finally:
            testbed.down(prefix)             # idempotent: nothing left even if stop() was cut short
    final = live.final
    res["seconds"] = round(time.monotonic() - t_live, 1)
    slot_us = int(live.engine.slot_us)
    # per released packet (what the apps saw) and per stepped slot (the clock)
    p50, p99, p999 = lateness_percentiles(live.lateness_us, live.slot_packets, slot_us)
    s50, s99, s999 = lateness_percentiles(live.lateness_us, live.slot_packets, slot_us,
                                          per_packet=False)
    res["release_lateness_slots"] = {"p50": round(p50, 3), "p99": round(p99, 3),
                                     "p99_9": round(p999, 3), "slot_us": slot_us,
                                     "packets_released": int(sum(live.slot_packets)),
                                     "per_slot_p50": round(s50, 3), "per_slot_p99": round(s99, 3),
                                     "per_slot_p99_9": round(s999, 3),
                                     "slots_stepped": len(live.lateness_us)}
    lat_us = np.frombuffer(live.lateness_us, dtype=np.int32) if len(live.lateness_us) else np.zeros(0)
    if lat_us.size:                          # where the stalls were (stepped-slot index)
        stalled = np.flatnonzero(lat_us > 10 * slot_us)
        res["release_lateness_slots"].update({
            "slots_over_10_late": int(stalled.size),
            "max_slots": round(float(lat_us.max()) / slot_us, 1),
            "first_stalled_slot": int(stalled[0]) if stalled.size else None,
            "last_stalled_slot": int(stalled[-1]) if stalled.size else None})
    res["conservation"] = conservation_summary(final)
    res["per_second"] = seconds.rows
    phone_dl = (final or {}).get(f"{PHONE}/dl", {})
    res["phone_dl_bytes"] = int(phone_dl.get("out_bytes", 0))
    left = testbed.status(prefix)
    res["kernel_clean"] = not left
    failures = errors + [a["error"] for a in res["apps"].values() if not a.get("ok")]
    if final is not None and res["apps"] and res["phone_dl_bytes"] == 0:
        failures.insert(0, f"the {policy} cell served the phone 0 bytes downlink")
    if not res["conservation"]["ok"]:
        failures.append(res["conservation"]["error"])
    if left:
        failures.append(f"{len(left)} kernel objects left behind ({left[0]['kind']} {left[0]['name']})")
    res["ok"] = not failures
    res["failures"] = failures
    return res


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
        ax.set_title(f"{name} through the {info['model'].get('policy', 'learned')} cell with "
                     "reconstructed background users",
                     fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fname = f"demo_{res.workload}.png"
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        figs.append(fname)
    live = info.get("live", {})
    if live.get("ran") and live.get("per_second"):
        figs.insert(0, plot_live(out, live, plt))
        (out / "live_per_second.json").write_text(json.dumps(
            {"phases": live.get("phases", []), "per_second": live["per_second"]}, indent=1))
    e = html.escape
    imgs = "".join(f"<img src='{e(f)}' style='max-width:480px'>" for f in figs)
    lines = "".join(f"<li>{e(x)}</li>" for x in live_lines(live)) if live.get("ran") else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>NeuralEmu demo</title></head>"
            f"<body style='font-family:sans-serif;max-width:1000px;margin:2em auto'>"
            f"<h1>NeuralEmu demo</h1>"
            + (f"<h2>Live (real traffic through the {e(live.get('policy', 'learned'))} cell)</h2>"
               f"<ul>{lines}</ul>" if lines else "")
            + f"{imgs}<h2>All figures</h2><pre>{e(json.dumps(_no_series(info), indent=2, default=str))}</pre>"
            f"</body></html>")
    (out / "summary.json").write_text(json.dumps(_no_series(info), indent=2, default=str))
    path = out / "index.html"
    path.write_text(page)
    return path


def summary_text(info: dict, report: Path) -> str:
    ing, em = info["ingest"], info["emulate"]
    lines = ["NeuralEmu demo done",
             f"  telemetry: {ing['file']}: {ing['valid']} valid DCIs, {ing['users']} users, "
             f"{ing['span_s']} s",
             f"  background: {info['background']['mean_users']} concurrent users reconstructed",
             f"  model: {info['model']['how']} ({info['model']['path']})"
             + ("" if info["model"].get("policy", "learned") == "learned"
                else f"; policy {info['model']['policy']} (--policy), not the model")]
    for k, v in em.items():
        lines.append(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    live = info["live"]
    if live["ran"]:
        lines.append("  live: " + ("ok" if live["ok"] else "FAILED") + f" (testbed {live['prefix']}, "
                     f"{live.get('background_users', 0)} background users, {live['seconds']} s)")
        lines += [f"    {x}" for x in live_lines(live)]
    else:
        lines.append(f"  live: skipped: {live['reason']}")
    lines.append(f"  report: {report}   ({info['seconds']} s)")
    return "\n".join(lines)


def live_lines(live: dict) -> list[str]:
    """The live stage in a few human lines (summary and report)."""
    apps = live.get("apps", {})
    out = []
    ip = apps.get("iperf3")
    if ip:
        out.append(f"iperf3 TCP download: {ip['goodput_mbps']} Mbit/s over {ip['seconds']:.1f} s, "
                   f"{ip.get('retransmits')} retransmissions" if ip.get("ok") else ip["error"])
    pg = apps.get("ping")
    if pg:
        out.append(f"ping: median RTT {pg['median_rtt_ms']} ms, p95 {pg['p95_rtt_ms']} ms, "
                   f"{pg['received']}/{pg['sent']} replies" if pg.get("received") else pg["error"])
    wb = apps.get("page load")
    if wb:
        txt = (f"Chromium page load ({wb['page']['objects']} objects, {wb['page']['total_bytes']} bytes): "
               f"median {wb['median_plt_ms']} ms over {len(wb['plt_ms'])} loads"
               if wb.get("plt_ms") else "")
        out.append("; ".join(x for x in (txt, wb.get("error")) if x))
    cons = live.get("conservation", {})
    if cons.get("per_direction"):
        dl, ul = cons["per_direction"]["dl"], cons["per_direction"]["ul"]
        out.append(f"conservation: {'ok' if cons['ok'] else 'BROKEN'}: dl in {dl['in_bytes']} = "
                   f"out {dl['out_bytes']} + drops {dl['drop_bytes']} + queued {dl['queued_bytes']} B; "
                   f"ul in {ul['in_bytes']} = out {ul['out_bytes']} + drops {ul['drop_bytes']} + "
                   f"queued {ul['queued_bytes']} B")
    elif cons.get("error"):
        out.append(cons["error"])
    lat = live.get("release_lateness_slots")
    if lat:
        out.append(f"release lateness per packet: p50 {lat['p50']}, p99 {lat['p99']}, p99.9 "
                   f"{lat['p99_9']} slots of {lat['slot_us']} us ({lat['packets_released']} packets); "
                   f"per slot: p50 {lat['per_slot_p50']}, p99 {lat['per_slot_p99']}, p99.9 "
                   f"{lat['per_slot_p99_9']} ({lat['slots_stepped']} slots)")
    for f in live.get("failures", []):
        if not any(f in x for x in out):
            out.append(f"failure: {f}")
    return out


def plot_live(out: Path, live: dict, plt) -> str:
    """Per-second throughput during the live stage: the phone's real packets released by the
    datapath, the background users' bytes delivered by the engine, app phases shaded."""
    rows = pd.DataFrame(live["per_second"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colors = {"iperf3": "#1f77b4", "ping": "#2ca02c", "page load": "#9467bd"}
    for ph in live.get("phases", []):
        ax.axvspan(ph["t0_s"], ph["t1_s"], color=colors.get(ph["app"], "#999999"), alpha=0.12,
                   label=f"{ph['app']} running")
    ax.plot(rows["t_s"], rows["phone_dl_mbps"], ".-", color="#d62728", label="phone dl (real packets)")
    ax.plot(rows["t_s"], rows["background_dl_mbps"], ".-", color="#7f7f7f",
            label="background users dl (engine)")
    ax.set_xlabel("time since the live cell started (s)")
    ax.set_ylabel("throughput per second (Mbit/s)")
    ax.set_title(f"live: iperf3, ping and Chromium through the {live.get('policy', 'learned')} cell",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fname = "demo_live.png"
    fig.savefig(out / fname, dpi=110)
    plt.close(fig)
    return fname
