"""Shared test set-up: paths to the compat rule files and small helpers."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("SYSWARDEN_SHARED", REPO.parent / "shared"))
COMPAT = SHARED / "compat"
SYSWARDEN = [sys.executable, "-m", "syswarden.core.cli"]


@pytest.fixture
def compat() -> pathlib.Path:
    if not COMPAT.is_dir():
        pytest.fail(f"compat rule files not found at {COMPAT} (set SYSWARDEN_SHARED)")
    return COMPAT
