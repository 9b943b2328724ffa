"""Where the project's files are: the repository, and Falco's files beside it (``SHARED``,
``$SYSWARDEN_SHARED`` when the checkout is not beside them) with their compat rule files."""

from __future__ import annotations

import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("SYSWARDEN_SHARED", REPO.parent / "shared"))
COMPAT = SHARED / "compat"
