"""Declaring config keys and checking a mapping against them.

A :class:`Section` is a mapping of :class:`Key` declarations; :func:`validate` checks a parsed
YAML mapping against one: an unknown key is an error naming the file, the line and the closest
valid key; a wrong type names the expected type; a number out of bounds names its bounds.
:func:`merge` lays a validated mapping over the section's defaults and :func:`fill_values`
fills those of user-named entries.  The core's own
keys (``CORE_SCHEMA``) and the loader live in :mod:`syswarden.core.config`.
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml

from . import yamlmarks
from .errors import ConfigError

log = logging.getLogger("syswarden.config")


@dataclass
class Key:
    """One config key: accepted types, default, a one-line doc, optional choices.

    ``type`` is a Python type or a tuple of them (``(str, list)`` for Falco's ``rules_file``),
    or a nested :class:`Section`.  ``float`` accepts ints, never NaN or infinity; ``choices``
    compares lower-cased; ``min`` and ``max`` bound a number (both ends allowed); ``check``
    returns what is wrong with a value of the right type (e.g. an address it cannot parse).
    """

    type: Any
    default: Any = None
    doc: str = ""
    choices: tuple | None = None
    items: Any = None  # type of list items, when type is list (a Section: mappings of its keys)
    min: float | None = None  # smallest value a number may take
    max: float | None = None  # largest value a number may take
    check: Callable[[Any], str | None] | None = None  # what is wrong with a value, or None


@dataclass
class Section:
    """A mapping of keys.  ``open=True`` accepts any key (headers, labels).

    ``values=Section(...)``: a mapping of names chosen by the user, each value a mapping of that
    section's keys (validated with their lines, defaults filled in), e.g. ``webhook_outputs``.
    """

    keys: dict[str, Key] = field(default_factory=dict)
    doc: str = ""
    open: bool = False
    values: "Section | None" = None
    check: Callable[[dict], str | None] | None = None  # what is wrong with the whole mapping

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key in self.keys.items():
            if isinstance(key.type, Section):
                out[name] = key.type.defaults()
            else:
                out[name] = _copy(key.default)
        return out


def _copy(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return yaml.safe_load(yaml.safe_dump(value))
    return value


#: Most alerts (or events) one in-memory queue may hold: bounds the agent's memory.
MAX_QUEUE = 10_000_000
#: Longest delay, timeout or interval in seconds a key may give (a day).
MAX_SECONDS = 86_400.0


def fill_values(data: dict, schema: Section) -> dict:
    """Fill the defaults of each entry of ``values`` sections (their names are the user's)."""
    for name, key in schema.keys.items():
        if isinstance(key.type, Section) and isinstance(data.get(name), dict):
            section = key.type
            if section.values is not None:
                data[name] = {entry: fill_values(merge(section.values.defaults(), value),
                                                  section.values)
                              for entry, value in data[name].items() if isinstance(value, dict)}
            else:
                fill_values(data[name], section)
    return data


def merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = merge(base[key], value)
        else:
            base[key] = value
    return base


def _type_name(t: Any) -> str:
    if isinstance(t, Section):
        return "a mapping"
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number",
            str: "a string", list: "a list", dict: "a mapping"}.get(t, t.__name__)


def _type_ok(value: Any, t: Any) -> bool:
    if isinstance(t, tuple):
        return any(_type_ok(value, x) for x in t)
    if isinstance(t, Section):
        return isinstance(value, dict)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is str:
        return isinstance(value, str)
    return isinstance(value, t)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_problem(value: float, key: Key) -> str | None:
    """What a number must be when ``value`` is not that, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if (key.min is not None and value < key.min) or (key.max is not None and value > key.max):
        return value_range(key)
    return None


def value_range(key: Key) -> str:
    """``between 1 and 65536``, ``at least 0``, ``at most 5`` or ``""``: a Key's bounds."""
    low, high = _num(key.min), _num(key.max)
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _num(x: float | None) -> str | None:
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def show(value: Any) -> str:
    """``repr(value)``, clipped: the value may be a 4000-digit number or a whole file."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else \
        f"a {len(str(abs(value)))}-digit integer"
    return text if len(text) <= 60 else text[:57] + "..."


def suggest(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def validate(data: dict, schema: Section, path: tuple, marks: yamlmarks.Marks,
             ignored: dict[str, str] | None = None) -> None:
    """Check ``data`` (found at ``path``) against ``schema``; raise :class:`ConfigError` at the
    first fault, located with ``marks``.  ``ignored``: top-level keys accepted with one warning
    each (the text says what happens instead)."""
    for name, value in data.items():
        dotted = _dotted(path + (name,))
        if schema.values is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted} must be a mapping of "
                                  f"{', '.join(schema.values.keys) or 'keys'}, "
                                  f"not {show(value)}",
                                  marks.loc(path + (name,), dotted))
            validate(value, schema.values, path + (name,), marks)
            continue
        key = schema.keys.get(name)
        if key is None:
            if schema.open:
                continue
            if not path and ignored and name in ignored:
                log.warning("%s: falco.yaml key %r has no meaning in syswarden; ignored: %s",
                            marks.loc(path + (name, "__key__")), name, ignored[name])
                continue
            raise ConfigError(f"unknown config key {dotted!r}",
                              marks.loc(path + (name, "__key__"), dotted),
                              hint=suggest(str(name), schema.keys))
        check_value(value, key, path + (name,), dotted, marks)
    problem = schema.check(data) if schema.check is not None else None
    if problem:
        dotted = _dotted(path)
        raise ConfigError(f"{dotted}: {problem}" if dotted else problem, marks.loc(path, dotted))


def check_value(value: Any, key: Key, path: tuple, dotted: str, marks: yamlmarks.Marks) -> None:
    if value is None and key.default is None and not isinstance(key.type, Section):
        return
    if not _type_ok(value, key.type):
        raise ConfigError(f"{dotted} must be {_type_name(key.type)}, not {show(value)}",
                          marks.loc(path, dotted))
    if isinstance(key.type, Section):
        validate(value, key.type, path, marks)
    if key.choices and str(value).lower() not in key.choices:
        raise ConfigError(f"{dotted} must be one of {', '.join(key.choices)}, not {show(value)}",
                          marks.loc(path, dotted), hint=suggest(str(value).lower(), key.choices))
    if _is_number(value):
        problem = _number_problem(value, key)
        if problem:
            raise ConfigError(f"{dotted} must be {problem}, not {show(value)}",
                              marks.loc(path, dotted))
    problem = key.check(value) if key.check is not None and value is not None else None
    if problem:
        raise ConfigError(f"{dotted}: {problem}", marks.loc(path, dotted))
    if key.items is not None and isinstance(value, list):
        for i, item in enumerate(value):
            if not _type_ok(item, key.items):
                raise ConfigError(f"{dotted}[{i}] must be {_type_name(key.items)}, "
                                  f"not {show(item)}",
                                  marks.loc(path + (i,), f"{dotted}[{i}]"))
            section = _section_of(key.items)
            if section is not None and isinstance(item, dict):
                validate(item, section, path + (i,), marks)


def _dotted(path: tuple) -> str:
    """``("append_output", 0, "match")`` -> ``append_output[0].match``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_of(t: Any) -> Section | None:
    if isinstance(t, Section):
        return t
    if isinstance(t, tuple):
        return next((x for x in t if isinstance(x, Section)), None)
    return None
