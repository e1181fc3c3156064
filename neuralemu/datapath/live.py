"""Live emulation: real packets held in the kernel, released as the slot engine decides.

Path of a packet through the middlebox namespace::

    ingress (br0 / core) -> tc classifier: skb->mark = MARK_BASE | queue (per UE, direction)
    -> routing -> iptables FORWARD `-m mark --mark M -j NFQUEUE --queue-num q`
    -> held in the kernel; user space gets (queue, id, length) only
    -> engine.load_arrivals(...) in bulk each turn     (drop-tail -> NF_DROP)
    -> every slot: engine.step(); for each Delivery: NF_ACCEPT (FIFO prefix = one
       VERDICT_BATCH message per queue), for each HARQ Drop: NF_DROP
    -> egress to the UE (dl) or the server (ul)

The engine does all the byte accounting (segmentation, HARQ, in-order
delivery); this module only maps its decisions onto real packets. A slot ``s``
(engine time ``[t, t + slot_us)``) is stepped as soon as the wall clock passes
``t + slot_us`` and its deliveries are released at once (``t_delivered_us`` is
the end of the slot), plus the optional ``base_delay_us`` of a fixed core/radio
latency. Packets that arrived during slot ``s`` are eligible in slot ``s``
(zero scheduling processing delay; the engine's own k1/k2/SR/HARQ delays still
apply). When the loop wakes up late it steps every missed slot; the lateness
of each release (wall time of the verdict minus the slot's end) is recorded.

Thread model: one background thread owns the engine while the emulation runs.
Other threads read :meth:`LiveEmulation.snapshot` (refreshed every second) or
take :attr:`LiveEmulation.lock` around any engine call (``set_policy``,
``set_channel_offset_db``, ...).
"""

from __future__ import annotations

import os
import select
import threading
import time
from array import array
from collections import deque
from itertools import repeat
from dataclasses import dataclass, field

import numpy as np

from neuralemu.datapath import netns
from neuralemu.datapath import testbed as tbmod
from neuralemu.datapath.classifier import MARK_BASE, Classifier, queue_id, queue_of
from neuralemu.datapath.nfqueue import NF_ACCEPT, NF_DROP, NfQueue, kernel_stats

DIRECTIONS = ("dl", "ul")
_EV_DELIVERED, _EV_DROP_QUEUE = 0, 1     # neuralemu.cell.kernel EVK_* event kinds
_REASON_KIND = {"queue": 1, "harq": 2, "detach": 3}
PRELOAD_MAX_PACKETS = 64    # no pre-load wake-up after a turn that received this many packets
_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1


@dataclass
class QueueCounters:
    """What the datapath saw for one (UE, direction); all byte counts are IP lengths."""

    in_bytes: int = 0
    in_packets: int = 0
    out_bytes: int = 0
    out_packets: int = 0
    drop_queue_bytes: int = 0       # drop-tail at enqueue
    drop_queue_packets: int = 0
    drop_harq_bytes: int = 0        # HARQ failure after the last transmission
    drop_harq_packets: int = 0
    delay_line_bytes: int = 0       # delivered by the engine, waiting for base_delay_us

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LiveSnapshot:
    t_wall: float
    slot: int
    queues: dict                      # {(ue_id, dir): QueueCounters as dict}
    engine_stats: dict
    lateness_slots_p50: float = 0.0
    lateness_slots_p99: float = 0.0
    late_slots: int = 0
    extra: dict = field(default_factory=dict)


class LiveEmulation:
    """Drive an engine from real packets in a netns testbed.

    ``engine``: anything with the engine API of ``docs/engine.md`` (``enqueue``,
    ``step``, ``slot_us``, ``t_us``, ``stats``). ``ue_ids``: engine user ids in
    testbed order (UE ``i`` of the testbed, 1-based, is ``ue_ids[i-1]``);
    default: the engine's users in ``stats()`` order. ``ue_addresses``: extra
    {ue_id: [address, ...]} to classify (real UEs behind a NIC). ``testbed``: use
    this one (kept on stop unless ``own_testbed``); default: build ``prefix``'s
    testbed with one UE host per user and remove it on stop. ``realtime``: SCHED_FIFO
    priority for the loop thread (0: normal scheduling); it sleeps between slots,
    so it takes little CPU, but it wakes on time on a busy host.
    """

    def __init__(self, engine, *, ue_ids: list[int] | None = None, prefix: str = "ne",
                 testbed: tbmod.Testbed | None = None, unclassified: str = "pass",
                 base_delay_us: int = 0, record_deliveries: bool = False,
                 max_lateness_samples: int = 5_000_000, on_second=None,
                 realtime: int = 10, ue_addresses: dict | None = None,
                 own_testbed: bool | None = None, gso: bool = False, preload: bool = True) -> None:
        self.engine = engine
        self.ue_ids = list(ue_ids) if ue_ids is not None else list(engine.stats().keys())
        if not self.ue_ids:
            raise ValueError("a live emulation needs at least one UE")
        self.prefix = tbmod.check_prefix(prefix if testbed is None else testbed.prefix)
        self.testbed = testbed
        self._own_testbed = testbed is None if own_testbed is None else own_testbed
        self.ue_addresses = dict(ue_addresses or {})
        self.emulation = None
        self.unclassified = unclassified
        self.base_delay_us = int(base_delay_us)
        self.record_deliveries = record_deliveries
        self.on_second = on_second
        self.realtime = int(realtime)   # SCHED_FIFO priority of the loop thread; 0 = normal
        self.lock = threading.RLock()
        self.counters = {(ue, d): QueueCounters() for ue in self.ue_ids for d in DIRECTIONS}
        self.delivery_rows: list[tuple] = []
        self.lateness_us = array("i")          # per slot stepped: wall time of its verdicts - slot end (us)
        self.slot_packets = array("i")         # packets released by that slot's step
        self.wake_lateness_us = array("i")     # per wake-up for a slot boundary: wall - target
        self._max_samples = max_lateness_samples
        self.classifier: Classifier | None = None
        self.nfq: NfQueue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._rules_installed = False
        self._snapshot: LiveSnapshot | None = None
        self.final: dict | None = None
        self.loop_cpu_s = 0.0     # CPU time the loop thread used (set when it ends)
        self.loop_wall_s = 0.0
        self.loop_tid = 0         # native thread id of the loop (for CPU accounting from /proc)
        self.started = False
        self.gso = bool(gso)
        self.preload = bool(preload)
        self.background_arrivals = None     # synthetic users' workload (t_us, ue, direction, size_bytes)
        self.background_period_us = None    # it repeats with this period (default: its length)

    @classmethod
    def from_scenario(cls, scenario, *, duration_s: float | None = None, record_dci: bool = False,
                      **kwargs) -> "LiveEmulation":
        """Wrap the engine of a scenario (file path, dict or model), built by
        :func:`neuralemu.scenario.build_emulation`, the one place that turns scenarios into
        emulations. Live, the users' traffic is real, so their built-in traffic is not
        loaded; the scenario's users map to testbed UEs 1..N in order, and a user's ``ip``
        (real-NIC mode) is classified to it. The synthetic background users are in the
        engine as offline; their arrivals (generated for ``duration_s``, default the
        scenario's, then repeated) are fed to the engine a few slots ahead as it runs."""
        from neuralemu.scenario import build_emulation
        emu = build_emulation(scenario, duration_s=duration_s, record_dci=record_dci,
                              keep_log=False, load_traffic=False, attach_background=True)
        sc = emu.scenario
        kwargs.setdefault("ue_ids", [ue.ue_id for ue in sc.ues])
        addrs = {ue.ue_id: [ue.ip] for ue in sc.ues if getattr(ue, "ip", None)}
        if addrs:
            kwargs.setdefault("ue_addresses", addrs)
        live = cls(emu.engine, **kwargs)
        live.emulation = emu
        if emu.background_arrivals is not None and len(emu.background_arrivals):
            live.background_arrivals = emu.background_arrivals
            live.background_period_us = int(round(
                (sc.duration_s if duration_s is None else float(duration_s)) * 1e6))
        return live

    # -- set-up and teardown ---------------------------------------------------
    @property
    def queues(self) -> list[int]:
        return [queue_id(k, d) for k in range(len(self.ue_ids)) for d in DIRECTIONS]

    def start(self) -> "LiveEmulation":
        """Build (or reuse) the testbed, load and attach the classifier, bind the queues, run."""
        try:
            if self.testbed is None:
                self.testbed = tbmod.up(len(self.ue_ids), self.prefix)
            tb = self.testbed
            if not tb.real_nics and tb.n_ues < len(self.ue_ids):
                raise ValueError(f"testbed {tb.prefix} has {tb.n_ues} UEs, the engine {len(self.ue_ids)}")
            self.classifier = Classifier(self.prefix, unclassified=self.unclassified)
            self._remove_rules()                       # leftovers of a killed run
            self.nfq = NfQueue(tb.ns_mb, self.queues, gso=self.gso)  # bind before any rule queues to it
            self._install_rules()
            for k, ue in enumerate(self.ue_ids):
                if not tb.real_nics:
                    self.classifier.set_ue(tb.ue_ipv4(k + 1), ue, k)
                    self.classifier.set_ue(tb.ue_ipv6(k + 1), ue, k)
                for addr in self.ue_addresses.get(ue, []):
                    self.classifier.set_ue(addr, ue, k)
            self.classifier.attach(tb.ns_mb, tb.ul_ifaces, tb.dl_ifaces)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"live-{self.prefix}", daemon=True)
            self.started = True
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def set_ue_address(self, address: str, ue_id: int) -> None:
        """Classify another address (e.g. a real UE behind a NIC) to engine user ``ue_id``."""
        self.classifier.set_ue(address, ue_id, self.ue_ids.index(ue_id))

    def _rule_lines(self, action: str) -> list[str]:
        lines = []
        for q in self.queues:
            lines.append(f"{action} FORWARD -m mark --mark {MARK_BASE | q:#x}/0xffffffff "
                         f"-m comment --comment {tbmod.TAG}{self.prefix} -j NFQUEUE --queue-num {q}")
        return lines

    def _install_rules(self) -> None:
        ns = self.testbed.ns_mb
        for v6 in (False, True):
            text = "*filter\n" + "\n".join(self._rule_lines("-A")) + "\nCOMMIT\n"
            netns.run([netns.iptables_bin(v6) + "-restore", "--noflush"], ns=ns, input=text)
        self._rules_installed = True

    def _remove_rules(self) -> None:
        tb = self.testbed
        if tb is None or not netns.exists(tb.ns_mb):
            return
        for v6 in (False, True):
            b = netns.iptables_bin(v6)
            save = netns.run([b + "-save", "-t", "filter"], ns=tb.ns_mb, check=False).stdout
            dels = [ln.replace("-A ", "-D ", 1) for ln in save.splitlines()
                    if ln.startswith("-A ") and tbmod.TAG in ln]
            if dels:
                text = "*filter\n" + "\n".join(dels) + "\nCOMMIT\n"
                netns.run([b + "-restore", "--noflush"], ns=tb.ns_mb, input=text, check=False)
        self._rules_installed = False

    def stop(self) -> dict | None:
        """Stop the loop, take the final counts, remove every rule/filter/program (and the
        testbed if this emulation created it). Safe to call twice and from a signal path."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        try:
            if self.started and self.final is None:
                self.final = self.conservation()
        finally:
            if self.classifier is not None:
                try:
                    self.classifier.close()
                except Exception:
                    pass
                self.classifier = None
            if self.nfq is not None:
                self.nfq.close()
                self.nfq = None
            try:
                self._remove_rules()
            finally:
                if self._own_testbed and self.testbed is not None:
                    tbmod.down(self.testbed.prefix)
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError(f"live loop failed: {err!r}") from err
        return self.final

    def __enter__(self) -> "LiveEmulation":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the loop ----------------------------------------------------------------
    def _run(self) -> None:
        self.loop_tid = threading.get_native_id()
        _name_thread(f"ne-live-{self.prefix}")
        try:
            if self.realtime:
                try:   # this thread only (pid 0 = the calling thread on Linux)
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime))
                except (OSError, AttributeError):
                    self.realtime = 0
            self._loop()
        except BaseException as exc:     # surfaced by stop()
            self._error = exc

    def _loop(self) -> None:
        eng, nfq, ue_ids = self.engine, self.nfq, self.ue_ids
        counters = self.counters
        nq = len(self.queues)
        qkeys = [(ue_ids[queue_of(q)[0]], queue_of(q)[1]) for q in range(nq)]
        qcount = [counters[qkeys[q]] for q in range(nq)]
        ue_of_index = np.array(ue_ids, dtype=np.int64)
        slot_us = int(eng.slot_us)
        base_delay = self.base_delay_us
        record = self.record_deliveries
        rows = self.delivery_rows
        lat, spk, wake = self.lateness_us, self.slot_packets, self.wake_lateness_us
        max_samples = self._max_samples
        delay_line: deque = deque()   # (release_t_us, queues, nfq ids, sizes) after base delay
        pmap: dict = {}               # engine packet id -> (queue << 32) | nfqueue id
        arrival_us: dict = {}         # engine packet id -> true arrival time (delivery log only)
        singles: list = []
        bmax = np.zeros(nq, dtype=np.int64)     # highest id to accept per queue this turn
        bmax_set = [False]                      # any entry of bmax set this turn
        stepped: list = []                      # ends of the slots stepped this turn
        lead = max(1, int(eng.slot_us) // 3)    # pre-load wake this long before a slot ends
        preload = self.preload
        last_pre = -1
        is_pre = False
        pop = pmap.pop
        mono = time.monotonic_ns
        load = eng.load_arrivals
        receive = nfq.receive_arrays
        bg = self._background_feed()
        with self.lock:
            # Warm-up before the clock starts: the first calls of compiled code (numba cache
            # loads, numpy first calls) take tens of ms, which would make the first slots late
            # and release what arrived meanwhile early. The first slot runs here, untimed,
            # before any packet (packets already queued wait for the first timed turn).
            load(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                 np.zeros(0, np.int64))
            ev = _events_array(eng.step())
            _spread(np.zeros(2, dtype=np.int64), 2)
            if ev.shape[1]:         # only synthetic packets can be in the engine yet
                np.fromiter(map(pop, ev[0].tolist(), repeat(-1)), dtype=np.int64,
                            count=ev.shape[1])
            t_origin = int(eng.t_us)
        t_slot = t_origin                    # start of the next slot to step (= eng.t_us)
        wall0 = mono()
        cpu0 = time.thread_time()
        next_report = wall0 + 1_000_000_000
        sel = select.select
        stop = self._stop
        while not stop.is_set():
            with self.lock:
                now_us = t_origin + (mono() - wall0) // 1000
                t_slot = int(eng.t_us)
                # 1. arrivals, in bulk (one engine call per turn): eligible from the slot not
                #    stepped yet; plus the synthetic background users' next arrivals
                qs, nids, size = receive()
                n = qs.size
                extra = bg(t_slot) if bg is not None else None
                if n or extra is not None:
                    late = (now_us - t_slot) // slot_us     # slots to step this turn
                    if late > 1 and n > 1:
                        # woke up late: the packets came in over ``late`` slots; spread each
                        # queue's evenly, in order, instead of offering them all to the first
                        t_arr = t_slot + _spread(qs, late) * slot_us
                    else:
                        t_arr = np.full(n, t_slot, dtype=np.int64)
                    ue_arr, d_arr = ue_of_index[qs >> 1], qs & 1
                    if extra is not None:
                        t_arr = np.concatenate([t_arr, extra[0]])
                        ue_arr = np.concatenate([ue_arr, extra[1]])
                        d_arr = np.concatenate([d_arr, extra[2]])
                        sz_arr = np.concatenate([size, extra[3]])
                    else:
                        sz_arr = size
                    ids = load(t_arr, ue_arr, d_arr, sz_arr)
                    if n:
                        mine = ids[:n].tolist()
                        pmap.update(zip(mine, ((qs << _ID_BITS) | nids).tolist()))
                        if record:
                            arrival_us.update(dict.fromkeys(mine, now_us))
                        _add_counts(qcount, qs, size, nq, "in_bytes", "in_packets")
                # 2. every slot whose end has passed
                while t_slot + slot_us <= now_us:
                    slot_end = t_slot + slot_us
                    ev = _events_array(eng.step())
                    t_slot = slot_end
                    n_rel = 0
                    if ev.shape[1]:
                        keys = np.fromiter(map(pop, ev[0].tolist(), repeat(-1)), dtype=np.int64,
                                           count=ev.shape[1])
                        ours = keys >= 0           # not ours: synthetic (background) packets
                        if not ours.all():
                            keys, ev = keys[ours], ev[:, ours]
                        if keys.size:
                            n_rel = self._map_events(ev, keys, qcount, qkeys, bmax, singles,
                                                     delay_line, base_delay, record, rows,
                                                     arrival_us, nq)
                            bmax_set[0] = bmax_set[0] or n_rel > 0
                    stepped.append(slot_end)
                    if len(spk) < max_samples:
                        spk.append(n_rel)
                # 3. the base-delay line
                while delay_line and delay_line[0][0] <= now_us:
                    _, dq, dn, ds = delay_line.popleft()
                    _add_counts(qcount, dq, ds, nq, "out_bytes", "out_packets", "delay_line_bytes")
                    _max_into(bmax, dq, dn)
                    bmax_set[0] = True
                # 4. verdicts: drops first, then one batch accept per queue
                if singles or bmax_set[0]:
                    acc = np.flatnonzero(bmax)
                    nfq.send_verdicts([(q, m, NF_ACCEPT) for q, m in zip(acc.tolist(),
                                                                          bmax[acc].tolist())],
                                      singles)
                    singles.clear()
                    bmax[acc] = 0
                    bmax_set[0] = False
                if stepped:     # lateness of each stepped slot's release: verdicts sent now
                    t_v = t_origin + (mono() - wall0) // 1000
                    for slot_end in stepped:
                        if len(lat) < max_samples:
                            lat.append(t_v - slot_end)
                    stepped.clear()
                next_t = t_slot + slot_us
                if delay_line and delay_line[0][0] < next_t:
                    next_t = delay_line[0][0]
                # pre-load: wake once `lead` before the slot ends to hand the engine what has
                # arrived so far, so the turn at the boundary has less to do before its
                # verdicts (same semantics: those packets are eligible in this slot either way)
                pre_t = t_slot + slot_us - lead
                # (not at high packet rates, where every slot would need two engine calls)
                if (preload and n < PRELOAD_MAX_PACKETS and pre_t < next_t
                        and pre_t > now_us + lead // 2 and pre_t > last_pre):
                    next_t = pre_t
                    last_pre = pre_t
                    is_pre = True
                else:
                    is_pre = False
            now_ns = mono()
            if now_ns >= next_report:
                next_report += 1_000_000_000
                self._publish()
            # 5. sleep until the next slot end (packets wait in the kernel meanwhile: one
            #    wake-up per slot, however many packets arrive)
            wait_us = next_t - (t_origin + (now_ns - wall0) // 1000)
            if wait_us > 0:
                sel([], [], [], wait_us / 1e6)
                if len(wake) < max_samples and not is_pre:
                    wake.append(int(t_origin + (mono() - wall0) // 1000 - next_t))
        self.loop_cpu_s = time.thread_time() - cpu0
        self.loop_wall_s = (mono() - wall0) / 1e9
        self._publish()

    @staticmethod
    def _map_events(ev, keys, qcount, qkeys, bmax, singles, delay_line, base_delay, record, rows,
                    arrival_us, nq) -> int:
        """Turn one slot's engine events (of our packets) into verdicts and counts; returns the
        number of packets released now."""
        q = keys >> _ID_BITS
        nid = keys & _ID_MASK
        kind = ev[6]
        size = ev[3]
        dl = kind == _EV_DELIVERED
        n_dl = int(np.count_nonzero(dl))
        if record:
            for key, pid, ue, sz, t_arr, t_ev, k in zip(keys.tolist(), ev[0].tolist(),
                                                      ev[1].tolist(), size.tolist(),
                                                      ev[4].tolist(), ev[5].tolist(),
                                                      kind.tolist()):
                qd = qkeys[key >> _ID_BITS][1]
                t0 = arrival_us.pop(pid, t_arr)
                rows.append((key, ue, qd, sz, t0, t_ev + base_delay, 0) if k == _EV_DELIVERED
                            else (key, ue, qd, sz, t0, None, 1))
        if n_dl < kind.size:
            for qq, nn, sz, k in zip(q[~dl].tolist(), nid[~dl].tolist(), size[~dl].tolist(),
                                     kind[~dl].tolist()):
                c = qcount[qq]
                if k == _EV_DROP_QUEUE:
                    c.drop_queue_bytes += sz
                    c.drop_queue_packets += 1
                else:
                    c.drop_harq_bytes += sz
                    c.drop_harq_packets += 1
                singles.append((qq, nn, NF_DROP))
            q, nid, size, t_ev = q[dl], nid[dl], size[dl], ev[5][dl]
        else:
            t_ev = ev[5]
        if not n_dl:
            return 0
        if base_delay:
            delay_line.append((int(t_ev.max()) + base_delay, q, nid, size))
            _add_counts(qcount, q, size, nq, "delay_line_bytes")
            return 0
        _add_counts(qcount, q, size, nq, "out_bytes", "out_packets")
        _max_into(bmax, q, nid)
        return n_dl

    def _background_feed(self):
        """``feed(t_slot_us)`` -> the synthetic background arrivals due before ``t_slot_us`` plus a
        short horizon, as arrays ``(t_us, ue, dir code, size)`` (None when there are none);
        the recorded workload repeats every ``background_period_us``. None without background."""
        wl = self.background_arrivals
        if wl is None or len(wl) == 0:
            return None
        t = np.asarray(wl["t_us"], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        t = t[order]
        ue = np.asarray(wl["ue"], dtype=np.int64)[order]
        dirs = np.asarray(wl["direction"])
        d = (dirs == "ul").astype(np.int64) if dirs.dtype.kind in "USO" else dirs.astype(np.int64)
        d = d[order]
        size = np.asarray(wl["size_bytes"], dtype=np.int64)[order]
        period = int(self.background_period_us or (int(t[-1]) + 1))
        horizon = 8 * int(self.engine.slot_us)
        state = {"pos": 0, "base": 0}

        def feed(t_slot: int):
            until = t_slot + horizon
            parts = []
            while True:
                pos, base = state["pos"], state["base"]
                end = int(np.searchsorted(t, until - base, side="left"))
                if end > pos:
                    parts.append((t[pos:end] + base, ue[pos:end], d[pos:end], size[pos:end]))
                    state["pos"] = end
                if end < t.size:
                    break
                state["pos"], state["base"] = 0, base + period     # loop the workload
                if base + period >= until:
                    break
            if not parts:
                return None
            if len(parts) == 1:
                return parts[0]
            return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
        return feed

    # -- reporting -----------------------------------------------------------------
    def _publish(self) -> None:
        with self.lock:
            stats = self.engine.stats()
            queues = {k: c.as_dict() for k, c in self.counters.items()}
            slot = int(self.engine.slot)
        n = len(self.lateness_us)
        recent = self.lateness_us[max(0, n - 4000):n]     # the last ~second of slots
        slot_us = int(self.engine.slot_us)
        late = sorted(recent)
        p50 = late[len(late) // 2] / slot_us if late else 0.0
        p99 = late[int(len(late) * 0.99)] / slot_us if late else 0.0
        snap = LiveSnapshot(t_wall=time.time(), slot=slot, queues=queues, engine_stats=stats,
                            lateness_slots_p50=p50, lateness_slots_p99=p99,
                            late_slots=sum(1 for v in recent if v > slot_us))
        self._snapshot = snap
        if self.on_second is not None:
            try:
                self.on_second(snap)
            except Exception:
                pass

    def snapshot(self) -> LiveSnapshot | None:
        """The latest per-second snapshot (thread-safe to read)."""
        return self._snapshot

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (or until the loop fails); re-raises a loop failure."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                break
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        if self._error is not None:
            self.stop()

    def conservation(self) -> dict:
        """Per (ue, direction): bytes in = out + drops + queued, from the datapath's counts,
        next to the engine's own counts and the kernel's (classifier, NFQUEUE)."""
        with self.lock:
            stats = self.engine.stats()
            out = {}
            arrivals = self.classifier.arrivals() if self.classifier is not None else {}
            kstats = {}
            if self.testbed is not None and netns.exists(self.testbed.ns_mb):
                kstats = kernel_stats(self.testbed.ns_mb)
            for k, ue in enumerate(self.ue_ids):
                for d in DIRECTIONS:
                    c = self.counters[(ue, d)]
                    q = queue_id(k, d)
                    es = stats.get(ue, {}).get(d, {})
                    queued = int(es.get("queue_bytes", 0)) + c.delay_line_bytes
                    drops = c.drop_queue_bytes + c.drop_harq_bytes
                    ks = kstats.get(q, {})
                    out[f"{ue}/{d}"] = {
                        "in_bytes": c.in_bytes, "out_bytes": c.out_bytes,
                        "drop_bytes": drops, "queued_bytes": queued,
                        "balance_bytes": c.in_bytes - c.out_bytes - drops - queued,
                        "engine_bytes_in": int(es.get("bytes_in", 0)),
                        "engine_bytes_out": int(es.get("bytes_out", 0)),
                        "engine_dropped_bytes": int(es.get("dropped_bytes", 0)),
                        "classified_bytes": arrivals.get(q, (0, 0))[0],
                        "classified_packets": arrivals.get(q, (0, 0))[1],
                        "in_packets": c.in_packets,
                        "kernel_queue_dropped": ks.get("queue_dropped", 0),
                        "kernel_user_dropped": ks.get("user_dropped", 0),
                    }
            if self.classifier is not None:
                out["unclassified"] = {k: {"bytes": b, "packets": p}
                                       for k, (b, p) in self.classifier.other().items()}
        return out

    def delivery_log_rows(self) -> list[tuple]:
        """Rows ``packet_id,ue,direction,size_bytes,t_arrival_us,t_delivered_us,dropped``."""
        return list(self.delivery_rows)

    def write_delivery_log(self, path) -> None:
        import csv
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["packet_id", "ue", "direction", "size_bytes", "t_arrival_us",
                        "t_delivered_us", "dropped"])
            for r in self.delivery_rows:
                w.writerow([r[0], r[1], r[2], r[3], r[4], "" if r[5] is None else r[5], r[6]])


def _name_thread(name: str) -> None:
    """Give the calling thread an OS-visible name (top -H, perf, /proc/<pid>/task/*/comm)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)     # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _spread(qs: np.ndarray, n_slots: int) -> np.ndarray:
    """Slot offsets 0..n_slots-1 for packets of queues ``qs``: each queue's packets spread
    evenly over the slots, in their order."""
    n = qs.size
    order = np.argsort(qs, kind="stable")
    sq = qs[order]
    starts = np.concatenate([[0], np.flatnonzero(sq[1:] != sq[:-1]) + 1])
    counts = np.diff(np.concatenate([starts, [n]]))
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    out = np.empty(n, dtype=np.int64)
    out[order] = rank * n_slots // np.repeat(counts, counts)
    return out


def _add_counts(qcount, q: np.ndarray, size: np.ndarray, nq: int, bytes_field: str,
                packets_field: str | None = None, minus_field: str | None = None) -> None:
    """Add per-queue byte (and packet) sums of packets ``(q, size)`` to the counters
    (and subtract the bytes from ``minus_field``)."""
    if q.size == 0:
        return
    q0 = int(q[0])
    if q.size == 1 or not (q != q0).any():
        groups = [(q0, int(size.sum()), int(q.size))]
    else:
        nb = np.bincount(q, weights=size, minlength=nq)
        npk = np.bincount(q, minlength=nq)
        nz = np.flatnonzero(npk)
        groups = zip(nz.tolist(), nb[nz].astype(np.int64).tolist(), npk[nz].tolist())
    for qq, b, p in groups:
        c = qcount[qq]
        setattr(c, bytes_field, getattr(c, bytes_field) + b)
        if packets_field:
            setattr(c, packets_field, getattr(c, packets_field) + p)
        if minus_field:
            setattr(c, minus_field, getattr(c, minus_field) - b)


def _max_into(bmax: np.ndarray, q: np.ndarray, nid: np.ndarray) -> None:
    """bmax[q] = max(bmax[q], nid) per queue."""
    if q.size == 0:
        return
    q0 = int(q[0])
    if not (q != q0).any():
        m = int(nid.max())
        if m > bmax[q0]:
            bmax[q0] = m
    else:
        np.maximum.at(bmax, q, nid)


def _events_array(res) -> np.ndarray:
    """The 7 x n event rows (packet_id, ue, dir, size, t_arrival, t_event, kind) of a SlotResult:
    the engine's own array when it has one (no per-packet objects on the hot path)."""
    ev = getattr(res, "_ev", None)
    if isinstance(ev, np.ndarray) and ev.ndim == 2 and ev.shape[0] == 7:
        return ev.astype(np.int64, copy=False)
    rows = _events(res)
    return np.array(rows, dtype=np.int64).reshape(-1, 7).T


def _events(res):
    """(packet_id, ue, dir, size, t_arrival, t_event, kind) rows of a SlotResult.

    Reads the engine's event array directly when it has one (no per-packet
    objects: this is the datapath's hot path), else its public lists."""
    ev = getattr(res, "_ev", None)
    if isinstance(ev, np.ndarray) and ev.ndim == 2 and ev.shape[0] == 7:
        return ev.T.tolist()
    code = {"dl": 0, "ul": 1}
    out = [(d.packet_id, d.ue_id, code.get(d.direction, d.direction), d.size_bytes, d.t_arrival_us,
            d.t_delivered_us, _EV_DELIVERED) for d in res.delivered]
    out += [(d.packet_id, d.ue_id, code.get(d.direction, d.direction), d.size_bytes, d.t_arrival_us,
             d.t_drop_us, _REASON_KIND.get(d.reason, 2)) for d in res.dropped]
    return out


def lateness_percentiles(lateness_us, packets, slot_us: int, pcts=(50, 99, 99.9),
                         per_packet: bool = True) -> tuple:
    """Percentiles of release lateness in slots; per packet (each slot's lateness weighted by
    the packets it released) or per slot."""
    lat = np.frombuffer(lateness_us, dtype=np.int32) if len(lateness_us) else np.zeros(0)
    if per_packet:
        w = np.frombuffer(packets, dtype=np.int32) if len(packets) else np.zeros(0)
        lat = np.repeat(lat, w[:len(lat)]) if len(w) else lat[:0]
    if lat.size == 0:
        return tuple(0.0 for _ in pcts)
    return tuple(float(v) / slot_us for v in np.percentile(lat, pcts))
