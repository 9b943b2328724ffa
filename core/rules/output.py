"""Rule output formatting: ``%field`` and ``%field[arg]`` substituted per alert.

``compile_output(fmt, fields)`` parses the format once into literal text and bound readers; the
returned function renders ``(text, output_fields)`` for an event.  As in Falco: an unknown
value prints ``<NA>`` (and is ``null`` in ``output_fields``); ``%container.info`` prints
``name (id=xxxxxxxxxxxx)`` for a container, ``host`` on the host (``<NA>`` while unknown), as
Falco before 0.41 did (a rule whose output gets the container plugin's suggested fields loses
it, as in Falco 0.41+: :meth:`OutputOptions.rule_format`); a
field name is the longest field at that place that binds (``%fd.name.`` is ``fd.name`` then a
dot, ``%proc.nameand`` is ``proc.name`` then ``and``); ``%10proc.name`` pads or cuts the value
to 10 characters; transformers apply (``%toupper(proc.name)``), ``val()`` is refused.

The text is one line whatever the values hold: every substituted value goes through
:func:`~syswarden.core.escape.escape_text` (newlines, terminal escapes, bytes that are not UTF-8
written as ``\\n``, ``\\x1b``, ``\\xff``); the format's own text is the operator's and stays
as written.  ``output_fields`` keep the raw values.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ConfigError, Location, RuleError
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


def _show(part: Callable | tuple[Callable, int], e: Any,
          render: Callable[[Any], str] | None = None) -> str:
    """A value as printed (``render``: :func:`render_value`, or :func:`render_base64`):
    padded or cut to its width if it has one, then escaped (a cut never splits an escape:
    ``\\x1b`` cut to ``\\x`` would end in a bare backslash, which the format's next
    character would make look like an escape of ours)."""
    render = render or render_value
    if isinstance(part, tuple):
        read, width = part
        return escape_text(render(read(e))[:width].ljust(width))
    return escape_text(render(part(e)))


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


def _parse_format(fmt: str, fields: FieldRegistry, comp: Compiler, origin: Origin
                  ) -> tuple[list[Any], list[tuple[str, Callable]]]:
    """A format as its parts (literal text, readers, ``(reader, width)``), adjacent literals
    merged, and the ``output_fields`` it extracts (name, reader), in order, repeats kept."""
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
    return merged, extracted


def format_fields(fmt: str, fields: FieldRegistry, compiler: Compiler | None = None
                  ) -> list[str]:
    """The names of the fields a format prints, in order, each once (``-L``'s
    ``output_fields``).  Raises :class:`RuleError` as :func:`compile_output` does."""
    comp = compiler or Compiler(fields)
    return list(dict.fromkeys(name for name, _ in
                              _parse_format(fmt, fields, comp, Origin(fmt, None))[1]))


def compile_output(fmt: str, fields: FieldRegistry, location: Location | None = None,
                   compiler: Compiler | None = None, buffer_base64: bool = False
                   ) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """Compile an output format.  Raises :class:`RuleError` for an unknown field, a
    transformer that cannot apply, ``val()``.

    ``%[width]field`` and ``%[width]transformer(...)``: the longest field that binds is read
    (``%proc.nameand`` is ``proc.name`` then ``and``); a width pads or cuts the value to that
    many characters; ``output_fields`` hold a transformed value under its text
    (``toupper(proc.name)``) and the field it reads under its own name.  A ``%`` that no field
    follows is text.  ``buffer_base64``: a data buffer (bytes) prints in base64, as Falco's
    ``buffer_format_base64``.
    """
    comp = compiler or Compiler(fields)
    merged, extracted = _parse_format(fmt, fields, comp, Origin(fmt, location))
    seen: dict[str, Callable] = {}
    for key, read in extracted:
        seen.setdefault(key, read)
    out_fields = tuple(seen.items())
    lits = tuple(merged)

    show = render_base64 if buffer_base64 else render_value
    as_json = (lambda v: render_base64(v) if isinstance(v, bytes) else json_value(v)) \
        if buffer_base64 else json_value

    def render(e: Any) -> tuple[str, dict[str, Any]]:
        text = "".join(p if isinstance(p, str) else _show(p, e, show) for p in lits)
        return text, {k: as_json(r(e)) for k, r in out_fields}
    return render


def render_base64(v: Any) -> str:
    """:func:`render_value`, a data buffer (bytes) in base64."""
    return base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else render_value(v)


# -- Falco's append_output ---------------------------------------------------------------------

#: The fields Falco's container plugin suggests for every rule's output, in its order:
#: ``suggested_output: true`` appends them as ``container_id=%container.id ...``.
SUGGESTED_FIELDS = ("container.id", "container.name", "container.image.repository",
                    "container.image.tag", "k8s.pod.name", "k8s.ns.name")


@dataclass(frozen=True)
class AppendOutput:
    """One ``append_output`` entry: which rules (``match``: source, every tag, rule name; all
    when empty) get ``extra_output`` appended to their output, ``extra_fields`` added to their
    ``output_fields`` (a field name: its value; ``(name, format)``: the format rendered), and,
    with ``suggested_output``, the suggested fields appended as ``name_with_underscores=%name``."""

    source: str | None = None
    tags: frozenset[str] = frozenset()
    rule: str | None = None
    extra_output: str = ""
    extra_fields: tuple[tuple[str, str | None], ...] = ()
    suggested_output: bool = False
    where: Location | None = None       # the entry in the config

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: Location | None = None
                    ) -> "AppendOutput":
        match = entry.get("match") or {}
        fields: list[tuple[str, str | None]] = []
        for item in entry.get("extra_fields") or []:
            fields.extend(item.items() if isinstance(item, dict) else [(item, None)])
        return cls(match.get("source") or None, frozenset(match.get("tags") or ()),
                   match.get("rule") or None, entry.get("extra_output") or "", tuple(fields),
                   bool(entry.get("suggested_output")), where)

    def check(self, fields: FieldRegistry) -> None:
        """Compile what the entry adds once: an unknown field is a :class:`ConfigError` at the
        entry, not an error in every rule it matches."""
        formats = [self.extra_output] + [f if f is not None else f"%{name}"
                                         for name, f in self.extra_fields]
        for fmt in filter(None, formats):
            try:
                compile_output(fmt, fields)
            except RuleError as exc:
                raise ConfigError(f"append_output: {exc.message} ({fmt!r})", self.where,
                                  hint="syswarden --list-fields lists the fields") from None

    def matches(self, rule: str, source: str, tags: Iterable[str]) -> bool:
        return ((self.source is None or self.source == source)
                and self.tags <= set(tags)
                and (self.rule is None or self.rule == rule))


class RuleFormat(NamedTuple):
    """A rule's output as the config shapes it (:meth:`OutputOptions.rule_format`)."""

    output: str
    extra: list[tuple[str, str | None]]
    constants: dict[str, str]
    dropped_container_info: bool


#: Falco's ``%container.info``, and what a rules load says when it is dropped (Falco 0.44's
#: warning: the text is removed from the output, as the container plugin suggests the fields)
CONTAINER_INFO = "%container.info"
CONTAINER_INFO_DROPPED = ("%container.info is deprecated and no more useful: dropped from the "
                          "output, as Falco 0.41+ drops it; the container plugin's suggested "
                          "fields (append_output suggested_output) name the container")


@dataclass(frozen=True)
class OutputOptions:
    """What the config adds to every rule's output: ``append_output`` entries, in order, and
    ``buffer_format_base64`` (data buffers printed in base64 instead of as text)."""

    append: tuple[AppendOutput, ...] = ()
    buffer_base64: bool = False
    static_fields: tuple[tuple[str, str], ...] = ()   # Falco's static_fields, suggested too

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "OutputOptions":
        where = config.get("_append_output_where") or []
        entries = config.get("append_output") or ()
        return cls(tuple(AppendOutput.from_config(e, Location(*where[i]) if i < len(where)
                                                  else None) for i, e in enumerate(entries)),
                   bool(config.get("buffer_format_base64")),
                   tuple((str(k), str(v)) for k, v in (config.get("static_fields") or {}).items()))

    def rule_format(self, output: str, rule: str, source: str, tags: Iterable[str],
                    fields: FieldRegistry) -> RuleFormat:
        """The rule's output with what the matching entries append (Falco's order: each
        entry's ``extra_output``, then its suggested fields), the extra fields, and the static
        fields (``static.NAME``: value) suggested output adds, printed as ``static_NAME=value``
        after the rest.

        ``%container.info`` in a rule that gets the suggested fields is dropped, as Falco 0.41+
        drops it (the suggested ``container_id``/``container_name`` say it); a rule that does
        not get them keeps older Falco's ``name (id=...)`` (:data:`CONTAINER_INFO_DROPPED`)."""
        tags = list(tags)
        extra: list[tuple[str, str | None]] = []
        constants: dict[str, str] = {}
        suggested = False
        for entry in self.append:
            if not entry.matches(rule, source or "syscall", tags):
                continue
            if entry.extra_output:
                output = f"{output} {entry.extra_output}"
            if entry.suggested_output:
                suggested = True
                for name in SUGGESTED_FIELDS:
                    if name in fields:
                        output = f"{output} {name.replace('.', '_')}=%{name}"
                for name, value in self.static_fields:
                    constants[f"static.{name}"] = value
            extra.extend(entry.extra_fields)
        dropped = suggested and CONTAINER_INFO in output
        if dropped:
            output = output.replace(CONTAINER_INFO, "")
        return RuleFormat(output, extra, constants, dropped)


def compile_rule_output(output: str, rule: str, source: str, tags: Iterable[str],
                        fields: FieldRegistry, location: Location | None = None,
                        compiler: Compiler | None = None,
                        options: OutputOptions | None = None,
                        warnings: list[str] | None = None
                        ) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """A rule's renderer with the config's ``append_output`` applied: its text gets the
    appended formats; its ``output_fields`` also hold each extra field (a field's value, or
    a ``{name: format}``'s rendered text).  ``warnings`` gets what the load should say of the
    output (:data:`CONTAINER_INFO_DROPPED`)."""
    options = options or OutputOptions()
    fmt, extra, constants, dropped = options.rule_format(output, rule, source, tags, fields)
    if dropped and warnings is not None:
        warnings.append(CONTAINER_INFO_DROPPED)
    render = compile_output(fmt, fields, location, compiler, options.buffer_base64)
    if not extra and not constants:
        return render
    extras: list[tuple[str, Callable[[Any], Any]]] = []
    for name, fmt_of in extra:
        sub = compile_output(fmt_of if fmt_of is not None else f"%{name}", fields, location,
                             compiler, options.buffer_base64)
        if fmt_of is None:
            extras.append((name, lambda e, sub=sub, name=name: sub(e)[1].get(name)))
        else:
            extras.append((name, lambda e, sub=sub: sub(e)[0]))

    suffix = "".join(f" static_{k.removeprefix('static.')}={v}" for k, v in constants.items())

    def render_with_fields(e: Any) -> tuple[str, dict[str, Any]]:
        text, out = render(e)
        for name, read in extras:
            out[name] = read(e)
        out.update(constants)
        return text + suffix, out
    return render_with_fields
