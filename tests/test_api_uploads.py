"""Hostile and valid uploads, checked without a server (the HTTP path is in test_api_http)."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest

from neuralemu.api.uploads import UploadStore, inspect_bundle, safe_name
from neuralemu.errors import InputError


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save
    return save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})


def make_bundle(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def good_bundle() -> bytes:
    """A real, valid bundle written by the scheduler_model package (random weights)."""
    return valid_bundle_bytes()


def valid_bundle_bytes() -> bytes:
    import tempfile
    from pathlib import Path

    import torch

    from neuralemu.scheduler_model import bundle as B
    from neuralemu.scheduler_model import features as F
    from neuralemu.scheduler_model.dataset import CellConfig
    from neuralemu.scheduler_model.model import ModelConfig, SchedulerModel

    cfg = ModelConfig(n_user_features=F.N_USER_FEATURES, n_cell_features=F.N_CELL_FEATURES,
                      d_model=8, n_heads=2, n_layers=1, d_mlp=16)
    torch.manual_seed(0)
    weights = {k: v.detach().numpy().copy() for k, v in SchedulerModel(cfg).state_dict().items()}
    cell = CellConfig(slot_us=500.0, period_slots=5, directions=["dl"], prbs_total={"dl": 273},
                      mcs_table={"dl": "qam256"}, layers={"dl": 2}, max_ues={"dl": 8},
                      slot_types={"dl": {str(i): "D" for i in range(5)}},
                      symbols={"dl": {str(i): 12 for i in range(5)}},
                      **({"re_per_prb": {"dl": {"12": 132}}}
                         if "re_per_prb" in CellConfig.__dataclass_fields__ else {}))
    nu, nc = F.N_USER_FEATURES, F.N_CELL_FEATURES
    bundle = B.Bundle(model=cfg.to_json(), weights=weights, cell=cell,
                      user_mean=np.zeros(nu), user_std=np.ones(nu),
                      cell_mean=np.zeros(nc), cell_std=np.ones(nc), training={})
    with tempfile.TemporaryDirectory() as d:
        return B.save_bundle(Path(d) / "m.nemu", bundle).read_bytes()


def test_valid_bundle_is_accepted(tmp_path):
    store = UploadStore(tmp_path)
    obj = store.add_model("m1", good_bundle())
    assert obj.summary["members"] == ["config.json", "weights.safetensors"]
    assert (tmp_path / "models" / "m1.nemu").is_file()


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", "x" * 65, "a\\b", ".hidden", "nul\x00"])
def test_bad_names_are_refused(name):
    with pytest.raises(InputError) as exc:
        safe_name(name)
    assert exc.value.field == "name"


def test_pickle_is_refused():
    with pytest.raises(InputError, match="pickle"):
        inspect_bundle(pickle.dumps({"a": 1}))


def test_pickle_member_is_refused():
    with pytest.raises(InputError, match="only .safetensors and .json"):
        inspect_bundle(make_bundle({"model.safetensors": safetensors_bytes(),
                                    "data.pkl": pickle.dumps([1, 2])}))


def test_pickle_disguised_as_safetensors_is_refused():
    with pytest.raises(InputError):
        inspect_bundle(make_bundle({"model.safetensors": pickle.dumps([1, 2])}))


def test_zip_bomb_is_refused():
    bomb = make_bundle({"model.safetensors": b"\0" * (40 << 20)})
    assert len(bomb) < 100_000
    with pytest.raises(InputError, match="zip bomb"):
        inspect_bundle(bomb)


def test_path_traversal_member_is_refused():
    with pytest.raises(InputError, match="not allowed"):
        inspect_bundle(make_bundle({"../../etc/model.safetensors": safetensors_bytes()}))


def test_lying_safetensors_header_is_refused():
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    blob = struct.pack("<Q", len(header)) + header + b"\0" * 8
    with pytest.raises(InputError, match="outside"):
        inspect_bundle(make_bundle({"model.safetensors": blob}))


def test_not_a_zip_is_refused():
    with pytest.raises(InputError, match="not a .nemu"):
        inspect_bundle(b"hello world")


def test_generic_but_wrong_bundle_is_refused_by_project_loader(tmp_path):
    store = UploadStore(tmp_path)
    with pytest.raises(InputError) as exc:
        store.add_model("m1", make_bundle({"model.safetensors": safetensors_bytes(),
                                           "config.json": b"{}"}))
    assert exc.value.field == "file" and "/tmp" not in str(exc.value)
    assert list((tmp_path / "models").iterdir()) == []


def test_failed_model_upload_leaves_nothing(tmp_path):
    store = UploadStore(tmp_path)
    with pytest.raises(InputError):
        store.add_model("m1", b"PK\x03\x04garbage")
    assert store.models == {}
    assert list((tmp_path / "models").iterdir()) == []


def test_trace_upload_mahimahi(tmp_path):
    store = UploadStore(tmp_path)
    obj = store.add_trace("mm", "mahimahi", b"1\n1\n2\n5\n")
    assert obj.kind == "mahimahi"
    assert store.trace_path("mm").is_file()


def test_bad_trace_names_line_and_leaves_nothing(tmp_path):
    store = UploadStore(tmp_path)
    with pytest.raises(InputError) as exc:
        store.add_trace("mm", "mahimahi", b"1\n2\nabc\n")
    assert exc.value.line == 3 or "abc" in str(exc.value)
    assert store.traces == {}
    assert [p for p in (tmp_path / "traces").iterdir()] == []


def test_real_nrscope_trace_is_accepted(tmp_path, nrscope_files):
    store = UploadStore(tmp_path)
    small = min(nrscope_files, key=lambda p: p.stat().st_size)
    obj = store.add_trace("nr", "nrscope", small.read_bytes())
    assert obj.summary.get("rows", 0) > 0


def test_unknown_trace_kind(tmp_path):
    with pytest.raises(InputError) as exc:
        UploadStore(tmp_path).add_trace("x", "pcap", b"1\n")
    assert exc.value.field == "kind"
