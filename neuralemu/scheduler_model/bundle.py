"""The ``.nemu`` model bundle: one zip holding exactly ``config.json`` + ``weights.safetensors``.

Loading never runs code from the file: the weights are safetensors (a JSON
header plus raw little-endian arrays) and the rest is JSON. Everything is
validated before use, and every problem is an :class:`InputError` naming the
file: not a zip (e.g. a pickle renamed to ``.nemu``), truncated or corrupt
(CRC), other or extra members, members larger than the limits or compressed
suspiciously well (zip bombs), an unknown format version, malformed JSON,
weights with missing / extra keys, wrong shapes or dtypes, or non-finite values.

``config.json``::

    {"format": "neuralemu-scheduler", "format_version": 1,
     "model":    {"n_user_features": 27, "n_cell_features": 8, "d_model": 32, ...},
     "features": {"user": [...names...], "cell": [...], "avg_windows_slots": [...],
                  "user_mean": [...], "user_std": [...], "cell_mean": [...], "cell_std": [...]},
     "cell":     {"slot_us": 500.0, "prbs_total": {"dl": 273}, "mcs_table": {...}, ...},
     "training": {... free-form: data, epochs, seed, losses ...}}
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralemu.errors import InputError
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model.dataset import CellConfig

FORMAT = "neuralemu-scheduler"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
MAX_FILE_BYTES = 256 << 20
MAX_CONFIG_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 128 << 20
MAX_COMPRESSION_RATIO = 100
MODEL_KEYS = {"n_user_features", "n_cell_features", "d_model", "n_heads", "n_layers", "d_mlp",
              "n_mcs"}
MODEL_LIMITS = {"d_model": 1024, "n_heads": 64, "n_layers": 32, "d_mlp": 8192, "n_mcs": 32,
                "n_user_features": 1024, "n_cell_features": 1024}


@dataclass
class Bundle:
    """A validated model: weights as float32 numpy arrays plus the parsed configuration."""

    model: dict                       # ModelConfig fields
    weights: dict[str, np.ndarray]
    cell: CellConfig
    user_mean: np.ndarray
    user_std: np.ndarray
    cell_mean: np.ndarray
    cell_std: np.ndarray
    training: dict
    source: str = ""

    def config_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": dict(self.model),
                "features": {"user": list(F.USER_FEATURE_NAMES), "cell": list(F.CELL_FEATURE_NAMES),
                             "avg_windows_slots": list(F.AVG_WINDOWS_SLOTS),
                             "user_mean": self.user_mean.tolist(), "user_std": self.user_std.tolist(),
                             "cell_mean": self.cell_mean.tolist(), "cell_std": self.cell_std.tolist()},
                "cell": self.cell.to_json(), "training": self.training}


def expected_shapes(model: dict) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of :class:`model.SchedulerModel` for a config (no torch needed)."""
    d, m, f, c = model["d_model"], model["d_mlp"], model["n_user_features"], model["n_cell_features"]
    shapes = {"user_in.weight": (d, f), "user_in.bias": (d,), "user_hidden.weight": (d, d),
              "user_hidden.bias": (d,), "cell_in.weight": (d, c), "cell_in.bias": (d,),
              "unused_token": (d,), "ln_f.weight": (d,), "ln_f.bias": (d,),
              "sched_head.weight": (1, d), "sched_head.bias": (1,),
              "share_head.weight": (1, d), "share_head.bias": (1,),
              "mcs_head.weight": (2 * model["n_mcs"] - 1, d),
              "mcs_head.bias": (2 * model["n_mcs"] - 1,)}
    for i in range(model["n_layers"]):
        p = f"blocks.{i}."
        shapes.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
                       p + "qkv.weight": (3 * d, d), p + "qkv.bias": (3 * d,),
                       p + "proj.weight": (d, d), p + "proj.bias": (d,),
                       p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                       p + "fc.weight": (m, d), p + "fc.bias": (m,),
                       p + "fc_out.weight": (d, m), p + "fc_out.bias": (d,)})
    return shapes


def save_bundle(path: str | Path, bundle: Bundle) -> Path:
    """Write ``bundle`` as one ``.nemu`` file (atomically: temp file, then rename)."""
    from safetensors.numpy import save

    path = Path(path)
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in bundle.weights.items()}
    config = json.dumps(bundle.config_json(), indent=1, sort_keys=True).encode()
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(CONFIG_NAME, config)
        zf.writestr(WEIGHTS_NAME, save(weights, metadata={"format": FORMAT}))
    tmp.replace(path)
    return path


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, src: str) -> bytes:
    if info.file_size > limit:
        raise InputError(src, f"'{info.filename}' declares {info.file_size} bytes, more than the "
                         f"limit of {limit}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(src, f"'{info.filename}' uses an unsupported compression method")
    if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
        raise InputError(src, f"'{info.filename}' expands {info.file_size} / "
                         f"{info.compress_size} times: refusing a possible zip bomb")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit or len(data) != info.file_size:
        raise InputError(src, f"'{info.filename}' is not the size its header declares")
    return data


def _floats(values, n: int, name: str, src: str, positive: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(src, f"'{name}' must be a list of numbers", field=name) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        raise InputError(src, f"'{name}' must be {n} finite{' positive' if positive else ''} "
                         "numbers", field=name)
    return arr.astype(np.float32)


def _parse_config(raw: bytes, src: str) -> dict:
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(src, f"config.json is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise InputError(src, "config.json must hold a JSON object")
    if cfg.get("format") != FORMAT:
        raise InputError(src, f"not a NeuralEmu scheduler bundle (format {cfg.get('format')!r})",
                         field="format")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(src, f"unknown bundle format version {version!r}; this NeuralEmu reads "
                         f"version {FORMAT_VERSION}", field="format_version")
    expected = {"format", "format_version", "model", "features", "cell", "training"}
    if set(cfg) != expected:
        raise InputError(src, f"config.json keys must be exactly {sorted(expected)}, got "
                         f"{sorted(cfg)}")
    model = cfg["model"]
    if not isinstance(model, dict) or set(model) != MODEL_KEYS:
        raise InputError(src, f"'model' must have exactly the keys {sorted(MODEL_KEYS)}",
                         field="model")
    for k, v in model.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MODEL_LIMITS[k]:
            raise InputError(src, f"must be an integer in 1..{MODEL_LIMITS[k]}, got {v!r}",
                             field=f"model.{k}")
    if model["d_model"] % model["n_heads"]:
        raise InputError(src, "d_model must be a multiple of n_heads", field="model.n_heads")
    feats = cfg["features"]
    feature_keys = {"user", "cell", "avg_windows_slots", "user_mean", "user_std", "cell_mean",
                    "cell_std"}
    if not isinstance(feats, dict) or set(feats) != feature_keys:
        raise InputError(src, f"'features' must have exactly the keys {sorted(feature_keys)}",
                         field="features")
    if feats.get("user") != list(F.USER_FEATURE_NAMES) or feats.get("cell") != list(
            F.CELL_FEATURE_NAMES) or feats.get("avg_windows_slots") != list(F.AVG_WINDOWS_SLOTS):
        raise InputError(src, "the model was trained on other features than this NeuralEmu "
                         "computes; retrain it", field="features")
    if model["n_user_features"] != F.N_USER_FEATURES or model["n_cell_features"] != F.N_CELL_FEATURES:
        raise InputError(src, "model feature counts do not match the feature lists",
                         field="model")
    if not isinstance(cfg["training"], dict):
        raise InputError(src, "'training' must be an object", field="training")
    return cfg


def _parse_weights(raw: bytes, model: dict, src: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        weights = load(raw)
    except Exception as exc:  # safetensors raises its own error types for any malformed header
        raise InputError(src, f"weights.safetensors is not a valid safetensors file: {exc}") from None
    shapes = expected_shapes(model)
    missing = sorted(set(shapes) - set(weights))
    extra = sorted(set(weights) - set(shapes))
    if missing or extra:
        raise InputError(src, f"weights do not match the model: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    for k, shape in shapes.items():
        w = weights[k]
        if w.dtype != np.float32:
            raise InputError(src, f"weight '{k}' must be float32, got {w.dtype}")
        if tuple(w.shape) != shape:
            raise InputError(src, f"weight '{k}' has shape {tuple(w.shape)}, the model needs "
                             f"{shape}")
        if not np.all(np.isfinite(w)):
            raise InputError(src, f"weight '{k}' holds NaN or infinite values")
    return weights


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a ``.nemu`` file; :class:`InputError` on anything unexpected."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError(src, "model file not found")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(src, f"model file is {size} bytes, more than the limit of "
                         f"{MAX_FILE_BYTES}")
    data = path.read_bytes()
    if not data.startswith(b"PK\x03\x04"):
        hint = " (it looks like a Python pickle; NeuralEmu never loads pickles)" \
            if data[:1] == b"\x80" else ""
        raise InputError(src, f"not a NeuralEmu model bundle: not a zip container{hint}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if sorted(names) != sorted([CONFIG_NAME, WEIGHTS_NAME]):
                raise InputError(src, f"a bundle holds exactly {CONFIG_NAME} and {WEIGHTS_NAME}, "
                                 f"this one holds {names[:8]}")
            by_name = {i.filename: i for i in infos}
            config_raw = _read_member(zf, by_name[CONFIG_NAME], MAX_CONFIG_BYTES, src)
            weights_raw = _read_member(zf, by_name[WEIGHTS_NAME], MAX_WEIGHTS_BYTES, src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError) as exc:
        raise InputError(src, f"corrupt or truncated model bundle: {exc}") from None
    cfg = _parse_config(config_raw, src)
    weights = _parse_weights(weights_raw, cfg["model"], src)
    feats = cfg["features"]
    nu, nc = F.N_USER_FEATURES, F.N_CELL_FEATURES
    cell = CellConfig.from_json(cfg["cell"], src)
    return Bundle(model=cfg["model"], weights=weights, cell=cell,
                  user_mean=_floats(feats.get("user_mean"), nu, "features.user_mean", src),
                  user_std=_floats(feats.get("user_std"), nu, "features.user_std", src, True),
                  cell_mean=_floats(feats.get("cell_mean"), nc, "features.cell_mean", src),
                  cell_std=_floats(feats.get("cell_std"), nc, "features.cell_std", src, True),
                  training=cfg["training"], source=src)


def finite(x: float) -> float | None:
    """A float for JSON (None for NaN/inf)."""
    return float(x) if math.isfinite(x) else None
