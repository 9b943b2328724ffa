"""Split a command line into words like a POSIX shell, in time linear in its length.

The result is that of :func:`shlex.split` (POSIX mode, no comments): words are separated by
spaces, tabs and newlines; ``'...'`` keeps everything literally; ``"..."`` keeps everything
but a backslash before ``"`` or ``\\``; outside quotes a backslash keeps the next character.
:func:`shlex.split` grows each word one character at a time, which is quadratic in a word's
length; here each word is a run of regular-expression matches joined once.
"""

from __future__ import annotations

import re

#: One piece of a word: a run of plain characters, a single-quoted or double-quoted string, a
#: backslash with the character it escapes; or the separators between words.
_PIECE = re.compile(r"""
      (?P<plain>[^ \t\r\n'"\\]+)
    | '(?P<single>[^']*)'
    | "(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"
    | \\(?P<escaped>.)
    | (?P<space>[ \t\r\n]+)
    | (?P<open>['"])
    | (?P<dangling>\\)
""", re.VERBOSE | re.DOTALL)
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')


def split(text: str) -> list[str]:
    """The words of ``text``; ValueError for an unclosed quote or a trailing backslash."""
    words: list[str] = []
    word: list[str] | None = None
    for m in _PIECE.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            if word is not None:
                words.append("".join(word))
                word = None
            continue
        if kind == "open":
            raise ValueError("No closing quotation")
        if kind == "dangling":
            raise ValueError("No escaped character")
        piece = m.group(kind)
        if kind == "double":
            piece = _DOUBLE_ESCAPE.sub(r"\1", piece)
        if word is None:
            word = []
        word.append(piece)
    if word is not None:
        words.append("".join(word))
    return words
