"""Real-telemetry training inputs: the UE-side log built from reconstruction."""

from __future__ import annotations

import numpy as np

from neuralemu.traffic_recon import reconstruct
from neuralemu.traffic_recon.train_real import _cqi_for_mcs, recon_ue_log
from recon_helpers import grants_table, rr_user


def test_recon_ue_log_buffers_and_cqi_proxy():
    rows = rr_user(7, range(100, 105), tbs_bits=8000, mcs=15)        # one 5000-byte burst
    log = recon_ue_log(reconstruct(grants_table(rows)))
    assert list(log.columns) == ["t_us", "ue", "direction", "buffer_bytes", "cqi"]
    assert log["t_us"].is_monotonic_increasing
    first = log.iloc[0]
    assert first["t_us"] == 99_000 and first["buffer_bytes"] == 5000    # arrival one slot early
    assert log["buffer_bytes"].iloc[-1] == 0                             # drained after the burst
    assert (np.diff(log["buffer_bytes"].to_numpy()) <= 0).all()
    assert set(log["cqi"]) == {int(_cqi_for_mcs()[15])}


def test_cqi_proxy_is_monotone():
    c = _cqi_for_mcs()
    assert c.min() >= 1 and c.max() <= 15 and (np.diff(c[:28]) >= 0).all()
