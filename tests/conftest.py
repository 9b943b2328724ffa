"""Shared test set-up: the compat rule files as a fixture.  Helpers are in
:mod:`syswarden.testing` (public) and ``tests/helpers/`` (the project's own); no test imports
from a conftest."""

from __future__ import annotations

import pathlib

import pytest

from tests.helpers.paths import COMPAT


@pytest.fixture
def compat() -> pathlib.Path:
    if not COMPAT.is_dir():
        pytest.fail(f"compat rule files not found at {COMPAT} (set SYSWARDEN_SHARED)")
    return COMPAT
