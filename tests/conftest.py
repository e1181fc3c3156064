"""Shared fixtures: paths to the project and to the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
os.environ.setdefault("NEURALEMU_QUIET", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the project: real public measurements (read-only)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; it must sit beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nrscope_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "nrscope").glob("*.csv"))
    assert files, "no NR-Scope CSVs in shared data"
    return files


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root for network namespaces and eBPF")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
