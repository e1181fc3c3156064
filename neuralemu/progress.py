"""Progress bars for long work, on stderr, quiet when NEURALEMU_QUIET is set."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_disabled() -> bool:
    return bool(os.environ.get("NEURALEMU_QUIET"))


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             unit: str = "it", **kwargs) -> tqdm:
    """A tqdm bar on stderr with NeuralEmu's defaults."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr,
                disable=progress_disabled(), dynamic_ncols=True, leave=False, **kwargs)
