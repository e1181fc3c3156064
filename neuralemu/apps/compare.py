"""Real applications through the live middlebox, next to the offline run of the same workload.

For one scenario (its first user is the phone) and one app:

| app | live (real processes, testbed namespaces) | offline mirror (``build_emulation`` + the engine) | figure |
|---|---|---|---|
| ``iperf-tcp`` | iperf3 -R, CUBIC or BBR | ``TcpLikeSource`` (CUBIC) backlogged download | goodput (bit/s) |
| ``iperf-udp`` | iperf3 -u -R above capacity | ``Bulk`` UDP-like stream at the same rate | goodput (bit/s) |
| ``web`` | headless Chromium loads the seeded page | :class:`~neuralemu.apps.pageload.PageLoadSource` on the same objects | page load time (ms) |
| ``video`` | UDP frames, 30 fps | the same packets, open loop | one-way delay, frame delay (ms) |

Live runs reuse one :class:`~neuralemu.datapath.live.LiveEmulation` (one testbed, one engine)
for all repetitions; the testbed is always removed at the end, also on failure or Ctrl-C.
The offline mirror is deterministic (the scenario's seed), so it runs once.

The web comparison calibrates the browser's own delays: before every emulated load
the page is loaded over the plain path (one more UE namespace that is no emulated
user, so its packets cross the middlebox unheld and the network takes
microseconds), and the browser's Navigation/Resource Timing gives its
navigation-start-to-request, HTML-to-first-subresource, per-request and
last-byte-to-load delays under the host's current load
(:func:`browser_model_from_plain`). The offline mirror adds those to its network
model; nothing measured through the emulator feeds the offline side.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralemu.errors import InputError

APPS = ("iperf-tcp", "iperf-udp", "web", "video")
WARMUP_PORT = 8081
# SCHED_RR priority of the app processes (browser, web server, video sender/receiver): above
# every normal process, so a busy shared host does not stretch the app's own work, and below
# the live emulation's loop (LiveEmulation.realtime, 10), so the emulator always runs first.
APP_RT_PRIORITY = 5
WEB_PORT = 8080


@dataclass
class AppComparison:
    app: str
    scenario: str
    policy: str
    metric: str                         # what the figures are
    unit: str
    live: list[float] = field(default_factory=list)     # one per live run
    offline: float = float("nan")
    details: dict = field(default_factory=dict)

    @property
    def live_median(self) -> float:
        return float(statistics.median(self.live)) if self.live else float("nan")

    @property
    def ratio(self) -> float:
        """live median / offline."""
        return self.live_median / self.offline if self.offline else float("nan")

    def as_dict(self) -> dict:
        return {"app": self.app, "scenario": self.scenario, "policy": self.policy,
                "metric": self.metric, "unit": self.unit, "live": self.live,
                "live_median": self.live_median, "offline": self.offline, "ratio": self.ratio,
                "details": self.details}

    def lines(self) -> list[str]:
        """``key=value`` lines (the benchmark format)."""
        m = self.metric
        out = [f"app={self.app}", f"policy={self.policy}", f"runs={len(self.live)}",
               f"live_{m}_median={self.live_median:.4g}",
               f"live_{m}=" + ",".join(f"{v:.4g}" for v in self.live),
               f"offline_{m}={self.offline:.4g}", f"live_over_offline={self.ratio:.4f}"]
        for k, v in self.details.items():
            if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
                v = float(statistics.median(v))
                k = k if k.endswith("median") else k + "_median"
            if isinstance(v, (int, float, str)):
                out.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        return out


# ------------------------------------------------------------------------------ scenario
def load_app_scenario(scenario, *, policy: str | None = None, model: str | None = None):
    """The scenario (path or mapping), with the policy replaced when asked
    (``policy="learned", model="m.nemu"``)."""
    from neuralemu.scenario import load_scenario, parse_scenario
    sc = load_scenario(scenario) if isinstance(scenario, (str, Path)) else parse_scenario(scenario)
    if not sc.ues:
        raise InputError(str(scenario), "the scenario has no users; the app runs on the first",
                         field="ues")
    if policy or model:
        name = policy or sc.policy.name
        params = dict(sc.policy.params) if name == sc.policy.name else {}
        if name == "learned":
            import neuralemu.scheduler_model.policy  # noqa: F401  (registers `learned`)
            if model:
                params["model"] = str(model)
            if "model" not in params:
                raise InputError("--policy learned", "needs --model M.nemu (from `neuralemu train`)")
        sc = sc.model_copy(update={"policy": sc.policy.model_copy(update={"name": name,
                                                                          "params": params})})
    elif sc.policy.name == "learned":
        import neuralemu.scheduler_model.policy  # noqa: F401
    return sc


def _phone(sc) -> int:
    return sc.ues[0].ue_id


def _need_root() -> None:
    if os.geteuid() != 0:
        raise InputError("apps run", "needs root (network namespaces, tc, iptables and eBPF)")


class _Live:
    """Testbed + live emulation of a scenario; everything removed on exit.

    ``plain_ue``: build one more UE namespace that is no emulated user: its traffic
    crosses the middlebox unclassified (passed at once, no cell), the reference path
    for the app's own delays (``env.plain_ns``)."""

    def __init__(self, sc, prefix: str, *, plain_ue: bool = False, on_up=None) -> None:
        self.sc, self.prefix, self.plain_ue, self.on_up = sc, prefix, plain_ue, on_up
        self.live = None
        self.tb = None

    @property
    def plain_ns(self) -> str:
        return self.tb.ns_ue(len(self.sc.ues) + 1)

    def __enter__(self):
        from neuralemu.datapath import testbed
        from neuralemu.datapath.live import LiveEmulation
        _need_root()
        try:
            self.tb = testbed.up(len(self.sc.ues) + int(self.plain_ue), self.prefix)
            if self.on_up is not None:
                self.on_up(self.tb)
            self.live = LiveEmulation.from_scenario(self.sc, testbed=self.tb, own_testbed=True,
                                                    unclassified="pass")
            self.live.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        from neuralemu.datapath import testbed
        try:
            if self.live is not None:
                self.live.stop()
        finally:
            testbed.down(self.prefix)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until the phone's queues are empty (between runs)."""
        ue = _phone(self.sc)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.live.lock:
                st = self.live.engine.stats().get(ue, {})
            if all(st.get(d, {}).get("queue_bytes", 0) == 0 for d in ("dl", "ul")):
                return
            time.sleep(0.1)


# ------------------------------------------------------------------------------ iperf
def offline_tcp_goodput_bps(sc, seconds: float, cc: str = "cubic") -> float:
    """A backlogged TCP-like download (application bytes per second over ``seconds``)."""
    from neuralemu.scenario import build_emulation
    from neuralemu.workloads.tcp import TcpLikeSource, TcpParams
    emu = build_emulation(sc, load_traffic=False, keep_log=False)
    params = TcpParams(cc=cc if cc in ("cubic", "reno") else "cubic", forward_delay_ms=0.05,
                       ack_delay_ms=_ul_delay_ms(sc))
    src = TcpLikeSource(_phone(sc), "dl", params)
    eng = emu.engine
    eng.run(int(round(seconds * 1e6 / eng.slot_us)), sources=[src])
    wire = eng.stats()[_phone(sc)]["dl"]["bytes_out"]
    return wire * params.mss_bytes / (params.mss_bytes + params.header_bytes) * 8 / seconds


def _ul_delay_ms(sc) -> float:
    """The cell's uplink latency for a continuously active user: ``k2`` plus the BSR delay
    (the TCP-like model's fixed ACK delay)."""
    c = sc.cell
    return (c.harq.k2_slots + c.uplink.bsr_delay_slots + 1) * 1000 / 2 ** c.numerology / 1000


def compare_iperf(scenario, *, protocol: str = "tcp", cc: str = "cubic", runs: int = 5,
                  seconds: float = 10.0, prefix: str = "apps", policy: str | None = None,
                  model: str | None = None, udp_rate_bps: float | None = None,
                  log=None) -> AppComparison:
    from neuralemu.apps.iperf import IPERF_UDP_HEADER_BYTES, available_ccs, run_iperf
    sc = load_app_scenario(scenario, policy=policy, model=model)
    if protocol == "tcp" and cc not in available_ccs():
        raise InputError("--cc", f"{cc!r} is not available in this kernel "
                         f"(tcp_available_congestion_control: {' '.join(available_ccs())})")
    res = AppComparison(app=f"iperf-{protocol}", scenario=str(scenario), policy=sc.policy.name,
                        metric="goodput_mbps", unit="Mbit/s")
    if protocol == "tcp":
        res.offline = offline_tcp_goodput_bps(sc, seconds, cc) / 1e6
        res.details["offline_model"] = "TcpLikeSource cubic" if cc != "reno" else "TcpLikeSource reno"
        res.details["cc"] = cc
    else:
        rate = udp_rate_bps or 1.5 * offline_capacity_bps(sc)
        res.offline = offline_udp_goodput_bps(sc, seconds, rate) / 1e6
        res.details["udp_rate_mbps"] = rate / 1e6
    with _Live(sc, prefix) as env:
        tb = env.tb
        for i in range(runs):
            kw = dict(seconds=seconds, protocol=protocol, port=5201 + i)
            if protocol == "tcp":
                kw["cc"] = cc
            else:
                kw.update(udp_rate_bps=rate, udp_payload_bytes=1400)
            r = run_iperf(tb.ns_srv, tb.ns_ue(1), tb.server_ipv4, **kw)
            res.live.append(r.goodput_bps / 1e6)
            if r.retransmits is not None:
                res.details.setdefault("retransmits", []).append(r.retransmits)
            if log:
                log(f"run {i + 1}/{runs}: {r.goodput_bps / 1e6:.3f} Mbit/s")
            env.drain()
    if protocol == "udp":   # iperf3 counts UDP payload; the offline figure is payload too
        res.details["udp_payload_bytes"] = 1400
        res.details["ip_header_bytes"] = IPERF_UDP_HEADER_BYTES
    return res


def offline_capacity_bps(sc, seconds: float = 2.0) -> float:
    """What the phone alone gets with a full buffer (IP bytes per second)."""
    from neuralemu.scenario import build_emulation
    from neuralemu.workloads import Bulk, generate
    from neuralemu.scenario import _packets_frame
    emu = build_emulation(sc, load_traffic=False, keep_log=False,
                          workload=_packets_frame(generate(Bulk(rate_mbps=200), [_phone(sc)],
                                                           seconds, sc.seed)))
    emu.engine.run(int(round(seconds * 1e6 / emu.engine.slot_us)))
    return emu.engine.stats()[_phone(sc)]["dl"]["bytes_out"] * 8 / seconds


def offline_udp_goodput_bps(sc, seconds: float, rate_bps: float, payload_bytes: int = 1400) -> float:
    """UDP payload rate of an iperf3-like CBR stream at ``rate_bps`` (payload bits/s)."""
    from neuralemu.scenario import _packets_frame, build_emulation
    from neuralemu.workloads import Cbr, generate
    ip_bytes = payload_bytes + 28
    wl = Cbr(rate_mbps=rate_bps * ip_bytes / payload_bytes / 1e6, packet_bytes=ip_bytes)
    emu = build_emulation(sc, load_traffic=False, keep_log=False,
                          workload=_packets_frame(generate(wl, [_phone(sc)], seconds, sc.seed)))
    emu.engine.run(int(round(seconds * 1e6 / emu.engine.slot_us)))
    return emu.engine.stats()[_phone(sc)]["dl"]["bytes_out"] * payload_bytes / ip_bytes * 8 / seconds


# ------------------------------------------------------------------------------ web
def offline_page_load(sc, page, model=None, t0_us: int = 1000, max_s: float = 120.0):
    """Run the :class:`PageLoadSource` mirror; returns the finished source."""
    from neuralemu.apps.pageload import PageLoadSource
    from neuralemu.scenario import build_emulation
    emu = build_emulation(sc, load_traffic=False, keep_log=False)
    eng = emu.engine
    src = PageLoadSource(page, _phone(sc), model=model, t0_us=t0_us)
    limit = t0_us + max_s * 1e6
    while src.done_us is None and eng.t_us < limit:
        eng.run(200, sources=[src])
    if src.done_us is None:
        raise RuntimeError(f"the offline page load did not finish in {max_s} s")
    return src


def browser_model_from_plain(loads, n_objects: int, connections: int = 6) -> "BrowserModel":  # noqa: F821
    """Browser-side delays from page loads over the plain (unemulated) path, where the network
    takes microseconds: medians of navigation start -> HTML request (``nav_start_us``), HTML
    last byte -> first subresource request (``parse_us``), last byte of any object ->
    loadEventEnd (``tail_us``), and the time per request round on each connection
    (first subresource request -> last byte, over ceil((n_objects - 1) / connections)
    rounds: ``request_gap_us``)."""
    from neuralemu.apps.pageload import BrowserModel
    med = statistics.median
    rounds = max(1, -(-(n_objects - 1) // connections))
    nav = med(x.request_start_ms for x in loads)
    parse = med(max(0.0, x.first_subresource_request_ms - x.response_end_ms) for x in loads)
    tail = med(max(0.0, x.plt_ms - x.last_response_end_ms) for x in loads)
    gap = med(max(0.0, x.last_response_end_ms - x.first_subresource_request_ms) / rounds
              for x in loads)
    return BrowserModel(connections=connections, nav_start_us=int(nav * 1000),
                        parse_us=int(parse * 1000), tail_us=int(tail * 1000),
                        request_gap_us=int(gap * 1000))


def _write_warmup(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\">"
                                     "</head><body>warm-up</body></html>\n")


def compare_web(scenario, *, page_seed: int = 5, runs: int = 5, prefix: str = "apps",
                policy: str | None = None, model: str | None = None, nice: int = 0,
                rt_priority: int = APP_RT_PRIORITY, log=None) -> AppComparison:
    """``runs`` page loads through the emulated cell, each right after a load of the same page
    over the plain path (the calibration of the browser's own delays, taken under the same
    host load), and per run the offline mirror with that run's browser delays."""
    from neuralemu.apps.browser import Chromium
    from neuralemu.apps.webpage import make_page, write_page
    from neuralemu.apps.webserver import WebServer
    sc = load_app_scenario(scenario, policy=policy, model=model)
    page = make_page(page_seed)
    res = AppComparison(app="web", scenario=str(scenario), policy=sc.policy.name,
                        metric="plt_ms", unit="ms")
    res.details.update({f"page_{k}": v for k, v in page.summary().items()})
    plain = []
    with tempfile.TemporaryDirectory(prefix="neuralemu-web-") as tmp:
        root, warm = Path(tmp) / "page", Path(tmp) / "warm"
        write_page(page, root)
        _write_warmup(warm)
        servers = []

        def serve(tb) -> None:
            servers.append(WebServer(tb.ns_srv, root, tb.server_ipv4, WEB_PORT, nice=nice,
                                     rt_priority=rt_priority).start())
            servers.append(WebServer(tb.ns_srv, warm, tb.server_ipv4, WARMUP_PORT, nice=nice,
                                     rt_priority=rt_priority).start())

        def load_once(tb, ns):
            with Chromium(ns, nice=nice, rt_priority=rt_priority) as browser:
                r = browser.load(f"http://{tb.server_ipv4}:{WEB_PORT}/index.html",
                                 warmup_url=f"http://{tb.server_ipv4}:{WARMUP_PORT}/index.html")
            if r.n_resources != len(page.objects) - 1:
                raise RuntimeError(f"the browser fetched {r.n_resources} objects, the page "
                                   f"has {len(page.objects) - 1}")
            return r

        try:
            with _Live(sc, prefix, plain_ue=True, on_up=serve) as env:
                for i in range(runs):
                    plain.append(load_once(env.tb, env.plain_ns))
                    r = load_once(env.tb, env.tb.ns_ue(1))
                    res.live.append(r.plt_ms)
                    res.details.setdefault("live_loads", []).append(r.as_dict())
                    if log:
                        log(f"run {i + 1}/{runs}: {r.plt_ms:.0f} ms (plain path {plain[-1].plt_ms:.0f} ms)")
                    env.drain()
        finally:
            for s in servers:
                s.stop()
    # the offline mirror once per run, with the browser delays of that run's plain load
    # (taken just before it, under the same host load); offline figure: their median
    net = offline_page_load(sc, page, None)
    offline, models = [], []
    for x in plain:
        bm = browser_model_from_plain([x], len(page.objects))
        models.append(bm)
        offline.append(offline_page_load(sc, page, bm).plt_us / 1000)
    res.offline = float(statistics.median(offline))
    res.details.update({
        "offline_plt_ms_per_run": offline,
        "plain_plt_ms": [x.plt_ms for x in plain],
        "browser_nav_start_ms": [m.nav_start_us / 1000 for m in models],
        "browser_parse_ms": [m.parse_us / 1000 for m in models],
        "browser_tail_ms": [m.tail_us / 1000 for m in models],
        "browser_request_gap_ms": [m.request_gap_us / 1000 for m in models],
        "offline_network_only_plt_ms": net.plt_us / 1000,
        "offline_dl_bytes": net.bytes["dl"], "offline_ul_bytes": net.bytes["ul"],
        "offline_retransmissions": net.retransmissions})
    return res


# ------------------------------------------------------------------------------ video
def compare_video(scenario, *, bitrate_mbps: float = 2.0, seconds: float = 10.0, runs: int = 1,
                  seed: int = 1, prefix: str = "apps", policy: str | None = None,
                  model: str | None = None, log=None) -> AppComparison:
    from neuralemu.apps.video import frame_delays_ms, run_video, video_schedule
    from neuralemu.scenario import build_emulation
    import pandas as pd
    sc = load_app_scenario(scenario, policy=policy, model=model)
    sched = video_schedule(bitrate_mbps=bitrate_mbps, duration_s=seconds, seed=seed)
    res = AppComparison(app="video", scenario=str(scenario), policy=sc.policy.name,
                        metric="owd_ms", unit="ms (median per run)")
    # offline: the same packets, open loop
    ue = _phone(sc)
    wl = pd.DataFrame({"t_us": sched["t_us"], "ue": ue, "direction": "dl",
                       "size_bytes": sched["size_bytes"]})
    emu = build_emulation(sc, workload=wl, load_traffic=False)
    emu.engine.run(int(round((seconds + 2) * 1e6 / emu.engine.slot_us)))
    log_df = emu.engine.delivery_log().sort_values("packet_id")
    ok = log_df["t_delivered_us"].notna().to_numpy()
    off_owd = (log_df["t_delivered_us"] - log_df["t_arrival_us"]).to_numpy(dtype=float)[ok] / 1e3
    res.offline = float(np.median(off_owd))
    off_frames = frame_delays_ms(sched["frame"].to_numpy()[ok], sched["t_us"].to_numpy()[ok],
                                 log_df["t_delivered_us"].to_numpy(dtype=float)[ok])
    res.details.update({"packets": len(sched), "frames": int(sched["frame"].nunique()),
                        "bitrate_mbps": bitrate_mbps,
                        "offline_owd_ms_p95": float(np.percentile(off_owd, 95)),
                        "offline_frame_delay_ms_median": float(np.median(off_frames)),
                        "offline_loss": float(1 - ok.mean())})
    with _Live(sc, prefix) as env, tempfile.TemporaryDirectory(prefix="neuralemu-video-") as tmp:
        tb = env.tb
        for i in range(runs):
            rx = run_video(tb.ns_srv, tb.ns_ue(1), tb.ue_ipv4(1), sched, tmp, port=5600 + i,
                           rt_priority=APP_RT_PRIORITY)
            owd = (rx["t_recv_ns"] - rx["t_send_ns"]).to_numpy() / 1e6
            sent_us = sched.set_index(np.arange(len(sched)))["t_us"]
            t_first = rx["t_send_ns"].to_numpy() / 1e3
            fr = frame_delays_ms(rx["frame"].to_numpy(), t_first, rx["t_recv_ns"].to_numpy() / 1e3)
            res.live.append(float(np.median(owd)))
            res.details.setdefault("live_owd_ms_p95", []).append(float(np.percentile(owd, 95)))
            res.details.setdefault("live_frame_delay_ms_median", []).append(float(np.median(fr)))
            res.details.setdefault("live_loss", []).append(1 - len(rx) / len(sent_us))
            if log:
                log(f"run {i + 1}/{runs}: one-way delay median {np.median(owd):.2f} ms, "
                    f"p95 {np.percentile(owd, 95):.2f} ms, {len(rx)}/{len(sched)} packets")
            env.drain()
    return res
