"""Rule output formatting: ``%field`` and ``%field[arg]`` substituted per alert.

``compile_output(fmt, fields)`` parses the format once into literal text and bound readers; the
returned function renders ``(text, output_fields)`` for an event.  As in Falco: an unknown
value prints ``<NA>`` (and is ``null`` in ``output_fields``); ``%container.info`` prints
``name (id=xxxxxxxxxxxx)`` for a container, ``host`` on the host (``<NA>`` while unknown); a
field name is the longest field at that place that binds (``%fd.name.`` is ``fd.name`` then a
dot, ``%proc.nameand`` is ``proc.name`` then ``and``); ``%10proc.name`` pads or cuts the value
to 10 characters; transformers apply (``%toupper(proc.name)``), ``val()`` is refused.

The text is one line whatever the values hold: every substituted value goes through
:func:`~syswarden.core.escape.escape_text` (newlines, terminal escapes, bytes that are not UTF-8
written as ``\\n``, ``\\x1b``, ``\\xff``); the format's own text is the operator's and stays
as written.  ``output_fields`` keep the raw values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from ..errors import Location, RuleError
from ..escape import escape_text
from ..fields import FieldRegistry
from . import ast
from .compiler import Compiler
from .parser import parse_operand
from .resolved import BoundField, Origin

NA = "<NA>"


def render_value(v: Any) -> str:
    """A value as text, unescaped (bytes that are not UTF-8 kept as surrogates)."""
    if v is None:
        return NA
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, tuple):
        if len(v) == 1:
            return render_value(v[0])
        return "(" + ",".join(render_value(x) for x in v) + ")"
    return str(v)


def json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, tuple):
        return json_value(v[0]) if len(v) == 1 else [json_value(x) for x in v]
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                      ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(v)
    return str(v)


def _show(part: Callable | tuple[Callable, int], e: Any) -> str:
    """A value as printed: escaped, then padded or cut to its width if it has one."""
    if isinstance(part, tuple):
        read, width = part
        return escape_text(render_value(read(e)))[:width].ljust(width)
    return escape_text(render_value(part(e)))


def _inner_fields(ref: ast.FieldRef) -> list[ast.FieldRef]:
    """The plain fields a transformed field reads (``proc.name`` of ``toupper(proc.name)``)."""
    if not ref.transformers and ref.call is None:
        return []
    return ref.plain_fields()


def _container_info(fields: FieldRegistry, comp: Compiler, origin: Origin
                    ) -> tuple[Callable[[Any], str], list[tuple[str, Callable]]]:
    """``%container.info``: from container.id/name if declared, else from the event."""
    def read_or_event(name: str, attr: str) -> Callable:
        if name in fields:
            return comp.bind_field(ast.FieldRef(name, None, 0), origin).read

        def from_event(e: Any) -> Any:
            c = e.container or (e.proc.container if e.proc is not None else None)
            return getattr(c, attr, None) if c is not None else None
        return from_event

    rid = read_or_event("container.id", "id")
    rname = read_or_event("container.name", "name")

    def info(e: Any) -> str:
        cid = rid(e)
        if not cid:
            return NA          # not known yet: neither a container nor the host
        if cid == "host":
            return "host"
        return f"{rname(e) or NA} (id={cid})"
    return info, [("container.id", rid), ("container.name", rname)]


_WIDTH = re.compile(r"[0-9]+")
_CONTAINER_INFO = re.compile(r"container\.info(?![a-zA-Z0-9_\[(]|\.[a-zA-Z0-9_])")
_TOKEN_START = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*[.(]")
#: Shorter texts tried at one ``%`` before giving up (a hostile output stays linear).
_MAX_TRIES = 64


def _longest_field(fmt: str, pct: int, at: int, comp: Compiler, origin: Origin
                   ) -> tuple[ast.FieldRef, BoundField, int] | None:
    """The longest field or transformer call at ``at`` (of the ``%`` at ``pct``) that binds,
    as Falco reads a ``%`` token (``%proc.nameand`` is ``proc.name`` then ``and``): (ref,
    bound field, end).  None when nothing field-shaped starts there; the first error when
    nothing binds."""
    if not _TOKEN_START.match(fmt, at):
        return None
    limit, first = len(fmt), None
    for _ in range(_MAX_TRIES):
        if limit <= at:
            break
        try:
            ref, end = parse_operand(fmt[:limit], at, origin.location)
        except RuleError as exc:
            first = first or exc
            limit = min(limit - 1, getattr(exc, "column", limit) - 1)   # before the fault
            continue
        try:
            return ref, comp.bind_field(ref, origin), end
        except RuleError as exc:
            if getattr(exc, "reason", "").startswith("unknown field"):
                exc = origin.error(pct, f"unknown field '{ref.text()}' in output")
            first = first or exc
            limit = end - 1
    raise first


def compile_output(fmt: str, fields: FieldRegistry, location: Location | None = None,
                   compiler: Compiler | None = None
                   ) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """Compile an output format.  Raises :class:`RuleError` for an unknown field, a
    transformer that cannot apply, ``val()``.

    ``%[width]field`` and ``%[width]transformer(...)``: the longest field that binds is read
    (``%proc.nameand`` is ``proc.name`` then ``and``); a width pads or cuts the value to that
    many characters; ``output_fields`` hold a transformed value under its text
    (``toupper(proc.name)``) and the field it reads under its own name.  A ``%`` that no field
    follows is text.
    """
    comp = compiler or Compiler(fields)
    origin = Origin(fmt, location)
    parts: list[Any] = []          # str literals, callables and (callable, width)
    extracted: list[tuple[str, Callable]] = []
    pos = 0
    search = 0
    while True:
        start = fmt.find("%", search)
        if start < 0:
            break
        search = start + 1
        at = start + 1
        wm = _WIDTH.match(fmt, at)
        width = int(wm.group()) if wm else 0
        if wm:
            at = wm.end()
        if _CONTAINER_INFO.match(fmt, at):
            parts.append(fmt[pos:start])
            info, extra = _container_info(fields, comp, origin)
            parts.append((info, width) if width else info)
            extracted.extend(extra)
            pos = search = at + len("container.info")
            continue
        found = _longest_field(fmt, start, at, comp, origin)
        if found is None:
            continue
        ref, bf, end = found
        parts.append(fmt[pos:start])
        parts.append((bf.read, width) if width else bf.read)
        extracted.append((ref.text(), bf.read))
        for inner in _inner_fields(ref):
            extracted.append((inner.text(), comp.bind_field(inner, origin).read))
        pos = search = end
    parts.append(fmt[pos:])
    # merge adjacent literals
    merged: list[Any] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif p != "":
            merged.append(p)
    seen: dict[str, Callable] = {}
    for key, read in extracted:
        seen.setdefault(key, read)
    out_fields = tuple(seen.items())
    lits = tuple(merged)

    def render(e: Any) -> tuple[str, dict[str, Any]]:
        text = "".join(p if isinstance(p, str) else _show(p, e) for p in lits)
        return text, {k: json_value(r(e)) for k, r in out_fields}
    return render
