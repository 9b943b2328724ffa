"""Struct member offsets from the running kernel's BTF."""

from __future__ import annotations

import os
import struct

import pytest

from syswarden.plugins.sources.ebpf.btf import VMLINUX, Btf, kernel_offsets


def test_offsets_of_the_running_kernel():
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    off = kernel_offsets()
    assert set(off) >= {"OFF_TASK_SIGNAL", "OFF_SIGNAL_TTY", "OFF_TTY_INDEX", "OFF_TTY_DRIVER",
                        "OFF_TASK_FILES", "OFF_FILES_FDT", "OFF_FDT_FD", "OFF_FILE_F_MODE",
                        "OFF_FILE_PRIVATE", "OFF_SOCKET_SK", "OFF_SKC_FAMILY", "OFF_SKC_NUM",
                        "OFF_SKC_RCV_SADDR", "OFF_SKC_V6_RCV_SADDR", "OFF_SKC_DPORT",
                        "OFF_SKC_DADDR", "OFF_SKC_V6_DADDR"}
    assert all(isinstance(v, int) and 0 <= v < 16384 for v in off.values())
    # members of one struct lie at distinct offsets (their order differs between kernels)
    for prefix in ("OFF_TTY_", "OFF_SKC_", "OFF_FILE_"):
        same = [v for k, v in off.items() if k.startswith(prefix)]
        assert len(same) == len(set(same)) > 1


def _btf(types: bytes, strings: bytes) -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_members_inside_anonymous_unions_and_missing_ones():
    strings = b"\0outer\0a\0b\0int\0"
    t_int = struct.pack("<III", 15, (1 << 24), 4) + struct.pack("<I", 32)         # id 1
    union = struct.pack("<III", 0, (5 << 24) | 1, 4) + struct.pack("<III", 9, 1, 0)  # id 2
    outer = struct.pack("<III", 1, (4 << 24) | 2, 16) + \
        struct.pack("<III", 7, 1, 0) + struct.pack("<III", 0, 2, 64)                # id 3
    btf = Btf(_btf(t_int + union + outer, strings))
    assert btf.member_offset("outer", "a") == 0
    assert btf.member_offset("outer", "b") == 8          # through the anonymous union at 64 bits
    assert btf.member_offset("outer", "nope") is None
    assert btf.member_offset("absent", "a") is None
    assert kernel_offsets("/nonexistent") == {}
