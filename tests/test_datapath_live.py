"""Live acceptance: real iperf3/ICMP traffic through real namespaces and the slot engine.

Every test builds its own testbed (unique prefix) through LiveEmulation, which
removes it on stop, also when the test fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import numpy as np
import pytest

from neuralemu.datapath import netns, testbed

pytestmark = [pytest.mark.root, pytest.mark.slow]

PID = os.getpid() % 1000
RATE_BPS = 50e6
UDP_PAYLOAD = 1400                 # + 28 bytes of UDP/IPv4 headers on the wire
IP_PER_PAYLOAD = (UDP_PAYLOAD + 28) / UDP_PAYLOAD


def constant_trace(path, rate_bps: float, seconds: int = 10) -> str:
    pps = rate_bps / 8 / 1500
    ms = np.floor(np.arange(int(pps * seconds)) * 1000 / pps).astype(int)
    path.write_text("\n".join(map(str, ms)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def const_trace(tmp_path_factory):
    return constant_trace(tmp_path_factory.mktemp("trace") / "c50.trace", RATE_BPS)


def iperf(tb, ue: int, args: list[str], seconds: float, port: int = 5201) -> dict:
    srv = subprocess.Popen(["ip", "netns", "exec", tb.ns_srv, "iperf3", "-s", "-1", "-p", str(port),
                            "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.3)
        out = subprocess.run(["ip", "netns", "exec", tb.ns_ue(ue), "iperf3", "-c", tb.server_ipv4,
                              "-p", str(port), "-t", str(seconds), "--json"] + args,
                             capture_output=True, text=True, timeout=seconds + 30)
        srv.wait(timeout=10)
        return json.loads(out.stdout)
    finally:
        if srv.poll() is None:
            srv.kill()


def start_iperf_pair(tb, ue: int, args: list[str], seconds: float, port: int):
    srv = subprocess.Popen(["ip", "netns", "exec", tb.ns_srv, "iperf3", "-s", "-1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    cli = subprocess.Popen(["ip", "netns", "exec", tb.ns_ue(ue), "iperf3", "-c", tb.server_ipv4,
                            "-p", str(port), "-t", str(seconds)] + args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return srv, cli


def out_bytes(live, ue, d="dl") -> int:
    with live.lock:
        return live.counters[(ue, d)].out_bytes


def check_conservation(final: dict) -> None:
    for key, v in final.items():
        if "/" not in key:
            continue
        assert v["balance_bytes"] == 0, (key, v)
        assert v["engine_bytes_in"] == v["in_bytes"], (key, v)
        assert v["kernel_queue_dropped"] == 0 and v["kernel_user_dropped"] == 0, (key, v)


# -- replay of a constant-rate trace --------------------------------------------------------
def test_constant_rate_replay_udp_tcp_ping(const_trace):
    from neuralemu.datapath.live import LiveEmulation
    from neuralemu.datapath.probe import ping
    from neuralemu.replay import replay_engine
    base_delay_ms = 5.0
    eng, ues, delay_us = replay_engine(mahimahi_down=const_trace, base_delay_ms=base_delay_ms)
    slot_ms = eng.slot_us / 1000
    prefix = f"nt{PID}r"
    tb = testbed.up(1, prefix)
    # the plain path (veth + routing, no emulation) for reference
    plain_ms = np.median(ping(tb.ns_ue(1), tb.server_ipv4, count=20, interval_s=0.01)) / 1000
    live = LiveEmulation(eng, ue_ids=ues, testbed=tb, base_delay_us=delay_us, own_testbed=True)
    with live:
        # ping at zero load: the emulator adds the base delay both ways + at most 2 slots.
        # The reply reaches the middlebox just after a slot boundary (the request was released
        # on one), so it waits almost a whole slot: the median is ~1.5-1.8 slots; allow 0.5 ms
        # for wake-up lateness on a loaded shared host.
        rtts_ms = np.array(ping(tb.ns_ue(1), tb.server_ipv4, count=20, interval_s=0.02)) / 1000
        assert len(rtts_ms) >= 18
        added_ms = np.median(rtts_ms) - plain_ms
        assert added_ms <= 2 * base_delay_ms + 2 * slot_ms + 0.5, (rtts_ms, plain_ms)
        assert rtts_ms.min() >= 2 * base_delay_ms
        # UDP downlink above capacity: goodput within 3% of C
        j = iperf(tb, 1, ["-u", "-b", "65M", "-l", str(UDP_PAYLOAD), "-R"], 4)
        rates = [iv["sum"]["bits_per_second"] * IP_PER_PAYLOAD for iv in j["intervals"][1:]]
        assert abs(np.mean(rates) / RATE_BPS - 1) <= 0.03, rates
        # UDP uplink the same
        j = iperf(tb, 1, ["-u", "-b", "65M", "-l", str(UDP_PAYLOAD)], 3, port=5202)
        up = j["end"]["sum_received"]["bits_per_second"] if "sum_received" in j["end"] else None
        rates = [iv["sum"]["bits_per_second"] for iv in j["intervals"]]
        got_ul = live.counters[(ues[0], "ul")].out_bytes
        assert got_ul > 0.5 * RATE_BPS / 8 * 3, (got_ul, up, rates)
        # TCP CUBIC downlink: >= 90% of C
        j = iperf(tb, 1, ["-C", "cubic", "-R"], 5, port=5203)
        tcp = j["end"]["sum_received"]["bits_per_second"]
        assert tcp >= 0.90 * RATE_BPS, tcp
    check_conservation(live.final)
    assert testbed.status(f"nt{PID}r") == []


@pytest.mark.parametrize("name,seconds", [("ATT-LTE-driving-2016", 30), ("TMobile-LTE-short", 6),
                                          ("Verizon-LTE-short", 6)])
def test_mahimahi_traces_deliver_their_capacity(shared_data, name, seconds):
    from neuralemu.datapath.live import LiveEmulation
    from neuralemu.replay import mahimahi_capacity, replay_engine
    down = shared_data / "mahimahi" / f"{name}.down"
    eng, ues, _ = replay_engine(mahimahi_down=str(down), mahimahi_up=str(down).replace(".down", ".up"))
    cap = mahimahi_capacity(down, eng.slot_us)
    mean_bps = cap.sum() * 8 / (len(cap) * eng.slot_us / 1e6)
    live = LiveEmulation(eng, ue_ids=ues, prefix=f"nt{PID}m")
    with live:
        tb = live.testbed
        srv, cli = start_iperf_pair(tb, 1, ["-u", "-b", f"{max(30e6, 4 * mean_bps):.0f}", "-R",
                                            "-l", str(UDP_PAYLOAD)], seconds + 3, 5210)
        try:
            time.sleep(2.0)                        # fill the queue: saturated from here on
            with live.lock:
                s0, b0 = int(eng.slot), live.counters[(ues[0], "dl")].out_bytes
            time.sleep(seconds)
            with live.lock:
                s1, b1 = int(eng.slot), live.counters[(ues[0], "dl")].out_bytes
                queue_left = eng.stats()[ues[0]]["dl"]["queue_bytes"]
        finally:
            cli.wait(timeout=seconds + 30)
            srv.kill()
    idx = np.arange(s0, s1) % len(cap)
    trace_bytes = int(cap[idx].sum())
    assert queue_left > 0                          # still backlogged at the end of the window
    assert abs((b1 - b0) / trace_bytes - 1) <= 0.05, (b1 - b0, trace_bytes)
    check_conservation(live.final)


# -- analytical policies, live vs offline -------------------------------------------------------
def two_ue_engine(policy: str, sinr2_db: float):
    from neuralemu.cell import Engine, make_policy
    cell = dict(numerology=1, bandwidth_mhz=10, duplex="FDD")
    ues = [dict(ue_id=11, channel={"model": "fixed", "sinr_db": 20.0}),
           dict(ue_id=12, channel={"model": "fixed", "sinr_db": sinr2_db})]
    return Engine(cell, ues, make_policy(policy), seed=3)


def offline_shares(policy: str, sinr2_db: float, seconds: float, rate_bps: float) -> dict:
    """The same scenario offline: both users saturated with 1428-byte packets at rate_bps."""
    eng = two_ue_engine(policy, sinr2_db)
    n_slots = int(seconds * 1e6 / eng.slot_us)
    gap_us = 1428 * 8 / rate_bps * 1e6
    t = np.arange(0, n_slots * eng.slot_us, gap_us).astype(np.int64)
    t_all = np.concatenate([t, t])
    ue = np.concatenate([np.full(t.size, 11), np.full(t.size, 12)])
    order = np.argsort(t_all, kind="stable")
    eng.load_arrivals(t_all[order], ue[order], np.array(["dl"] * t_all.size), np.full(t_all.size, 1428))
    eng.run(n_slots)
    st = eng.stats()
    return {u: st[u]["dl"]["bytes_out"] * 8 / seconds for u in (11, 12)}


def live_rates(policy: str, sinr2_db: float, seconds: float, rate_bps: float, prefix: str):
    from neuralemu.datapath.live import LiveEmulation
    eng = two_ue_engine(policy, sinr2_db)
    live = LiveEmulation(eng, ue_ids=[11, 12], prefix=prefix)
    with live:
        tb = live.testbed
        procs = [start_iperf_pair(tb, i, ["-u", "-b", f"{rate_bps:.0f}", "-R", "-l", str(UDP_PAYLOAD)],
                                  seconds + 3, 5220 + i) for i in (1, 2)]
        try:
            time.sleep(1.5)
            b0 = {u: out_bytes(live, u) for u in (11, 12)}
            time.sleep(seconds)
            b1 = {u: out_bytes(live, u) for u in (11, 12)}
        finally:
            for srv, cli in procs:
                cli.wait(timeout=seconds + 30)
                srv.kill()
    check_conservation(live.final)
    return {u: (b1[u] - b0[u]) * 8 / seconds for u in (11, 12)}


def test_pf_equal_channels_share_equally_and_match_offline():
    offered = 40e6          # per UE; the 10 MHz cell carries less than 2 x 40 Mbps
    live = live_rates("pf", 20.0, 4.0, offered, f"nt{PID}p")
    total = sum(live.values())
    for u in (11, 12):
        assert abs(live[u] / total - 0.5) <= 0.05, live
    off = offline_shares("pf", 20.0, 4.0, offered)
    assert abs(total / sum(off.values()) - 1) <= 0.10, (live, off)


def test_maxcqi_starves_the_weak_user_and_matches_offline():
    offered = 70e6          # more than the strong user alone can get: both stay backlogged
    live = live_rates("maxcqi", 5.0, 4.0, offered, f"nt{PID}x")
    total = sum(live.values())
    assert live[12] / total <= 0.05, live
    off = offline_shares("maxcqi", 5.0, 4.0, offered)
    assert abs(live[11] / off[11] - 1) <= 0.10, (live, off)


def test_unclassified_traffic_passes_and_is_counted(const_trace):
    """A host that is no emulated UE (testbed UE 2, engine has one user) is never dropped silently."""
    from neuralemu.datapath.live import LiveEmulation
    from neuralemu.replay import replay_engine
    prefix = f"nt{PID}u"
    tb = testbed.up(2, prefix)
    try:
        eng, ues, _ = replay_engine(mahimahi_down=const_trace)
        live = LiveEmulation(eng, ue_ids=ues, testbed=tb)
        with live:
            with netns.entered(tb.ns_srv):
                rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with netns.entered(tb.ns_ue(2)):
                tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind((tb.server_ipv4, 0))
            rx.settimeout(1.0)
            for _ in range(50):
                tx.sendto(b"q" * 300, (tb.server_ipv4, rx.getsockname()[1]))
            got = 0
            try:
                while got < 50:
                    rx.recv(1000)
                    got += 1
            except socket.timeout:
                pass
            rx.close()
            tx.close()
            assert got == 50
            other = live.classifier.other()
            assert other["unclassified_pass"][1] >= 50
            assert other["unclassified_drop"][1] == 0
        check_conservation(live.final)
        assert live.final["unclassified"]["unclassified_pass"]["packets"] >= 50
        # the live run removed its rules and filters but left the testbed it was given
        kinds = {i["kind"] for i in testbed.status(prefix)}
        assert kinds == {"netns"}
    finally:
        testbed.down(prefix)


# -- life cycle: SIGTERM, SIGKILL + restart ---------------------------------------------------------
def _cli(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, NEURALEMU_QUIET="1")
    return subprocess.Popen([os.sys.executable, "-m", "neuralemu.cli"] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(kinds: set, prefix: str, timeout_s: float = 30.0) -> set:
    deadline = time.monotonic() + timeout_s
    seen: set = set()
    while time.monotonic() < deadline:
        seen = {i["kind"] for i in testbed.status(prefix)}
        if kinds <= seen:
            return seen
        time.sleep(0.3)
    return seen


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_clean_kernel_after_sigterm_and_after_sigkill_and_restart(const_trace, sig):
    import signal
    prefix = f"nt{PID}{sig[0].lower()}"
    proc = _cli(["replay", "--mahimahi", const_trace, "--prefix", prefix, "--duration-s", "60", "--quiet"])
    try:
        seen = _wait_for({"netns", "filter", "iptables", "ip6tables", "bpf_prog"}, prefix)
        assert {"netns", "filter", "iptables", "bpf_prog"} <= seen, (seen, proc.poll())
        proc.send_signal(getattr(signal, f"SIG{sig}"))
        proc.wait(timeout=30)
        if sig == "TERM":
            assert proc.returncode == 130
            assert testbed.status(prefix) == []
        else:
            left = {i["kind"] for i in testbed.status(prefix)}
            assert "netns" in left and "iptables" in left        # what a SIGKILL leaves behind
            again = _cli(["replay", "--mahimahi", const_trace, "--prefix", prefix, "--duration-s", "1",
                          "--quiet"])
            _, err = again.communicate(timeout=60)
            assert again.returncode == 0, err
            assert testbed.status(prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        testbed.down(prefix)


def test_scenario_background_users_run_live_next_to_real_traffic():
    """A scenario's synthetic background users load the engine live as offline: their bytes
    are served (and counted by the engine) while a real UE's traffic crosses the cell."""
    from neuralemu.datapath.live import LiveEmulation
    from neuralemu.datapath.probe import ping
    scenario = {
        "name": "live-background", "duration_s": 1.0, "seed": 5,
        "cell": {"numerology": 1, "bandwidth_mhz": 20, "duplex": "FDD", "max_ues_per_slot": 4},
        "policy": "pf",
        "ues": [{"ue_id": 21, "channel": {"model": "fixed", "sinr_db": 25.0}}],
        "background": {"count": 3, "rate_mbps": 4.0, "sinr_db": 20.0, "directions": ["dl"]},
    }
    live = LiveEmulation.from_scenario(scenario, prefix=f"nt{PID}b")
    assert len(live.emulation.background_ues) == 3
    with live:
        st0 = {u: live.engine.stats()[u]["dl"]["bytes_out"] for u in live.emulation.background_ues}
        rtts = ping(live.testbed.ns_ue(1), live.testbed.server_ipv4, count=10, interval_s=0.05)
        time.sleep(2.5)     # more than the 1 s background period: it repeats
        with live.lock:
            st = live.engine.stats()
        secs = (int(live.engine.t_us) - 0) / 1e6
    assert len(rtts) >= 9
    for u in live.emulation.background_ues:
        served_mbps = st[u]["dl"]["bytes_out"] * 8 / secs / 1e6
        assert 3.0 <= served_mbps <= 4.6, (u, served_mbps, st0)
    check_conservation(live.final)
    assert live.final["21/ul"]["out_bytes"] > 0 and live.final["21/dl"]["out_bytes"] > 0
