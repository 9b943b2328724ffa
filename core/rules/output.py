"""Rule output formatting: ``%field`` and ``%field[arg]`` substituted per alert.

``compile_output(fmt, fields)`` parses the format once into literal text and bound readers; the
returned function renders ``(text, output_fields)`` for an event.  As in Falco: an unknown
value prints ``<NA>`` (and is ``null`` in ``output_fields``); ``%container.info`` prints
``name (id=xxxxxxxxxxxx)`` for a container, ``host`` on the host (``<NA>`` while unknown); a
field name is the longest declared field at that place (``%fd.name.`` is ``fd.name`` then a
dot).

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
from .resolved import Origin

_FIELD_AT = re.compile(r"%([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)(\[[^\]]*\])?")
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


def compile_output(fmt: str, fields: FieldRegistry, location: Location | None = None,
                   compiler: Compiler | None = None
                   ) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """Compile an output format.  Raises :class:`RuleError` for an unknown field."""
    comp = compiler or Compiler(fields)
    origin = Origin(fmt, location)
    parts: list[Any] = []          # str literals and callables
    extracted: list[tuple[str, Callable]] = []
    pos = 0
    for m in _FIELD_AT.finditer(fmt):
        name, arg = m.group(1), m.group(2)
        start = m.start()
        parts.append(fmt[pos:start])
        if name == "container.info" and arg is None:
            info, extra = _container_info(fields, comp, origin)
            parts.append(info)
            extracted.extend(extra)
            pos = m.end()
            continue
        # the longest declared field (or field with a dotted argument) at this place
        end = m.end()
        ref = None
        while True:
            try:
                candidate = ast.FieldRef(name, arg[1:-1] if arg else None, start + 1)
                comp.lookup(candidate, origin)
                ref = candidate
                break
            except RuleError:
                if arg is not None:
                    arg = None
                    end = start + 1 + len(name)
                    continue
                if "." in name and name.count(".") > 1:
                    name = name.rsplit(".", 1)[0]
                    end = start + 1 + len(name)
                    continue
                break
        if ref is None:
            raise origin.error(start, f"unknown field '{m.group(1)}' in output")
        bf = comp.bind_field(ref, origin)
        key = ref.text()
        parts.append(bf.read)
        extracted.append((key, bf.read))
        pos = end
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
        text = "".join(p if isinstance(p, str) else escape_text(render_value(p(e)))
                       for p in lits)
        return text, {k: json_value(r(e)) for k, r in out_fields}
    return render
