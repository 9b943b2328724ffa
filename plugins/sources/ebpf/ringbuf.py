"""A BPF ring buffer read from Python through mmap, without a callback per record.

bcc's ``ring_buffer_consume`` calls a ctypes callback for every record, which costs more
than decoding the record itself.  The ring's memory can be mapped instead (the kernel's
documented layout, ``kernel/bpf/ringbuf.c``): one read-write page holding the consumer
position, then one read-only page holding the producer position followed by the data area,
mapped twice in a row so that a record crossing the end is contiguous.  Each record starts
with an 8-byte header (``u32`` length with the BUSY and DISCARD bits, ``u32`` page offset) and
is padded to 8 bytes.

:meth:`MmapRing.consume` decodes every committed record in place (``decode(buffer, offset)``),
then publishes the new consumer position so the kernel can reuse the space.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any, Callable

BUSY = 1 << 31
DISCARD = 1 << 30
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class MmapRing:
    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size must be a power of two, not {size}")
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=page)
        self._data_off = page
        self.records = 0     # records decoded (committed and not discarded)

    def consume(self, decode: Callable[[Any, int], Any], out: list, limit: int = 1 << 30) -> int:
        """Decode up to ``limit`` records into ``out``; returns how many were read."""
        prod_mm, cons_mm = self._prod, self._cons
        cons = _U64.unpack_from(cons_mm, 0)[0]
        prod = _U64.unpack_from(prod_mm, 0)[0]
        mask, base = self.mask, self._data_off
        unpack_u32 = _U32.unpack_from
        append = out.append
        n = 0
        while cons < prod and n < limit:
            off = base + (cons & mask)
            length = unpack_u32(prod_mm, off)[0]
            if length & BUSY:
                break                     # the producer has not committed it yet
            size = length & ~(BUSY | DISCARD)
            if not length & DISCARD:
                ev = decode(prod_mm, off + 8)
                if ev is not None:
                    append(ev)
                n += 1
            cons += (size + 8 + 7) & ~7
            if n & 0xFFF == 0:            # let the kernel reuse space during long drains
                _U64.pack_into(cons_mm, 0, cons)
        _U64.pack_into(cons_mm, 0, cons)
        self.records += n
        return n

    def skip(self) -> None:
        """Give the kernel back everything written, unread (benchmarks: the kernel side's cost
        without a reader's).  A record still being written is safe: the kernel does not reuse
        space before the oldest record in progress is committed."""
        _U64.pack_into(self._cons, 0, _U64.unpack_from(self._prod, 0)[0])

    def pending(self) -> int:
        """Bytes written by the kernel and not yet consumed."""
        return _U64.unpack_from(self._prod, 0)[0] - _U64.unpack_from(self._cons, 0)[0]

    def close(self) -> None:
        self._prod.close()
        self._cons.close()
