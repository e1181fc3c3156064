"""CLI: run --scenario (delivery log, telemetry, summary), shell, replay argument errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from neuralemu.cli import main
from neuralemu.datapath import netns, testbed

pytestmark = [pytest.mark.root]
PID = os.getpid() % 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args):
    env = dict(os.environ, NEURALEMU_QUIET="1")
    return subprocess.Popen([sys.executable, "-m", "neuralemu.cli"] + args, env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_run_scenario_writes_delivery_log_telemetry_and_summary(tmp_path):
    prefix = f"nt{PID}s"
    log, dci, summary = tmp_path / "d.csv", tmp_path / "dci.csv", tmp_path / "s.json"
    proc = _cli(["run", "--scenario", "traces/scenarios/fdd20_15khz.yaml", "--prefix", prefix,
                 "--duration-s", "6", "--log", str(log), "--telemetry", str(dci),
                 "--summary", str(summary)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(i["kind"] == "filter" for i in testbed.status(prefix)):
            time.sleep(0.3)
        tb = testbed.Testbed.load(prefix)
        assert tb is not None, proc.stderr.read() if proc.poll() is not None else "no testbed"
        with netns.entered(tb.ns_srv):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with netns.entered(tb.ns_ue(1)):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((tb.server_ipv4, 0))
        rx.settimeout(2.0)
        for _ in range(40):
            tx.sendto(b"r" * 972, (tb.server_ipv4, rx.getsockname()[1]))     # 1000-byte IP packets
            time.sleep(0.005)
        got = 0
        try:
            while got < 40:
                rx.recv(2000)
                got += 1
        except socket.timeout:
            pass
        rx.close()
        tx.close()
        assert got == 40
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        testbed.down(prefix)
    assert proc.returncode == 0, err
    import pandas as pd
    df = pd.read_csv(log)
    assert list(df.columns) == ["packet_id", "ue", "direction", "size_bytes", "t_arrival_us",
                                "t_delivered_us", "dropped"]
    ul = df[(df.ue == 17921) & (df.direction == "ul") & (df.size_bytes == 1000)]
    assert len(ul) == 40 and (ul.dropped == 0).all()
    assert (ul.t_delivered_us > ul.t_arrival_us).all()
    assert dci.exists() and dci.stat().st_size > 0
    s = json.loads(summary.read_text())
    assert all(v["balance_bytes"] == 0 for k, v in s.items() if "/" in k)
    assert testbed.status(prefix) == []


@pytest.mark.slow
def test_shell_runs_the_command_in_a_ue_namespace_and_returns_its_code(tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text("\n".join(str(i) for i in range(1000)) + "\n")     # 12 Mbps
    prefix = f"nt{PID}h"
    proc = _cli(["shell", "--mahimahi", str(trace), str(trace), "--prefix", prefix, "--quiet", "--",
                 "sh", "-c", "ip -o -4 addr show dev eth0; exit 3"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "198.18.0.2" in out
    assert testbed.status(prefix) == []


def test_replay_argument_errors_are_one_line(capsys):
    assert main(["replay", "--prefix", f"nt{PID}e"]) == 2
    assert "either --mahimahi" in capsys.readouterr().err
    assert main(["replay", "--nrscope", "x.csv", "--prefix", f"nt{PID}e"]) == 2
    assert "--rnti" in capsys.readouterr().err
    assert main(["replay", "--mahimahi", "/nonexistent/trace", "--prefix", f"nt{PID}e"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/nonexistent/trace" in err
    assert testbed.status(f"nt{PID}e") == []


def _root_tcp_server(n_bytes: int):
    """A TCP server in the root namespace on an address of a veth pair made for it (never an
    external address); it reads ``n_bytes`` and answers with as many. Returns (addr, port,
    thread, result, cleanup)."""
    import threading
    a, b = f"nt{PID}va", f"nt{PID}vb"
    addr = f"203.0.113.{1 + PID % 250}"      # TEST-NET-3 (RFC 5737): never routed, only here
    netns.run(["ip", "link", "del", a], check=False)
    netns.ip_batch([f"link add {a} type veth peer name {b}", f"addr add {addr}/32 dev {a}",
                    f"link set {a} up", f"link set {b} up"])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 0))
    srv.listen(1)
    srv.settimeout(40)
    result = {}

    def serve():
        try:
            conn, peer = srv.accept()
            conn.settimeout(20)
            got = 0
            while got < n_bytes:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
            conn.sendall(b"d" * n_bytes)
            conn.close()
            result.update(got=got, peer=peer[0])
        except OSError as exc:
            result["error"] = repr(exc)

    th = threading.Thread(target=serve, daemon=True)
    th.start()

    def cleanup():
        srv.close()
        netns.run(["ip", "link", "del", a], check=False)
    return addr, srv.getsockname()[1], th, result, cleanup


@pytest.mark.slow
def test_shell_reaches_the_root_namespace_through_the_cell_with_nat(tmp_path):
    from neuralemu.datapath import rootns
    trace = tmp_path / "t.trace"
    trace.write_text("\n".join(f"{i}\n{i}" for i in range(1, 1001)) + "\n")     # 24 Mbps
    prefix = f"nt{PID}o"
    n_bytes = 300_000
    addr, port, th, result, cleanup = _root_tcp_server(n_bytes)
    summary = tmp_path / "s.json"
    client = ("import os, socket, sys\n"
              f"s = socket.create_connection(('{addr}', {port}), timeout=20)\n"
              f"s.sendall(b'u' * {n_bytes}); s.shutdown(socket.SHUT_WR)\n"
              "got = 0\n"
              "while True:\n"
              "    c = s.recv(65536)\n"
              "    if not c: break\n"
              "    got += len(c)\n"
              "print('got', got, os.environ.get('NEURALEMU_OUTSIDE_GW'))\n"
              f"sys.exit(0 if got == {n_bytes} else 5)\n")
    try:
        proc = _cli(["shell", "--mahimahi", str(trace), str(trace), "--prefix", prefix, "--quiet",
                     "--summary", str(summary), "--", sys.executable, "-c", client])
        out, err = proc.communicate(timeout=90)
        th.join(timeout=10)
    finally:
        cleanup()
        testbed.down(prefix)
    assert proc.returncode == 0, (out, err)
    assert f"got {n_bytes}" in out
    gw = out.split()[-1]
    # the server saw the masqueraded address of the outside link, not the UE's own
    assert result.get("got") == n_bytes, result
    assert result["peer"] != "198.18.0.2" and result["peer"] != gw, result
    # both directions crossed the cell: the engine counted the bytes
    s = json.loads(summary.read_text())
    ue = next(k.split("/")[0] for k in s if k.endswith("/ul"))
    assert s[f"{ue}/ul"]["engine_bytes_out"] >= n_bytes
    assert s[f"{ue}/dl"]["engine_bytes_out"] >= n_bytes
    assert all(v["balance_bytes"] == 0 for k, v in s.items() if "/" in k)
    # nothing left: no root rules, no link, forwarding as it was
    assert rootns.list_rules(prefix) == []
    assert netns.run(["ip", "link", "show", f"{prefix}-out"], check=False).returncode != 0
    assert testbed.status(prefix) == []
