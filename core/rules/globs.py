"""Shell globs as Falco matches them: glibc's ``fnmatch``, with no flag for ``glob`` (``*`` and
``?`` match ``/`` too), ``FNM_CASEFOLD`` for ``iglob``, ``FNM_PATHNAME`` for ``pmatch``'s
globs (matched within a path component).

A pattern is read once into tokens, each one character of the value or a ``*``:

- ``?`` is any character; ``\\x`` is ``x`` (a trailing ``\\`` matches nothing);
- ``[...]`` a class (``[!...]`` or ``[^...]`` negated; a first ``]`` is a member; ranges
  ``a-z``; a backslash escapes inside it too, ``[\\]]`` is ``]``; POSIX classes such as
  ``[[:digit:]]``); a ``[`` that no ``]`` closes is the character ``[``.

:func:`glob_regex` writes the tokens as one regex (``pmatch``'s matcher).  :class:`Glob`, a ``glob``/``iglob`` constant, matches without that
regex: a regex with several ``.*`` backtracks over every way to split the value
(``*/*/*/*.so`` against a path of a thousand ``a/``: minutes), and the value is the
attacker's.  It matches the star-free pieces between the ``*`` in order, each at its first
place (a piece is of fixed length: it never backtracks), which is a glob's whole meaning when
``*`` matches any text: linear in the value for each piece.
"""

from __future__ import annotations

import re
from typing import Any

STAR = None          # a ``*`` among the tokens
ANY = "?"            # a ``?``

_POSIX = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
          "lower": "a-z", "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f",
          "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), "cntrl": "\\x00-\\x1f\\x7f",
          "print": " -~", "graph": "!-~"}
_NOTHING = "(?!)"


def _member(c: str) -> str:
    return "\\" + c if c in "\\]^-[&~|" else c


def _class(pattern: str, i: int, pathname: bool) -> tuple[str, int] | None:
    """The class starting at ``pattern[i] == '['``: (its regex, the index after its ``]``);
    None when no ``]`` closes it."""
    j = i + 1
    negate = pattern[j:j + 1] in ("!", "^")
    j += negate
    parts: list[str] = []
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            break
        first = False
        if c == "[" and pattern[j + 1:j + 2] == ":":
            end = pattern.find(":]", j + 2)
            name = pattern[j + 2:end] if end > 0 else None
            if name in _POSIX:
                parts.append(_POSIX[name])
                j = end + 2
                continue
        if c == "\\" and j + 1 < len(pattern):
            j += 1
            c = pattern[j]
        lo, j = c, j + 1
        if pattern[j:j + 1] == "-" and j + 1 < len(pattern) and pattern[j + 1] != "]":
            hi = pattern[j + 1]
            j += 2
            if hi == "\\" and j < len(pattern):
                hi, j = pattern[j], j + 1
            if lo <= hi:                       # a reversed range holds nothing (glibc)
                parts.append(f"{_member(lo)}-{_member(hi)}")
            continue
        parts.append(_member(lo))
    else:
        return None
    body = "".join(parts)
    if negate:
        return ("[^" + body + ("/" if pathname else "") + "]" if body or pathname
                else "[\\s\\S]"), j + 1
    return ("[" + body + "]" if body else _NOTHING), j + 1


def tokens(pattern: str, pathname: bool = False) -> list[str | None]:
    """``pattern`` as :data:`STAR`, :data:`ANY` and one-character regexes."""
    out: list[str | None] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if not out or out[-1] is not STAR:         # ** is *
                out.append(STAR)
        elif c == "?":
            out.append(ANY)
        elif c == "\\":
            i += 1
            # a trailing backslash: glibc's fnmatch fails (a pattern error), nothing matches
            out.append(re.escape(pattern[i]) if i < len(pattern) else _NOTHING)
        elif c == "[" and (got := _class(pattern, i, pathname)) is not None:
            out.append(got[0])
            i = got[1]
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return out


def _regex_of(toks: list[str | None], pathname: bool) -> str:
    star, one = ("[^/]*", "[^/]") if pathname else (".*", ".")
    return "".join(star if t is STAR else one if t == ANY else t for t in toks)


def glob_regex(pattern: str, icase: bool, prefix: bool = False,
               pathname: bool = False) -> re.Pattern:
    """The glob as one regex, to ``fullmatch``; ``pathname`` keeps ``*`` and ``?`` (and a
    negated class) inside one path component, as ``FNM_PATHNAME`` does; ``prefix`` lets
    whole components follow."""
    tail = "(?:/.*)?" if prefix else ""
    return re.compile(_regex_of(tokens(pattern, pathname), pathname) + tail,
                      re.DOTALL | (re.IGNORECASE if icase else 0))


def _literal_runs(toks: list[str | None]) -> tuple[str, ...]:
    """The literal characters of a glob's tokens, split at every other token."""
    runs, cur = [], ""
    for t in toks:
        if t is STAR or t == ANY or t.startswith("[") or t == _NOTHING:
            runs.append(cur)
            cur = ""
        else:
            cur += t[-1]                      # re.escape(c): c, or a backslash and c
    return (*runs, cur)


class Glob:
    """A ``glob``/``iglob`` constant: called with a value, whether the whole value matches.
    ``regex`` is the same glob as one regex; ``literal_runs`` its text between wildcards."""

    def __init__(self, pattern: str, icase: bool) -> None:
        flags = re.DOTALL | (re.IGNORECASE if icase else 0)
        toks = tokens(pattern)
        self.pattern = pattern
        self.icase = icase
        self.regex = re.compile(_regex_of(toks, False), flags)
        #: the text between its wildcards (``*``, ``?``, a class), in order; the first is the
        #: text before any (empty when it starts with one): what the open prefilter tests
        self.literal_runs = _literal_runs(toks)
        pieces: list[list[str | None]] = [[]]
        for t in toks:
            if t is STAR:
                pieces.append([])
            else:
                pieces[-1].append(t)
        self._pieces = tuple(re.compile(_regex_of(p, False), flags) for p in pieces)
        self._last_len = len(pieces[-1])

    def __call__(self, v: Any) -> bool:
        v = v if isinstance(v, str) else str(v)
        pieces = self._pieces
        if len(pieces) == 1:
            return pieces[0].fullmatch(v) is not None
        m = pieces[0].match(v)
        if m is None:
            return False
        pos = m.end()
        for p in pieces[1:-1]:
            m = p.search(v, pos)
            if m is None:
                return False
            pos = m.end()
        start = len(v) - self._last_len
        return start >= pos and pieces[-1].fullmatch(v, start) is not None

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"
