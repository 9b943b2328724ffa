"""Falco 0.44's transformers of several arguments: ``join``, ``concat`` and ``getopt``.

Each is declared once in :data:`CALLS` with the shape of the arguments it takes (checked when
rules load, a :class:`CallError` naming the fault) and a function that builds its reader from
its arguments' readers.  An argument is :class:`Arg`: a reader, whether it gives several
values (a list written ``(a, b)`` or a multi-valued field) and whether it gives text.  As in
Falco (libsinsp ``sinsp_filtercheck_multivalue_transformer.cpp``):

- ``join(sep, list)``: the list's values as text, ``sep`` between them;
- ``concat(a, b, ...)``: two or more strings, one after the other;
- ``getopt(args, optstring)``: ``args`` read as getopt(3) reads a command line with
  ``optstring``: each option, then its argument if it takes one (``-t`` missing its argument:
  an empty value); an unknown option is ``?``; it stops at ``--`` or at the first word that is
  not an option, skips long options (``--exec``).  ``getopt(...)[t]`` is the argument of the
  last ``-t`` (or ``t`` itself when it takes none), unknown when there is no ``-t``.

A value that cannot be read (an argument's field unknown for the event) makes the result
unknown, so the comparison is false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..fields import FieldType

Read = Callable[[Any], Any]


class CallError(ValueError):
    """Arguments a transformer cannot take; the message is the whole reason."""


@dataclass(frozen=True)
class Arg:
    read: Read
    many: bool
    text: bool          # a string (a field of a string type, or a literal)


def as_text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _values(arg: Arg, e: Any) -> tuple | None:
    vs = arg.read(e)
    if vs is None:
        return None
    return tuple(vs) if arg.many else (vs,)


def _join(args: list[Arg], key: str | None) -> tuple[Read, bool]:
    if len(args) != 2:
        raise CallError("join() takes 2 arguments: a separator and a list")
    sep, items = args
    if sep.many:
        raise CallError("join()'s first argument (the separator) must be one value, not a list")
    if not items.many:
        raise CallError("join()'s second argument must be a list")

    def read(e: Any) -> str | None:
        s, vs = sep.read(e), items.read(e)
        if s is None or vs is None or any(v is None for v in vs):
            return None
        return as_text(s).join(as_text(v) for v in vs)
    return read, False


def _concat(args: list[Arg], key: str | None) -> tuple[Read, bool]:
    if len(args) < 2:
        raise CallError("concat() takes 2 arguments or more")
    if any(a.many or not a.text for a in args):
        raise CallError("concat()'s arguments must be strings, not lists or numbers")
    readers = tuple(a.read for a in args)

    def read(e: Any) -> str | None:
        out = []
        for r in readers:
            v = r(e)
            if v is None:
                return None
            out.append(as_text(v))
        return "".join(out)
    return read, False


def parse_optstring(optstring: str) -> dict[str, bool]:
    """getopt(3)'s optstring: each option character, and whether it takes an argument."""
    opts: dict[str, bool] = {}
    body = optstring[1:] if optstring.startswith(":") else optstring
    i = 0
    while i < len(body):
        c = body[i]
        if c != ":":
            takes = body[i + 1:i + 2] == ":"
            opts[c] = takes
            i += 1 if takes else 0
        i += 1
    return opts


def getopt(argv: tuple[str, ...], opts: dict[str, bool]
           ) -> list[tuple[str, str | None, str | None]]:
    """(as listed, the option, its argument) in order: ``(c, c, None)`` for an option
    without argument, ``(c, c, value)`` with one, ``("", c, None)`` for one missing its
    argument, ``("?", None, None)`` for an unknown option."""
    out: list[tuple[str, str | None, str | None]] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            break
        if len(word) > 2 and word.startswith("--"):
            i += 1
            continue
        if len(word) < 2 or not word.startswith("-"):
            break
        for j in range(1, len(word)):
            c = word[j]
            if c not in opts:
                out.append(("?", None, None))
                continue
            if not opts[c]:
                out.append((c, c, None))
                continue
            if j + 1 < len(word):
                out.append((c, c, word[j + 1:]))
            elif i + 1 < len(argv):
                i += 1
                out.append((c, c, argv[i]))
            else:
                out.append(("", c, None))
            break
        i += 1
    return out


def _getopt(args: list[Arg], key: str | None) -> tuple[Read, bool]:
    if len(args) != 2:
        raise CallError("getopt() takes 2 arguments: a list of arguments and an optstring")
    argv, optstring = args
    if not argv.many:
        raise CallError("getopt()'s first argument must be a list")
    if optstring.many:
        raise CallError("getopt()'s second argument (the optstring) must be one value")
    if not (argv.text and optstring.text):
        raise CallError("getopt()'s arguments must be strings")
    if key is not None and len(key) != 1:
        raise CallError("getopt()[...] takes one option character")

    def parsed(e: Any) -> list[tuple[str, str | None, str | None]] | None:
        vs, o = argv.read(e), optstring.read(e)
        if vs is None or o is None or any(v is None for v in vs):
            return None
        return getopt(tuple(as_text(v) for v in vs), parse_optstring(as_text(o)))

    if key is None:
        def read_all(e: Any) -> tuple[str, ...] | None:
            got = parsed(e)
            if got is None:
                return None
            return tuple(x for shown, _, val in got for x in (shown, val) if x is not None)
        return read_all, True

    def read_key(e: Any) -> str | None:
        found = None
        for shown, opt, val in parsed(e) or ():
            if opt == key:
                found = val if val is not None else shown
        return found
    return read_key, False


#: name -> (builder from the arguments and the ``[key]``, whether a ``[key]`` is allowed)
CALLS: dict[str, tuple[Callable[[list[Arg], str | None], tuple[Read, bool]], bool]] = {
    "join": (_join, False),
    "concat": (_concat, False),
    "getopt": (_getopt, True),
}

RESULT_TYPE = FieldType.STRING
