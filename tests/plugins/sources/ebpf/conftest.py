"""Set-up of the real-kernel eBPF tests; their helpers are in tests/helpers/ebpf.py."""

from __future__ import annotations

import os

from syswarden.plugins.sources.ebpf import loader

if os.environ.get("SYSWARDEN_GUEST"):
    # the test guest (tests/vm) is emulated: bcc compiles ten times slower, and slower again
    # on a loaded host
    loader.LOAD_TIMEOUT = 900.0
