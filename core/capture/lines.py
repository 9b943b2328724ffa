"""The lines of a capture file, read so that damage loses as little as possible.

- A line longer than :data:`MAX_LINE_BYTES` is never held whole: it is read past up to its
  newline in pieces and reported as skipped.
- A ``.gz`` file is decompressed here rather than by :mod:`gzip`, so that at a corrupt byte
  everything before it still comes out: the piece of input in which zlib finds the fault is fed
  again, one byte at a time, to a copy of the decompressor as it was before that piece.
  (:class:`gzip.GzipFile` loses what it decompressed of the failing 8 KB read.)
- A truncated or corrupt ``.gz``, or a read error, ends the lines: after every complete line
  before the damage has been given, :class:`DamagedStream` is raised with the number of the line
  it cut.
"""

from __future__ import annotations

import io
import zlib
from typing import IO, Callable, Iterator

#: The longest line read (16 MiB): more than the arguments and environment of a process can hold
#: (Linux's limit for both together is a quarter of the stack limit, 2 MiB by default, at most
#: 6 MiB), with its ancestors and JSON's escapes.
MAX_LINE_BYTES = 16 << 20
#: Compressed bytes fed to zlib at a time.
_CHUNK = 16 << 10
#: Decompressed bytes asked of zlib at a time (a small .gz may expand a thousand times).
_OUT = 256 << 10
_GZIP = zlib.MAX_WBITS | 16

LineError = Callable[[int, str], None]


class DamagedStream(Exception):
    """The file cannot be read past line ``lineno`` (which is lost, as is the rest)."""

    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(reason)
        self.lineno = lineno
        self.reason = reason


class _Gunzip(io.RawIOBase):
    """The decompressed bytes of a gzip file (members one after another, like gzip -d)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(_GZIP)
        self._started = False
        self._out = b""
        self._pos = 0
        self._error: Exception | None = None
        self._input = b""  # compressed bytes not yet given to zlib

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def, override]
        while self._pos >= len(self._out):
            if self._error is not None:
                raise self._error
            if not self._fill():
                return 0
        n = min(len(buf), len(self._out) - self._pos)
        buf[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _fill(self) -> bool:
        """Decompress some more into ``_out``; False at the clean end of the file."""
        if self._z.eof:  # a member ended: another may follow
            rest = self._z.unused_data + self._input
            self._input = b""
            if not rest.strip(b"\0"):
                rest = self._raw.read(_CHUNK)
                if not rest.strip(b"\0"):
                    return False  # gzip -d accepts zeros after the last member, too
            self._z = zlib.decompressobj(_GZIP)
            self._input = rest
        if not self._input:
            self._input = self._raw.read(_CHUNK)
            if not self._input and not self._started:
                return False  # an empty file
        self._started = True
        before = self._z.copy()
        data = self._input
        try:
            self._out = self._z.decompress(data, _OUT)
        except zlib.error as exc:
            self._out = _salvage(before, data)
            self._error = zlib.error(f"the compressed stream is corrupt ({exc})")
        else:
            self._input = self._z.unconsumed_tail
            if not data and not self._out and not self._z.eof:
                self._error = EOFError("the compressed stream stops before its end (the file "
                                       "is truncated)")
        self._pos = 0
        return True


def _salvage(z, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """What ``z`` decompresses of ``data`` before the byte it fails on."""
    out = []
    for i in range(len(data)):
        try:
            out.append(z.decompress(data[i:i + 1]))
        except zlib.error:
            break
    return b"".join(out)


def open_lines(path: str) -> IO[bytes]:
    """The file as a binary stream (decompressed here when its name ends in ``.gz``);
    OSError when it cannot be opened."""
    raw = open(path, "rb")
    if not path.endswith(".gz"):
        return raw
    return io.BufferedReader(_Gunzip(raw), _CHUNK)


def read_lines(fh: IO[bytes], on_skip: LineError) -> Iterator[tuple[int, bytes]]:
    """``(lineno, line)`` for every line of ``fh``; a line over MAX_LINE_BYTES goes to
    ``on_skip(lineno, why)`` instead.  DamagedStream when the file cannot be read further."""
    lineno = 0
    try:
        while True:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            lineno += 1
            if len(line) <= MAX_LINE_BYTES:
                yield lineno, line
                continue
            size = len(line)
            while not line.endswith(b"\n"):
                line = fh.readline(_CHUNK)
                if not line:
                    break
                size += len(line)
            on_skip(lineno, f"line longer than {MAX_LINE_BYTES} bytes ({size})")
    except (OSError, EOFError, zlib.error) as exc:
        raise DamagedStream(lineno + 1, str(exc) or type(exc).__name__) from None
