"""Offline mirror of a browser page load: HTTP/1.1 over TCP, closed loop through the cell.

:class:`PageLoadSource` is a ``TrafficSource`` (docs/engine.md) that loads one
:class:`~neuralemu.apps.webpage.Page` the way Chromium loads it from the test
server, with every packet of both directions going through the slot engine:

- navigation start at ``t0``; ``nav_start_us`` later connection 0 opens with a SYN (uplink), the
  server answers with a SYN-ACK (downlink), then the client sends the GET for
  the HTML (uplink, ``request_bytes``);
- the server answers every request with ``response_header_bytes`` plus the
  object, cut into ``mss_bytes`` segments (``header_bytes`` more each on the
  wire), sent as its TCP window allows: initial window 10 (RFC 6928), slow start
  (RFC 5681, one segment per acknowledged segment), then congestion avoidance
  (one segment per window); a segment the cell drops is sent again when the
  loss is detected (``loss_detect_us`` later) and the window is multiplied by
  0.7 (RFC 9438's beta, at most once per window);
- the client acknowledges every ``ack_every`` delivered segments with an
  uplink ACK (``ack_bytes``; delayed ACKs, RFC 1122 4.2.3.2) and at the end of
  each response; the server's window slides when an ACK reaches it;
- when the HTML is complete (plus ``parse_us``), the subresources are requested
  over at most ``connections`` persistent connections (Chromium's limit per
  host under HTTP/1.1): connection 0 is reused and the others are opened
  (SYN/SYN-ACK first); requests go out in priority order (stylesheets, scripts,
  images; document order within a kind), each on the next idle connection;
- a connection whose response is complete waits ``request_gap_us`` (the
  browser's and the server's processing per request) before it takes the next
  request;
- the page is loaded when the last object's last segment is delivered; page
  load time = that + ``tail_us`` - ``t0``.

The wire between the gNB and the server adds ``core_delay_us`` each way (the
testbed's veth path: tens of microseconds). The browser's own CPU time is not
modelled except through the constant ``parse_us`` and ``tail_us``; on a busy
host it is what live and offline page load times differ by (docs/apps.md).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from neuralemu.apps.webpage import Page
from neuralemu.workloads.packet import Packet

KIND_ORDER = {"css": 0, "js": 1, "img": 2}


@dataclass(frozen=True)
class BrowserModel:
    connections: int = 6                  # Chromium: 6 sockets per host under HTTP/1.1
    mss_bytes: int = 1448                 # 1500 - IPv4 20 - TCP 20 - timestamps 12
    header_bytes: int = 52
    initial_cwnd: int = 10                # RFC 6928 (Linux default)
    syn_bytes: int = 60
    ack_bytes: int = 52
    ack_every: int = 2                    # delayed ACK: one per two full segments
    request_bytes: int = 500              # a GET with Chromium's headers, IP bytes
    response_header_bytes: int = 180      # the test server's status line and headers
    core_delay_us: int = 50               # gNB <-> server, one way
    loss_detect_us: int = 20_000
    nav_start_us: int = 0                 # navigation start -> the first SYN
    parse_us: int = 0                     # HTML complete -> subresource requests
    request_gap_us: int = 0               # a response complete -> the next GET on that connection
    tail_us: int = 0                      # last byte -> loadEventEnd
    beta: float = 0.7


class _Conn:
    __slots__ = ("idx", "state", "cwnd", "ssthresh", "queue", "inflight", "unacked", "obj",
                 "left", "ca_acc", "last_cut_seq", "sent_seq")

    def __init__(self, idx: int, cwnd: int) -> None:
        self.idx = idx
        self.state = "closed"          # closed | connecting | idle | busy | thinking
        self.cwnd = float(cwnd)
        self.ssthresh = float("inf")
        self.queue: deque = deque()    # server side: segments (obj, wire_bytes) not yet sent
        self.inflight = 0              # server side: segments sent, not acknowledged
        self.unacked = 0               # client side: segments delivered, not yet acknowledged
        self.obj = -1                  # object in transfer
        self.left = 0                  # its segments still to be delivered
        self.ca_acc = 0.0
        self.last_cut_seq = -1
        self.sent_seq = 0


class PageLoadSource:
    """One page load (``Page``) for engine user ``ue``, starting at ``t0_us``; see the module doc."""

    def __init__(self, page: Page, ue: int, *, model: BrowserModel | None = None,
                 t0_us: int = 0) -> None:
        self.page = page
        self.ue = int(ue)
        self.m = model or BrowserModel()
        self.t0_us = int(t0_us)
        self.conns = [_Conn(i, self.m.initial_cwnd) for i in range(self.m.connections)]
        self._events: list = []          # (t_us, order, fn, args)
        self._order = 0
        self._outbox: list = []          # (t_arrival_us, order, direction, size, meta)
        self._last_t = {"dl": -1, "ul": -1}
        self._meta: dict = {}            # (direction, t_arrival_us) -> meta
        self.pending: deque = deque()    # subresources waiting for a connection
        self.obj_request_us: dict[int, int] = {}   # GET sent (after the handshake, if any)
        self.obj_done_us: dict[int, int] = {}      # last segment delivered
        self.done_us: int | None = None
        self.retransmissions = 0
        self.packets = {"dl": 0, "ul": 0}
        self.bytes = {"dl": 0, "ul": 0}
        self._at(self.t0_us + self.m.nav_start_us, self._open, 0, 0)

    # -- bookkeeping -------------------------------------------------------------
    def _at(self, t_us: int, fn, *args) -> None:
        self._order += 1
        heapq.heappush(self._events, (int(t_us), self._order, fn, args))

    def _send(self, t_us: int, direction: str, size: int, meta: tuple) -> None:
        """A packet reaching the cell at ``t_us`` (dl: at the gNB, ul: in the UE's buffer)."""
        t = max(int(t_us), self._last_t[direction] + 1)   # distinct times: exact callback matching
        self._last_t[direction] = t
        self._order += 1
        heapq.heappush(self._outbox, (t, self._order, direction, int(size), meta))
        self.packets[direction] += 1
        self.bytes[direction] += int(size)

    @property
    def plt_us(self) -> int | None:
        return None if self.done_us is None else self.done_us + self.m.tail_us - self.t0_us

    # -- client --------------------------------------------------------------------
    def _open(self, t: int, c: int, obj: int) -> None:
        conn = self.conns[c]
        conn.state = "connecting"
        conn.obj = obj
        self._send(t, "ul", self.m.syn_bytes, ("syn", c))

    def _request(self, t: int, c: int, obj: int) -> None:
        conn = self.conns[c]
        conn.state = "busy"
        conn.obj = obj
        self.obj_request_us[obj] = t
        acked, conn.unacked = conn.unacked, 0     # the request carries the ACK
        self._send(t, "ul", self.m.request_bytes, ("req", c, obj, acked))

    def _client_data(self, t: int, c: int, obj: int) -> None:
        conn = self.conns[c]
        conn.unacked += 1
        conn.left -= 1
        if conn.left > 0:
            if conn.unacked >= self.m.ack_every:
                self._send(t, "ul", self.m.ack_bytes, ("ack", c, conn.unacked))
                conn.unacked = 0
            return
        self.obj_done_us[obj] = t
        conn.state = "idle"
        if obj == 0:
            kinds = sorted(range(1, len(self.page.objects)),
                           key=lambda i: (KIND_ORDER[self.page.objects[i].kind], i))
            self.pending.extend(kinds)
            self._at(t + self.m.parse_us, self._dispatch)
        elif self.m.request_gap_us:
            conn.state = "thinking"
            self._at(t + self.m.request_gap_us, self._ready, c)
        else:
            self._dispatch(t)
        if conn.state != "busy" and conn.unacked:     # nothing to piggyback on: a pure ACK
            self._send(t, "ul", self.m.ack_bytes, ("ack", c, conn.unacked))
            conn.unacked = 0
        if len(self.obj_done_us) == len(self.page.objects):
            self.done_us = t

    def _ready(self, t: int, c: int) -> None:
        self.conns[c].state = "idle"
        self._dispatch(t)

    def _dispatch(self, t: int) -> None:
        for conn in self.conns:
            if not self.pending:
                return
            if conn.state == "idle":
                self._request(t, conn.idx, self.pending.popleft())
        for conn in self.conns:
            if not self.pending:
                return
            if conn.state == "closed":
                self._open(t, conn.idx, self.pending.popleft())

    # -- server --------------------------------------------------------------------
    def _server_syn(self, t: int, c: int) -> None:
        self._send(t + self.m.core_delay_us, "dl", self.m.syn_bytes, ("synack", c))

    def _server_request(self, t: int, c: int, obj: int, acked: int) -> None:
        conn = self.conns[c]
        if acked:
            self._server_ack(t, c, acked)
        body = self.page.objects[obj].size_bytes + self.m.response_header_bytes
        n_full, rest = divmod(body, self.m.mss_bytes)
        segs = [self.m.mss_bytes] * n_full + ([rest] if rest else [])
        conn.left = len(segs)
        for s in segs:
            conn.queue.append((obj, s + self.m.header_bytes))
        self._pump(t, conn)

    def _pump(self, t: int, conn: _Conn) -> None:
        while conn.queue and conn.inflight < int(conn.cwnd):
            obj, size = conn.queue.popleft()
            conn.inflight += 1
            conn.sent_seq += 1
            self._send(t + self.m.core_delay_us, "dl", size, ("data", conn.idx, obj, conn.sent_seq))

    def _server_ack(self, t: int, c: int, n: int) -> None:
        conn = self.conns[c]
        n = min(n, conn.inflight)
        conn.inflight -= n
        for _ in range(n):
            if conn.cwnd < conn.ssthresh:
                conn.cwnd += 1.0
            else:
                conn.ca_acc += 1.0 / conn.cwnd
                if conn.ca_acc >= 1.0:
                    conn.cwnd += 1.0
                    conn.ca_acc -= 1.0
        self._pump(t, conn)

    def _server_loss(self, t: int, c: int, obj: int, seq: int, size: int) -> None:
        conn = self.conns[c]
        self.retransmissions += 1
        if seq > conn.last_cut_seq:                  # one reduction per window
            conn.ssthresh = max(conn.cwnd * self.m.beta, 2.0)
            conn.cwnd = conn.ssthresh
            conn.last_cut_seq = conn.sent_seq
        conn.sent_seq += 1
        self._send(t + self.m.core_delay_us, "dl", size, ("data", c, obj, conn.sent_seq))

    # -- the TrafficSource protocol ----------------------------------------------------
    def on_slot(self, view, t_us: int):
        t_end = int(t_us) + int(getattr(view, "slot_us", 1000))
        ev = self._events
        while ev and ev[0][0] < t_end:
            t, _, fn, args = heapq.heappop(ev)
            fn(t, *args)
        out = []
        box = self._outbox
        while box and box[0][0] < t_end:
            t, _, d, size, meta = heapq.heappop(box)
            t = max(t, int(t_us))
            while (d, t) in self._meta:
                t += 1
            self._meta[(d, t)] = (meta, size)
            out.append(Packet(t, self.ue, d, size))
        return out

    def on_delivered(self, dv) -> None:
        meta, size = self._meta.pop((dv.direction, int(dv.t_arrival_us)), (None, 0))
        if meta is None:
            return
        t = int(dv.t_delivered_us)
        kind = meta[0]
        if kind == "syn":
            self._at(t + self.m.core_delay_us, self._server_syn, meta[1])
        elif kind == "synack":
            c = meta[1]
            self._at(t, self._request, c, self.conns[c].obj)
        elif kind == "req":
            self._at(t + self.m.core_delay_us, self._server_request, meta[1], meta[2], meta[3])
        elif kind == "ack":
            self._at(t + self.m.core_delay_us, self._server_ack, meta[1], meta[2])
        elif kind == "data":
            self._at(t, self._client_data, meta[1], meta[2])

    def on_dropped(self, dr) -> None:
        meta, size = self._meta.pop((dr.direction, int(dr.t_arrival_us)), (None, 0))
        if meta is None:
            return
        t = int(dr.t_drop_us) + self.m.loss_detect_us
        if meta[0] == "data":
            self._at(t, self._server_loss, meta[1], meta[2], meta[3], size)
        else:   # a lost control packet or request: sent again, same meaning
            self._order += 1
            heapq.heappush(self._outbox, (t, self._order, dr.direction, size, meta))
