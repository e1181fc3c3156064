"""Build workloads from plain dicts (scenario files, the API, the CLI), with clear errors.

Open loop: ``make_open_loop("web", {"think_mean_s": 3})`` -> a generator object
for :func:`neuralemu.workloads.generate`.

Closed loop: ``make_closed_loop({"kind": "gcc", "ue": 1, "direction": "dl",
"start_bitrate_bps": 2e6}, seed=1)`` -> a ``TrafficSource`` for
``engine.run(n, sources=[...])``. Keys other than ``kind``, ``ue`` and
``direction`` are the parameters of :class:`~neuralemu.workloads.gcc.GccParams`
or :class:`~neuralemu.workloads.tcp.TcpParams`.

Every bad kind, unknown key or bad value raises
:class:`~neuralemu.errors.InputError` naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from neuralemu.errors import InputError
from neuralemu.workloads.gaming import CloudGaming
from neuralemu.workloads.gcc import GccParams, GccSender
from neuralemu.workloads.openloop import Bulk, Cbr, OnOff
from neuralemu.workloads.tcp import TcpLikeSource, TcpParams
from neuralemu.workloads.web import WebBrowsing

OPEN_LOOP_KINDS = {cls.kind: cls for cls in (Bulk, Cbr, OnOff, CloudGaming, WebBrowsing)}
CLOSED_LOOP_KINDS = {"gcc": (GccSender, GccParams), "tcp": (TcpLikeSource, TcpParams)}


def _build(cls, params: Mapping[str, Any], source: str, prefix: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in params:
        if key not in fields:
            raise InputError(source, f"unknown parameter {key!r}; expected one of "
                                     f"{', '.join(sorted(fields))}", field=prefix + key)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise InputError(source, str(exc), field=prefix.rstrip(".") or None) from None


def make_open_loop(kind: str, params: Mapping[str, Any] | None = None, *,
                   source: str = "workload"):
    if kind not in OPEN_LOOP_KINDS:
        raise InputError(source, f"unknown workload kind {kind!r}; expected one of "
                                 f"{', '.join(sorted(OPEN_LOOP_KINDS))}", field="kind")
    return _build(OPEN_LOOP_KINDS[kind], dict(params or {}), source, "")


def make_closed_loop(spec: Mapping[str, Any], *, seed: int = 0, source: str = "workload"):
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in CLOSED_LOOP_KINDS:
        raise InputError(source, f"unknown closed-loop kind {kind!r}; expected one of "
                                 f"{', '.join(sorted(CLOSED_LOOP_KINDS))}", field="kind")
    if "ue" not in spec:
        raise InputError(source, "missing the user id", field="ue")
    try:
        ue = int(spec.pop("ue"))
    except (TypeError, ValueError):
        raise InputError(source, "the user id must be an integer", field="ue") from None
    direction = spec.pop("direction", "dl")
    if direction not in ("dl", "ul"):
        raise InputError(source, f"direction must be dl or ul, got {direction!r}",
                         field="direction")
    sender_cls, params_cls = CLOSED_LOOP_KINDS[kind]
    params = _build(params_cls, spec, source, "")
    if kind == "gcc":
        return sender_cls(ue, direction, params, seed=seed)
    return sender_cls(ue, direction, params)
