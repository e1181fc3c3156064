"""A .nemu bundle round-trips, and anything malformed is an InputError, never code execution."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import save

from neuralemu.errors import InputError
from neuralemu.scheduler_model.bundle import load_bundle, save_bundle
from test_model_runtime import random_bundle


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    bundle, _ = random_bundle()
    path = tmp_path_factory.mktemp("bundle") / "m.nemu"
    save_bundle(path, bundle)
    return path, bundle


def members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(path, files: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_round_trip(good):
    path, bundle = good
    loaded = load_bundle(path)
    assert loaded.model == bundle.model
    assert loaded.cell == bundle.cell
    for k, v in bundle.weights.items():
        np.testing.assert_array_equal(loaded.weights[k], v)
    np.testing.assert_allclose(loaded.user_std, bundle.user_std)
    assert sorted(members(path)) == ["config.json", "weights.safetensors"]


def expect_error(path, fragment):
    with pytest.raises(InputError) as info:
        load_bundle(path)
    assert fragment in str(info.value), str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.nemu", "not found")


def test_truncated(good, tmp_path):
    data = good[0].read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        p = tmp_path / f"t{cut}.nemu"
        p.write_bytes(data[:cut])
        expect_error(p, "")


def test_pickle_renamed(tmp_path):
    p = tmp_path / "evil.nemu"
    p.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    expect_error(p, "pickle")


def test_torch_save_renamed(tmp_path):
    p = tmp_path / "torch.nemu"
    torch.save({"w": torch.zeros(3)}, p)          # a zip holding a pickle
    expect_error(p, "exactly config.json and weights.safetensors")


def test_extra_and_missing_members(good, tmp_path):
    files = members(good[0])
    expect_error(write_zip(tmp_path / "extra.nemu", {**files, "run.py": b"print(1)"}), "exactly")
    expect_error(write_zip(tmp_path / "missing.nemu", {"config.json": files["config.json"]}),
                 "exactly")


def test_unknown_format_version(good, tmp_path):
    files = members(good[0])
    cfg = json.loads(files["config.json"])
    cfg["format_version"] = 99
    expect_error(write_zip(tmp_path / "v.nemu", {**files, "config.json": json.dumps(cfg).encode()}),
                 "format version")


def test_bad_json_and_bad_fields(good, tmp_path):
    files = members(good[0])
    expect_error(write_zip(tmp_path / "j.nemu", {**files, "config.json": b"{not json"}), "JSON")
    cfg = json.loads(files["config.json"])
    cfg["model"]["d_model"] = -4
    expect_error(write_zip(tmp_path / "d.nemu", {**files, "config.json": json.dumps(cfg).encode()}),
                 "model.d_model")
    cfg = json.loads(files["config.json"])
    cfg["features"]["user_std"] = [0.0] * len(cfg["features"]["user_std"])
    expect_error(write_zip(tmp_path / "s.nemu", {**files, "config.json": json.dumps(cfg).encode()}),
                 "user_std")


def test_wrong_shapes_and_keys(good, tmp_path):
    path, bundle = good
    files = members(path)
    w = {k: v.copy() for k, v in bundle.weights.items()}
    w["user_in.weight"] = np.zeros((3, 3), dtype=np.float32)
    expect_error(write_zip(tmp_path / "shape.nemu", {**files, "weights.safetensors": save(w)}),
                 "shape")
    w = {k: v.copy() for k, v in bundle.weights.items()}
    w.pop("mcs_head.bias")
    w["backdoor"] = np.zeros(1, dtype=np.float32)
    expect_error(write_zip(tmp_path / "keys.nemu", {**files, "weights.safetensors": save(w)}),
                 "missing")
    w = {k: v.copy() for k, v in bundle.weights.items()}
    w["ln_f.bias"][0] = np.nan
    expect_error(write_zip(tmp_path / "nan.nemu", {**files, "weights.safetensors": save(w)}), "NaN")
    expect_error(write_zip(tmp_path / "garbage.nemu",
                           {**files, "weights.safetensors": b"\xff" * 64}), "safetensors")


def test_zip_bomb_is_refused(good, tmp_path):
    files = members(good[0])
    bomb = write_zip(tmp_path / "bomb.nemu",
                     {"config.json": files["config.json"],
                      "weights.safetensors": b"\0" * (200 << 20)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < (1 << 20)
    expect_error(bomb, "limit")
    small_bomb = write_zip(tmp_path / "ratio.nemu",
                           {"config.json": files["config.json"] + b" " * (900 << 10),
                            "weights.safetensors": files["weights.safetensors"]},
                           zipfile.ZIP_DEFLATED)
    expect_error(small_bomb, "zip bomb")


def test_lying_size_header(good, tmp_path):
    data = bytearray(good[0].read_bytes())
    # corrupt one byte of the weights payload: the CRC check must catch it
    data[len(data) // 2] ^= 0xFF
    p = tmp_path / "crc.nemu"
    p.write_bytes(bytes(data))
    expect_error(p, "")
