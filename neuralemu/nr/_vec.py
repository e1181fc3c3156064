"""Scalar-or-array plumbing shared by the ``nr`` functions (private).

Every public function in ``neuralemu.nr`` takes a Python/numpy scalar or a
numpy array (or anything ``np.asarray`` accepts). A scalar in gives a plain
Python ``int``/``float`` out; an array in gives a numpy array of the same shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_scalar(x: Any) -> bool:
    return np.ndim(x) == 0


def as_int_array(x: Any, name: str) -> np.ndarray:
    """``x`` as an int64 array; ValueError when it holds non-integral values."""
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise ValueError(f"{name} must be an integer, got {_show(x)}")
        return arr.astype(np.int64)
    try:
        out = arr.astype(np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {_show(x)}") from None
    if not np.array_equal(out, arr.astype(np.float64)):
        raise ValueError(f"{name} must be an integer, got {_show(x)}")
    return out


def as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {_show(x)}") from None


def out(result: np.ndarray, scalar: bool) -> Any:
    """Back to a Python scalar when the input was a scalar."""
    if scalar:
        return np.asarray(result).item()
    return result


def bad_values(arr: np.ndarray, ok: np.ndarray) -> str:
    """The first few offending values, for an error message."""
    bad = np.unique(np.asarray(arr)[~ok])
    shown = ", ".join(str(v) for v in bad[:5].tolist())
    return shown + (", ..." if bad.size > 5 else "")


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
