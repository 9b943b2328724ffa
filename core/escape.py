"""Field values made safe for a text alert line: no character in them can end the line,
rewrite the terminal, or pass for an escape written by the agent.

A process name, command line or file name is the attacker's; printed raw, ``"x\\n12:00:00.0:
Critical forged"`` is a second, forged alert line, and ``ESC[2K`` erases the real one on a
terminal.  :func:`escape_text` rewrites, in a value:

- the backslash as ``\\\\`` (so a ``\\n`` the attacker typed prints as ``\\\\n``, never as an
  escape of ours);
- ``\\n``, ``\\r``, ``\\t`` as themselves; the other C0 controls and DEL as ``\\xHH``;
- C1 controls (U+0080-U+009F, NEL among them), the Unicode line and paragraph separators
  (U+2028, U+2029) and the bidirectional controls (U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069, which reorder what a terminal shows) as ``\\uHHHH``;
- a byte that was not UTF-8 (decoded by ``surrogateescape`` as U+DC80-U+DCFF) as ``\\xHH``, its
  own value, and any other lone surrogate as ``\\uHHHH``; so the result always encodes as UTF-8.

Everything else, printable non-ASCII text included, is left as it is.
"""

from __future__ import annotations

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x2028, 0x202F),
           *range(0x2066, 0x206A), *range(0xD800, 0xE000)]


def _escape(n: int) -> str:
    named = _NAMED.get(chr(n))
    if named is not None:
        return named
    if n < 0x80:
        return f"\\x{n:02x}"
    if 0xDC80 <= n <= 0xDCFF:                    # surrogateescape: the raw byte n - 0xDC00
        return f"\\x{n - 0xDC00:02x}"
    return f"\\u{n:04x}"


_TABLE = {n: _escape(n) for n in [0x5C, *_UNSAFE]}


def escape_text(value: str) -> str:
    """``value`` with every character that could break or fake a text line escaped."""
    if "\\" not in value and value.isprintable():
        return value            # the common case, in C: every character escaped is unprintable
    return value.translate(_TABLE)
