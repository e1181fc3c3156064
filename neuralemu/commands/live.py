"""Live middlebox commands: ``testbed up|down|status``, ``run``, ``replay``, ``shell``.

    neuralemu testbed up --ues N [--prefix P] [--mtu M] [--ue-if IF --core-if IF]
    neuralemu testbed down [--prefix P | --all]
    neuralemu testbed status [--prefix P]
    neuralemu run --scenario S.yaml [--duration-s T] [--log deliveries.csv] [--telemetry dci.csv]
    neuralemu replay --mahimahi DOWN [--mahimahi-up UP] [--duration-s T] [-- CMD ...]
    neuralemu replay --nrscope F.csv --rnti R [...]
    neuralemu shell [--scenario S | --mahimahi DOWN UP] -- CMD ...

See docs/datapath.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from neuralemu.errors import InputError


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InputError(what, "needs root (network namespaces, tc, iptables and eBPF)")


def _prefix(text: str) -> str:
    from neuralemu.datapath.testbed import PREFIX_RE
    if not PREFIX_RE.match(text):
        raise argparse.ArgumentTypeError("1-8 characters: a lowercase letter, then lowercase letters or digits")
    return text


# -- testbed -------------------------------------------------------------------
def _testbed_up(args) -> int:
    from neuralemu.datapath import testbed
    _need_root("testbed up")
    if (args.ue_if is None) != (args.core_if is None):
        raise InputError("testbed up", "--ue-if and --core-if go together")
    tb = testbed.up(args.ues, args.prefix, mtu=args.mtu, ue_if=args.ue_if, core_if=args.core_if)
    if tb.real_nics:
        print(f"testbed {tb.prefix}: middlebox {tb.ns_mb} bridges {tb.ue_if} (UE side) and "
              f"{tb.core_if} (core side)")
    else:
        print(f"testbed {tb.prefix}: {tb.n_ues} UEs, middlebox {tb.ns_mb}, server {tb.ns_srv} "
              f"({tb.server_ipv4}, {tb.server_ipv6})")
        for i in range(1, tb.n_ues + 1):
            print(f"  {tb.ns_ue(i)}: {tb.ue_ipv4(i)} {tb.ue_ipv6(i)}")
    return 0


def _testbed_down(args) -> int:
    from neuralemu.datapath import testbed
    _need_root("testbed down")
    removed = testbed.down_all() if args.all else testbed.down(args.prefix)
    print(f"removed {len(removed)} namespaces" + (f": {' '.join(removed)}" if removed else ""))
    left = testbed.status(None if args.all else args.prefix)
    for item in left:
        print(f"  still there: {item['kind']} {item['name']}", file=sys.stderr)
    return 1 if left else 0


def _testbed_status(args) -> int:
    from neuralemu.datapath import testbed
    _need_root("testbed status")
    items = testbed.status(args.prefix)
    if args.json:
        print(json.dumps(items, indent=1))
        return 0
    if not items:
        print("clean: no NeuralEmu namespaces, filters, programs or rules")
        return 0
    for item in items:
        print(f"{item['kind']:9} {item['prefix']:9} {item['name']}")
    return 0


# -- run / replay / shell --------------------------------------------------------
def _print_second(snap, t0: float, out=sys.stdout) -> None:
    parts = []
    prev = getattr(_print_second, "_prev", {})
    for (ue, d), c in sorted(snap.queues.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        last = prev.get((ue, d), {"out_bytes": 0, "in_bytes": 0})
        mbps = (c["out_bytes"] - last["out_bytes"]) * 8 / 1e6
        if c["in_bytes"] or c["out_bytes"]:
            es = snap.engine_stats.get(ue, {}).get(d, {})
            parts.append(f"ue {ue} {d} {mbps:7.2f} Mbps q {int(es.get('queue_bytes', 0)):>8} B "
                         f"drop {c['drop_queue_packets'] + c['drop_harq_packets']}")
    _print_second._prev = snap.queues
    late = f"late p99 {snap.lateness_slots_p99:.2f} slots"
    print(f"[{snap.t_wall - t0:6.1f} s] slot {snap.slot} {late} | " + (" | ".join(parts) or "idle"),
          file=out, flush=True)


def _run_live(live, args, cmd: list[str] | None = None, cmd_ns: str | None = None,
              outside: bool = False) -> int:
    """Start, print a line per second, run ``cmd`` (if any) in ``cmd_ns``, stop, write outputs.
    ``outside``: link the testbed to the root namespace with NAT (``shell``), removed on exit."""
    import subprocess
    t0 = time.time()
    if not getattr(args, "quiet", False):
        live.on_second = lambda snap: _print_second(snap, t0, sys.stderr)
    rc = 0
    link = None
    try:
        live.start()
        tb = live.testbed
        extra_env = {}
        if outside and not tb.real_nics:
            from neuralemu.datapath import rootns
            link = rootns.link_outside(tb)
            extra_env["NEURALEMU_OUTSIDE_GW"] = link.root_ip
        print(f"live: testbed {tb.prefix}; UE 1 in {tb.ns_ue(1) if not tb.real_nics else '-'}; "
              f"server {tb.server_ipv4}" + (f"; outside via {link.root_if} (NAT)" if link else ""),
              file=sys.stderr, flush=True)
        if cmd:
            env = dict(os.environ, NEURALEMU_SERVER=tb.server_ipv4, NEURALEMU_SERVER6=tb.server_ipv6,
                       **extra_env)
            proc = subprocess.Popen(["ip", "netns", "exec", cmd_ns] + cmd, env=env)
            try:
                rc = proc.wait(timeout=args.duration_s) if args.duration_s else proc.wait()
            except subprocess.TimeoutExpired:
                proc.terminate()
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
        elif args.duration_s:
            live.wait(args.duration_s)
        else:
            while True:
                live.wait(3600)
    finally:
        try:
            final = live.stop()
        finally:
            if link is not None:
                from neuralemu.datapath import rootns
                rootns.unlink_outside(link.prefix)
        if getattr(args, "log", None):
            live.write_delivery_log(args.log)
            print(f"wrote {args.log}", file=sys.stderr)
        if getattr(args, "telemetry", None) and hasattr(live.engine, "dci_log"):
            try:
                live.engine.dci_log().to_csv(args.telemetry, index=False)
                print(f"wrote {args.telemetry}", file=sys.stderr)
            except Exception as exc:   # noqa: BLE001 - telemetry is best effort on exit
                print(f"telemetry not written: {exc}", file=sys.stderr)
        if final and getattr(args, "summary", None):
            with open(args.summary, "w") as f:
                json.dump(final, f, indent=1)
    return rc


def _run(args) -> int:
    from neuralemu.datapath.live import LiveEmulation
    _need_root("run")
    live = LiveEmulation.from_scenario(args.scenario, prefix=args.prefix,
                                       unclassified=args.unclassified,
                                       record_deliveries=bool(args.log), gso=args.gso,
                                       duration_s=args.duration_s)
    return _run_live(live, args)


def _replay(args) -> int:
    from neuralemu.datapath.live import LiveEmulation
    from neuralemu.replay import replay_engine
    _need_root("replay")
    if bool(args.mahimahi) == bool(args.nrscope):
        raise InputError("replay", "give either --mahimahi DOWN [--mahimahi-up UP] or --nrscope F.csv --rnti R")
    if args.nrscope and args.rnti is None:
        raise InputError("replay", "--nrscope needs --rnti")
    engine, ue_ids, base_delay_us = replay_engine(
        mahimahi_down=args.mahimahi, mahimahi_up=args.mahimahi_up, nrscope=args.nrscope,
        rnti=args.rnti, base_delay_ms=args.delay_ms, record_dci=bool(args.telemetry))
    live = LiveEmulation(engine, ue_ids=ue_ids, prefix=args.prefix, unclassified=args.unclassified,
                         base_delay_us=base_delay_us, record_deliveries=bool(args.log), gso=args.gso)
    cmd = [c for c in (args.cmd or []) if c != "--"]
    return _run_live(live, args, cmd or None, f"{args.prefix}-ue1")


def _shell(args) -> int:
    from neuralemu.datapath.live import LiveEmulation
    _need_root("shell")
    cmd = [c for c in (args.cmd or []) if c != "--"] or [os.environ.get("SHELL", "/bin/sh")]
    if args.mahimahi:
        from neuralemu.replay import replay_engine
        engine, ue_ids, delay = replay_engine(mahimahi_down=args.mahimahi[0], mahimahi_up=args.mahimahi[1],
                                              base_delay_ms=args.delay_ms)
        live = LiveEmulation(engine, ue_ids=ue_ids, prefix=args.prefix, base_delay_us=delay,
                             unclassified=args.unclassified, record_deliveries=bool(args.log),
                             gso=args.gso)
    elif args.scenario:
        live = LiveEmulation.from_scenario(args.scenario, prefix=args.prefix,
                                           unclassified=args.unclassified,
                                           record_deliveries=bool(args.log), gso=args.gso)
    else:
        raise InputError("shell", "give --scenario S or --mahimahi DOWN UP")
    args.duration_s = None
    return _run_live(live, args, cmd, f"{args.prefix}-ue1", outside=not args.no_outside)


def _common_live(p) -> None:
    p.add_argument("--prefix", type=_prefix, default="ne", help="testbed prefix (default ne)")
    p.add_argument("--unclassified", choices=["pass", "drop"], default="pass",
                   help="traffic of no known UE: pass unshaped (default) or drop; counted either way")
    p.add_argument("--log", metavar="CSV", help="write the delivery log (offline CSV layout) on exit")
    p.add_argument("--telemetry", metavar="CSV", help="write the emitted DCI telemetry on exit")
    p.add_argument("--summary", metavar="JSON", help="write the conservation summary on exit")
    p.add_argument("--quiet", action="store_true", help="no per-second lines")
    p.add_argument("--gso", action="store_true",
                   help="queue GSO/GRO super-packets whole (NFQA_CFG_F_GSO): far fewer packets for "
                        "TCP, but the engine sees the super-packets' sizes (docs/datapath.md)")


def register(subparsers) -> None:
    tb = subparsers.add_parser("testbed", help="build, remove or inspect the netns testbed",
                               description="The netns testbed: UE hosts, a middlebox, a server.")
    tsub = tb.add_subparsers(dest="testbed_command", metavar="ACTION")
    up = tsub.add_parser("up", help="build the testbed (idempotent)")
    up.add_argument("--ues", type=int, default=1, help="number of UE hosts (default 1)")
    up.add_argument("--prefix", type=_prefix, default="ne")
    up.add_argument("--mtu", type=int, default=1500)
    up.add_argument("--ue-if", help="real NIC on the UE side (with --core-if: bridge two NICs)")
    up.add_argument("--core-if", help="real NIC on the core side")
    up.set_defaults(func=_testbed_up)
    dn = tsub.add_parser("down", help="remove a testbed and everything it holds")
    g = dn.add_mutually_exclusive_group()
    g.add_argument("--prefix", type=_prefix, default="ne")
    g.add_argument("--all", action="store_true", help="every NeuralEmu testbed (tagged ones only)")
    dn.set_defaults(func=_testbed_down)
    st = tsub.add_parser("status", help="list NeuralEmu kernel state: namespaces, qdiscs, filters, "
                                        "BPF programs, iptables rules")
    st.add_argument("--prefix", type=_prefix, default=None)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_testbed_status)
    tb.set_defaults(func=lambda args: (tb.print_help(sys.stderr), 2)[1])

    run = subparsers.add_parser("run", help="run a scenario live on the netns testbed",
                                description="Run a scenario live: real packets through the emulated cell.")
    run.add_argument("--scenario", required=True, help="scenario YAML/JSON")
    run.add_argument("--duration-s", type=float, default=None, help="stop after T seconds (default: Ctrl-C)")
    _common_live(run)
    run.set_defaults(func=_run)

    rp = subparsers.add_parser("replay", help="replay a Mahimahi trace or an NR-Scope RNTI live",
                               description="Record-and-replay through the slot engine's replay policy.")
    rp.add_argument("--mahimahi", metavar="DOWN", help="Mahimahi downlink trace")
    rp.add_argument("--mahimahi-up", metavar="UP", help="Mahimahi uplink trace (default: same as DOWN)")
    rp.add_argument("--nrscope", metavar="CSV", help="NR-Scope DCI log")
    rp.add_argument("--rnti", type=int, help="RNTI whose grants to replay")
    rp.add_argument("--delay-ms", type=float, default=0.0, help="fixed one-way base delay added per direction")
    rp.add_argument("--duration-s", type=float, default=None)
    rp.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD: run CMD in UE 1's namespace meanwhile")
    _common_live(rp)
    rp.set_defaults(func=_replay)

    sh = subparsers.add_parser("shell", help="run a command whose traffic crosses the emulated cell",
                               description="Like mm-link: CMD runs in a UE namespace; its traffic to the "
                                           "testbed's server, to the host and beyond (NAT through the "
                                           "root namespace) passes through the emulated cell.")
    sh.add_argument("--scenario", help="scenario YAML/JSON")
    sh.add_argument("--mahimahi", nargs=2, metavar=("DOWN", "UP"), help="Mahimahi traces")
    sh.add_argument("--delay-ms", type=float, default=0.0)
    sh.add_argument("--no-outside", action="store_true",
                    help="do not link the testbed to the root namespace (no NAT): reach the "
                         "testbed's server only")
    sh.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ...")
    _common_live(sh)
    sh.set_defaults(func=_shell)
