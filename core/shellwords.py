"""Split a command line into words like a POSIX shell, in time linear in its length.

The result is that of :func:`shlex.split` (POSIX mode, no comments): words are separated by
spaces, tabs and newlines; ``'...'`` keeps everything literally; ``"..."`` keeps everything
but a backslash before ``"`` or ``\\``; outside quotes a backslash keeps the next character.
:func:`shlex.split` grows each word one character at a time, which is quadratic in a word's
length; here a regular expression finds each word whole, and only a word with quotes or
backslashes is taken apart (a command line without any is split by spaces alone).
"""

from __future__ import annotations

import re

_SPACES = re.compile(r"[ \t\r\n]+")
#: A word: runs of plain characters, single-quoted and double-quoted strings, escaped characters.
_WORD = re.compile(r"""(?:[^ \t\r\n'"\\]+|'[^']*'|"[^"\\]*(?:\\.[^"\\]*)*"|\\.)+""", re.DOTALL)
#: One piece of a word that has quotes or backslashes.
_PIECE = re.compile(r"""
      (?P<plain>[^'"\\]+)
    | '(?P<single>[^']*)'
    | "(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"
    | \\(?P<escaped>.)
""", re.VERBOSE | re.DOTALL)
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')
_SPECIAL = ("'", '"', "\\")


def split(text: str) -> list[str]:
    """The words of ``text``; ValueError for an unclosed quote or a trailing backslash."""
    if not any(c in text for c in _SPECIAL):
        return [w for w in _SPACES.split(text) if w]
    words: list[str] = []
    pos, end = 0, len(text)
    while True:
        gap = _SPACES.match(text, pos)
        if gap is not None:
            pos = gap.end()
        if pos >= end:
            return words
        m = _WORD.match(text, pos)
        if m is None:
            raise ValueError("No escaped character" if text[pos] == "\\"
                             else "No closing quotation")
        word, pos = m.group(), m.end()
        words.append(_unquote(word) if any(c in word for c in _SPECIAL) else word)


def _unquote(word: str) -> str:
    pieces = []
    for m in _PIECE.finditer(word):
        kind = m.lastgroup
        piece = m.group(kind)
        pieces.append(_DOUBLE_ESCAPE.sub(r"\1", piece) if kind == "double" else piece)
    return "".join(pieces)
