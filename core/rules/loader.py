"""Read Falco rules files: lists, macros, rules, exceptions, append and override.

Files are read in order; items are applied as Falco applies them:

- a later ``list``/``macro``/``rule`` with the same name replaces the earlier one;
- ``append: true`` (or ``override: {key: append}``) adds to an earlier item of the same name:
  list items are added, a macro's or rule's condition gets `` <text>`` appended, a rule's
  exceptions are merged (values of a same-named exception added), output/desc appended, tags
  added; ``override: {key: replace}`` replaces single keys of an earlier rule;
- a rule with only ``name`` and ``enabled`` switches an earlier rule on or off;
- ``required_engine_version`` is checked against :data:`ENGINE_VERSION`, the Falco rules engine
  version whose rule files syswarden reads (an old integer ``N`` is Falco's ``0.N.0``); a file
  needing a newer engine is an error;
- what a file needs that syswarden does not have is an error, as it is fatal to Falco: a
  ``required_plugin_versions`` entry none of whose alternatives is a plugin syswarden provides
  (:data:`BUILTIN_PLUGINS`: Falco's ``container`` plugin is syswarden's container enrichment,
  unmet when the config turns it off: :func:`provided_plugins`),
  and a rule whose ``source`` is not one syswarden has (:data:`SOURCES`: ``k8s_audit``,
  ``aws_cloudtrail``, ``okta``... come from Falco plugins).  An agent that silently runs none of
  the rules it was given is worse than one that refuses to start.

Every problem is a :class:`RuleError` located at the file, line and item (``rule 'X'``), kept
in :attr:`LoadResult.errors` or :attr:`LoadResult.warnings` so that ``-V`` can list them all.
Conditions are parsed here; field binding and compilation happen in the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


from .. import yamlmarks
from ..alert import Priority
from ..errors import Location, RuleError
from . import ast
from .ast import Const
from .lexer import TRANSFORMERS
from .lists import flatten_lists
from .operators import OPERATORS, takes_list
from .parser import parse, parse_operand
from .resolved import MacroDef, Origin

#: The Falco rules engine version whose rule files syswarden reads (Falco's own rule files
#: here require 0.57.0 at most).
ENGINE_VERSION = (0, 57, 0)


def parse_engine_version(raw: Any) -> tuple[int, int, int] | None:
    """``0.57.0`` -> (0, 57, 0); Falco's old integer engine versions ``N`` -> (0, N, 0)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return (0, raw, 0) if raw >= 0 else None
    m = re.fullmatch(r"\s*(\d{1,9})\.(\d{1,9})\.(\d{1,9})\s*", str(raw))
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


RULE_KEYS = {"rule", "desc", "condition", "output", "priority", "tags", "enabled", "source",
             "exceptions", "warn_evttypes", "skip-if-unknown-filter", "append", "override",
             "capture", "capture_duration"}
MACRO_KEYS = {"macro", "condition", "append", "override"}
LIST_KEYS = {"list", "items", "append", "override"}
#: keys an override may append to / replace, per item kind (Falco's rules)
OVERRIDE_APPEND = {"rule": {"condition", "output", "desc", "tags", "exceptions"},
                   "macro": {"condition"}, "list": {"items"}}
OVERRIDE_REPLACE = {"rule": {"condition", "output", "desc", "priority", "tags", "exceptions",
                             "enabled", "warn_evttypes", "skip-if-unknown-filter", "capture",
                             "capture_duration"},
                    "macro": {"condition"}, "list": {"items"}}
#: The Falco plugins whose requirement syswarden satisfies: ``container`` by its container
#: enrichment (the Docker enricher's ``container.*`` and ``k8s.*`` fields).
BUILTIN_PLUGINS = {"container"}
#: The event sources syswarden has: Falco's ``syscall`` (a rule without ``source`` is one).
SOURCES = ("syscall",)
#: How the errors of what a file needs and syswarden does not have begin (``-V`` classifies them)
NEEDS_PLUGIN = "plugin requirement not satisfied"
NEEDS_SOURCE = "rule needs the event source"
_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")


def provided_plugins(config: dict[str, Any]) -> set[str]:
    """Of :data:`BUILTIN_PLUGINS`, those the config leaves on: ``container`` unless the
    container enrichment is off (``container.enabled: false``, or ``container`` in
    ``disabled_plugins``), as Falco's requirement is unmet without the plugin loaded."""
    section = config.get("container") or {}
    off = section.get("enabled") is False or "container" in (config.get("disabled_plugins") or ())
    return set() if off else set(BUILTIN_PLUGINS)


@dataclass
class ListDef:
    name: str
    items: list[str]
    location: Location


@dataclass
class Exception_:
    name: str
    fields: list[str] | str
    comps: list[str] | str | None
    values: list[Any]
    location: Location


@dataclass
class RuleDef:
    name: str
    condition: str
    output: str
    desc: str
    priority: Priority
    tags: list[str]
    enabled: bool
    source: str
    exceptions: list[Exception_]
    location: Location                 # the rule item
    cond_location: Location            # the condition value
    output_location: Location
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False


@dataclass
class LoadResult:
    rules: list[RuleDef] = field(default_factory=list)
    lists: dict[str, ListDef] = field(default_factory=dict)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[RuleError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: the highest ``required_engine_version`` of the files read, and each
    #: ``required_plugin_versions`` entry (the plugin, then its alternatives: name, version)
    required_engine_version: tuple[int, int, int] = (0, 0, 0)
    required_plugin_versions: list[list[dict[str, str]]] = field(default_factory=list)
    #: per file: the errors and warnings found while reading it (for -V)
    by_file: dict[str, tuple[list[RuleError], list[RuleError]]] = field(default_factory=dict)

    def expanded_lists(self) -> tuple[dict[str, list[str]], list[RuleError]]:
        """Lists with list names among their items replaced by those lists' items, and the
        errors of the lists refused for growing too large (:mod:`.lists`)."""
        return flatten_lists({name: d.items for name, d in self.lists.items()},
                             {name: d.location for name, d in self.lists.items()})


def expand_paths(paths: list[str]) -> list[str]:
    """Files in order; a directory stands for its ``*.yaml``/``*.yml`` files, sorted."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".yaml", ".yml")) and os.path.isfile(os.path.join(p, name)):
                    out.append(os.path.join(p, name))
        else:
            out.append(p)
    return out


def _yaml_quote(value: str) -> str:
    """A value as a quoted condition literal (Falco quotes exception values)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Loader:
    def __init__(self, plugins: Iterable[str] = BUILTIN_PLUGINS) -> None:
        #: the Falco plugins whose requirement is met (:func:`provided_plugins`)
        self.plugins = set(plugins)
        self.result = LoadResult()
        self._rules: dict[str, RuleDef] = {}
        self._order: list[str] = []
        self._errors: list[RuleError] = []
        self._warnings: list[RuleError] = []
        self._seq = 0          # items read so far: the order macros see each other in
        #: macros whose condition does not parse, with the error list of their file: an
        #: error only if no later definition replaces them (Falco parses the final text)
        self._bad_macros: dict[str, tuple[RuleError, list[RuleError]]] = {}

    # -- reporting ----------------------------------------------------------------------------

    def error(self, message: str, loc: Location) -> None:
        self._errors.append(RuleError(message, loc))

    def warn(self, message: str, loc: Location) -> None:
        self._warnings.append(RuleError(message, loc))

    # -- files --------------------------------------------------------------------------------

    def load_files(self, paths: list[str]) -> LoadResult:
        for path in expand_paths(paths):
            self.load_file(path)
        for exc, file_errors in self._bad_macros.values():
            file_errors.append(exc)
            self.result.errors.append(exc)
        self.result.rules = [self._rules[n] for n in self._order]
        return self.result

    def load_file(self, path: str) -> None:
        self._errors, self._warnings = [], []
        self.result.files.append(path)
        self.result.by_file[path] = (self._errors, self._warnings)
        try:
            text = yamlmarks.read_text(path, RuleError, "rules file")
        except RuleError as exc:
            self._errors.append(exc)
            self._flush()
            return
        self.load_text(text, path)
        self._name_the_rules_in_need()
        self._flush()

    def _name_the_rules_in_need(self) -> None:
        """A file's unmet plugin requirement names the file's rules of a source syswarden does
        not have: the start-up error (the file's first) then says which rules are missing
        what."""
        rules = [e.location.item for e in self._errors
                 if e.message.startswith(NEEDS_SOURCE) and e.location and e.location.item]
        if not rules:
            return
        more = f" and {len(rules) - 3} more" if len(rules) > 3 else ""
        for err in self._errors:
            if err.message.startswith(NEEDS_PLUGIN):
                verb = "needs" if len(rules) == 1 else "need"
                err.message += f"; the file's {', '.join(rules[:3])}{more} {verb} it"
                err.args = (err.message,)

    def _flush(self) -> None:
        self.result.errors.extend(self._errors)
        self.result.warnings.extend(self._warnings)

    def load_text(self, text: str, path: str) -> None:
        try:
            data, marks = yamlmarks.load(text, path, RuleError)
        except RuleError as exc:
            self._errors.append(exc)
            return
        if data is None:
            return
        marks.lines = text.splitlines()  # type: ignore[attr-defined]
        if not isinstance(data, list):
            self.error("a rules file must be a list of items (- rule:, - macro:, - list:)",
                       marks.loc(()))
            return
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                self.error(f"item {i + 1} is not a mapping", marks.loc((i,)))
                continue
            try:
                self._item(item, i, marks)
            except RuleError as exc:
                self._errors.append(exc)

    # -- items --------------------------------------------------------------------------------

    def _item(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        self._seq += 1
        if "rule" in item:
            self._rule(item, i, marks)
        elif "macro" in item:
            self._macro(item, i, marks)
        elif "list" in item:
            self._list(item, i, marks)
        elif "required_engine_version" in item:
            self._engine_version(item, i, marks)
        elif "required_plugin_versions" in item:
            self._plugins(item, i, marks)
        else:
            keys = ", ".join(map(str, item))
            self.warn(f"unknown top-level item ({keys}); ignored", marks.loc((i,)))

    def _name(self, item: dict, kind: str, i: int, marks: yamlmarks.Marks) -> str:
        name = item.get(kind)
        if not isinstance(name, str) or not name.strip():
            raise RuleError(f"{kind} name must be a non-empty string", marks.loc((i, kind)))
        return name

    def _unknown_keys(self, item: dict, allowed: set[str], i: int, marks: yamlmarks.Marks,
                      what: str) -> None:
        for key in item:
            if key not in allowed:
                self.warn(f"unknown key '{key}'; ignored", marks.loc((i, key, "__key__"), what))

    def _override(self, item: dict, kind: str, i: int, marks: yamlmarks.Marks, what: str
                  ) -> dict[str, str]:
        ov = item.get("override")
        if ov is None:
            return {}
        if not isinstance(ov, dict):
            raise RuleError("override must be a mapping of key: append|replace",
                            marks.loc((i, "override"), what))
        if item.get("append"):
            raise RuleError("'append' and 'override' cannot be used together",
                            marks.loc((i, "append"), what))
        out = {}
        for key, how in ov.items():
            if how not in ("append", "replace"):
                raise RuleError(f"override of '{key}' must be append or replace, not {how!r}",
                                marks.loc((i, "override", key), what))
            allowed = OVERRIDE_APPEND[kind] if how == "append" else OVERRIDE_REPLACE[kind]
            if key not in allowed:
                raise RuleError(f"key '{key}' cannot be overridden with {how}; "
                                f"allowed: {', '.join(sorted(allowed))}",
                                marks.loc((i, "override", key), what))
            if key not in item:
                raise RuleError(f"override names '{key}' but the item has no '{key}'",
                                marks.loc((i, "override", key), what))
            out[key] = how
        return out

    def _begin(self, item: dict, kind: str, keys: set[str], i: int, marks: yamlmarks.Marks
               ) -> tuple[str, str, dict[str, str]]:
        """An item's name, its label (``rule 'X'``) and its override spec; unknown keys warned."""
        name = self._name(item, kind, i, marks)
        what = f"{kind} '{name}'"
        self._unknown_keys(item, keys, i, marks, what)
        return name, what, self._override(item, kind, i, marks, what)

    def _list(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        name, what, ov = self._begin(item, "list", LIST_KEYS, i, marks)
        items = item.get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise RuleError("list items must be a list", marks.loc((i, "items"), what))
        values = []
        for j, v in enumerate(items):
            if isinstance(v, (dict, list)) or v is None:
                raise RuleError("list items must be strings or numbers",
                                marks.loc((i, "items", j), what))
            values.append(v if isinstance(v, str) else _scalar(v))
        append = bool(item.get("append")) or ov.get("items") == "append"
        loc = marks.loc((i,), what)
        prev = self.result.lists.get(name)
        if append:
            if prev is None:
                raise RuleError("list has 'append' but no list by that name is defined "
                                "before", marks.loc((i, "list"), what))
            prev.items.extend(values)
        else:
            self.result.lists[name] = ListDef(name, values, loc)

    def _macro(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        name, what, ov = self._begin(item, "macro", MACRO_KEYS, i, marks)
        if not _IDENTIFIER.fullmatch(name):
            self.warn(f"macro name '{name}' is not an identifier ([a-zA-Z][a-zA-Z0-9_]*): "
                      "no condition can refer to it", marks.loc((i, "macro"), what))
        cond = item.get("condition")
        if not isinstance(cond, str):
            raise RuleError("macro needs a 'condition' string", marks.loc((i,), what))
        cloc = _value_loc(marks, (i, "condition"), what)
        append = bool(item.get("append")) or ov.get("condition") == "append"
        prev = self.result.macros.get(name)
        if append:
            if prev is None:
                raise RuleError("macro has 'append' but no macro by that name is defined "
                                "before", marks.loc((i, "macro"), what))
            text = prev.origin.text + " " + cond
            origin = Origin(text, prev.origin.location)
        else:
            text = cond
            origin = Origin(text, cloc)
        try:
            node = parse(text, origin.location)
            self._bad_macros.pop(name, None)
        except RuleError as exc:
            node = Const(False)
            self._bad_macros[name] = (exc, self._errors)
        index = prev.index if prev is not None else self._seq
        self.result.macros[name] = MacroDef(name, node, origin, index=index,
                                            visibility=self._seq)

    def _engine_version(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        raw = item.get("required_engine_version")
        loc = marks.loc((i, "required_engine_version"))
        wanted = parse_engine_version(raw)
        if wanted is None:
            raise RuleError(f"required_engine_version {str(raw)[:40]!r} is not a version "
                            "(MAJOR.MINOR.PATCH, or Falco's old integer)", loc)
        self.result.required_engine_version = max(self.result.required_engine_version, wanted)
        if wanted > ENGINE_VERSION:
            have = ".".join(map(str, ENGINE_VERSION))
            raise RuleError(f"the rules require engine version {raw}; syswarden reads rules "
                            f"for engine version {have}", loc)

    def _plugins(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        reqs = item.get("required_plugin_versions") or []
        if not isinstance(reqs, list):
            raise RuleError("required_plugin_versions must be a list",
                            marks.loc((i, "required_plugin_versions")))
        for j, req in enumerate(reqs):
            if not isinstance(req, dict):
                continue
            alts = req.get("alternatives")
            wanted = [req] + [alt for alt in (alts if isinstance(alts, list) else [])
                              if isinstance(alt, dict)]
            self.result.required_plugin_versions.append(
                [{"name": str(w.get("name")), "version": str(w.get("version"))} for w in wanted])
            names = {str(w.get("name")) for w in wanted}
            if not names & self.plugins:
                one_of = ", ".join(f"{w.get('name')} (>= {w.get('version')})" for w in wanted)
                why = ("the container enrichment, which stands for it, is off: set "
                       "container.enabled: true and leave container out of disabled_plugins"
                       if names & BUILTIN_PLUGINS else
                       "syswarden has no such plugin (of Falco's plugins it provides "
                       f"{', '.join(sorted(BUILTIN_PLUGINS))}, as its container enrichment)")
                self.error(f"{NEEDS_PLUGIN}, must load one of: {one_of}; {why}",
                           marks.loc((i, "required_plugin_versions", j)))

    def _rule(self, item: dict, i: int, marks: yamlmarks.Marks) -> None:
        name, what, ov = self._begin(item, "rule", RULE_KEYS, i, marks)
        prev = self._rules.get(name)
        loc = marks.loc((i,), what)
        if item.get("append") or ov:
            if prev is None:
                raise RuleError("rule has 'append'/'override' but no rule by that name is "
                                "defined before", marks.loc((i, "rule"), what))
            self._amend(prev, item, ov, i, marks, what)
            return
        keys = set(item) - {"rule"}
        if keys == {"enabled"}:
            if prev is None:
                raise RuleError("rule only sets 'enabled' but no rule by that name is defined "
                                "before", marks.loc((i, "rule"), what))
            prev.enabled = self._bool(item, "enabled", i, marks, what)
            return
        for key in ("condition", "output", "desc", "priority"):
            if key not in item:
                raise RuleError(f"rule has no '{key}'", loc)
        source = str(item.get("source") or "syscall")
        if source not in SOURCES:       # recorded all the same: a later append finds it
            self.error(f"{NEEDS_SOURCE} '{source}', which is not loaded: "
                       f"syswarden has the {', '.join(SOURCES)} source only (Falco reads "
                       f"'{source}' events through a plugin)", marks.loc((i, "source"), what))
        cond = item["condition"]
        if not isinstance(cond, str):
            raise RuleError("condition must be a string", marks.loc((i, "condition"), what))
        output = item["output"]
        if not isinstance(output, str):
            raise RuleError("output must be a string", marks.loc((i, "output"), what))
        rule = RuleDef(
            name=name, condition=cond, output=output.strip(),
            desc=str(item.get("desc") or "").strip(),
            priority=self._priority(item, i, marks, what),
            tags=self._tags(item, i, marks, what),
            enabled=self._bool(item, "enabled", i, marks, what, True),
            source=source,
            exceptions=self._exceptions(item.get("exceptions"), i, marks, what),
            location=loc,
            cond_location=_value_loc(marks, (i, "condition"), what),
            output_location=_value_loc(marks, (i, "output"), what),
            warn_evttypes=self._bool(item, "warn_evttypes", i, marks, what, True),
            skip_if_unknown_filter=self._bool(item, "skip-if-unknown-filter", i, marks, what,
                                              False),
        )
        parse(rule.condition, rule.cond_location)   # syntax errors now, located
        if name not in self._rules:
            self._order.append(name)
        self._rules[name] = rule

    def _amend(self, prev: RuleDef, item: dict, ov: dict[str, str], i: int,
               marks: yamlmarks.Marks, what: str) -> None:
        if item.get("append"):
            ov = {k: "append" for k in item
                  if k in OVERRIDE_APPEND["rule"]}
            for k in item:
                if k not in ov and k not in ("rule", "append", "enabled"):
                    raise RuleError(f"key '{k}' cannot be appended to a rule; allowed: "
                                    f"{', '.join(sorted(OVERRIDE_APPEND['rule']))}",
                                    marks.loc((i, k, "__key__"), what))
            if "enabled" in item:
                self.warn("'enabled' is ignored in an item with 'append' (as in Falco): "
                          "override 'enabled: replace' to switch the rule",
                          marks.loc((i, "enabled", "__key__"), what))
        else:
            overridable = OVERRIDE_APPEND["rule"] | OVERRIDE_REPLACE["rule"]
            for k in item:
                if k in overridable and k not in ov:
                    raise RuleError(f"unexpected key '{k}': an override item holds only the "
                                    "keys its 'override' names",
                                    marks.loc((i, k, "__key__"), what))
        for key, how in ov.items():
            if key == "condition":
                text = item["condition"]
                if not isinstance(text, str):
                    raise RuleError("condition must be a string", marks.loc((i, key), what))
                if how == "append":
                    prev.condition = prev.condition + " " + text
                else:
                    prev.condition = text
                    prev.cond_location = _value_loc(marks, (i, key), what)
                parse(prev.condition, prev.cond_location)
            elif key == "output":
                text = str(item[key]).strip()
                prev.output = prev.output + " " + text if how == "append" else text
            elif key == "desc":
                text = str(item[key]).strip()
                prev.desc = prev.desc + " " + text if how == "append" else text
            elif key == "tags":
                tags = self._tags(item, i, marks, what)
                prev.tags = prev.tags + [t for t in tags if t not in prev.tags] \
                    if how == "append" else tags
            elif key == "exceptions":
                excs = self._exceptions(item[key], i, marks, what,
                                        None if how == "replace" else
                                        {e.name: e for e in prev.exceptions})
                if how == "replace":
                    prev.exceptions = excs
                else:
                    byname = {e.name: e for e in prev.exceptions}
                    for e in excs:
                        old = byname.get(e.name)
                        if old is not None:
                            old.values = list(old.values) + list(e.values)
                        else:
                            prev.exceptions.append(e)
            elif key == "priority":
                prev.priority = self._priority(item, i, marks, what)
            elif key == "enabled":
                prev.enabled = self._bool(item, "enabled", i, marks, what)
            elif key == "warn_evttypes":
                prev.warn_evttypes = self._bool(item, key, i, marks, what)
            elif key == "skip-if-unknown-filter":
                prev.skip_if_unknown_filter = self._bool(item, key, i, marks, what)

    # -- values -------------------------------------------------------------------------------

    def _bool(self, item: dict, key: str, i: int, marks: yamlmarks.Marks, what: str,
              default: bool | None = None) -> bool:
        if key not in item:
            return bool(default)
        v = item[key]
        if not isinstance(v, bool):
            raise RuleError(f"'{key}' must be true or false, not {v!r}",
                            marks.loc((i, key), what))
        return v

    def _priority(self, item: dict, i: int, marks: yamlmarks.Marks, what: str) -> Priority:
        try:
            return Priority.parse(str(item.get("priority")))
        except ValueError as exc:
            raise RuleError(str(exc), marks.loc((i, "priority"), what)) from None

    def _tags(self, item: dict, i: int, marks: yamlmarks.Marks, what: str) -> list[str]:
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, (str, int, float)) for t in tags):
            raise RuleError("tags must be a list of strings", marks.loc((i, "tags"), what))
        return [str(t) for t in tags]

    def _exceptions(self, raw: Any, i: int, marks: yamlmarks.Marks, what: str,
                    existing: dict[str, Exception_] | None = None) -> list[Exception_]:
        """A rule's exceptions, checked as Falco checks them.  ``existing``: the exceptions of
        the rule appended to, whose values an exception of the same name (without fields or
        comps) adds to."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise RuleError("exceptions must be a list", marks.loc((i, "exceptions"), what))
        out, names = [], set()
        for j, exc in enumerate(raw):
            loc = marks.loc((i, "exceptions", j), what)
            if not isinstance(exc, dict) or not isinstance(exc.get("name"), str):
                raise RuleError("an exception needs a 'name'", loc)
            name = exc["name"]
            if name in names:
                self.warn(f"multiple definitions of exception '{name}'", loc)
            names.add(name)
            for key in exc:
                if key not in ("name", "fields", "comps", "values"):
                    self.warn(f"unknown key '{key}' in exception '{name}'; ignored",
                              marks.loc((i, "exceptions", j, key, "__key__"), what))
            values = exc.get("values")
            if values is None:
                values = []
            if not isinstance(values, list):
                raise RuleError("exception values must be a list",
                                marks.loc((i, "exceptions", j, "values"), what))
            if existing is not None and name in existing:
                for key in ("fields", "comps"):
                    if key in exc:
                        raise RuleError(f"exception '{name}' exists: only values can be "
                                        f"appended to it, not '{key}'",
                                        marks.loc((i, "exceptions", j, key), what))
                if not values:
                    self.warn(f"appending to exception '{name}' with no values", loc)
                out.append(Exception_(name, [], None, values, loc))
                continue
            out.append(self._exception(exc, values, (i, "exceptions", j), marks, what, loc))
        return out

    def _exception(self, exc: dict, values: list, path: tuple, marks: yamlmarks.Marks,
                   what: str, loc: Location) -> Exception_:
        """One exception that defines its fields: fields, comps and values of one shape."""
        name, fields, comps = exc["name"], exc.get("fields"), exc.get("comps")

        def err(message: str, *sub: Any) -> RuleError:
            return RuleError(f"exception '{name}': {message}", marks.loc(path + sub, what))

        if fields is None:
            raise err("no 'fields' (a field, or a list of fields)")
        for f in fields if isinstance(fields, list) else [fields]:
            if isinstance(f, str) and exception_field(f) is None:
                raise err(f"unknown field '{f}'")
        if isinstance(fields, list):
            if not fields or not all(isinstance(f, str) for f in fields):
                raise err("fields must be a field or a list of fields", "fields")
            if comps is None:
                comps = ["="] * len(fields)
            if not isinstance(comps, list) or len(comps) != len(fields):
                raise err("comps must be a list as long as fields", "comps")
            comps = [c.strip() if isinstance(c, str) else c for c in comps]
            for k, v in enumerate(values):
                if not isinstance(v, list) or len(v) != len(fields):
                    raise err(f"value {k + 1} must be a list of {len(fields)} values (one "
                              "per field)", "values", k)
                for f, c, x in zip(fields, comps, v, strict=True):
                    if isinstance(x, list):
                        if not all(_is_scalar(y) for y in x):
                            raise err(f"value {k + 1}: a list of {f}'s values holds a list "
                                      "or a mapping", "values", k)
                        op = OPERATORS.get(c)
                        if op is not None and op.comparator and not takes_list(c):
                            raise err(f"value {k + 1}: {f} is compared with '{c}', which "
                                      "takes one value, not a list", "values", k)
                    elif not _is_scalar(x):
                        raise err(f"value {k + 1}: {f}'s value must be a string or a list "
                                  "of strings", "values", k)
            return Exception_(name, fields, comps, values, loc)
        if not isinstance(fields, str):
            raise err("fields must be a field or a list of fields", "fields")
        if comps is None:
            comps = "in"
        if not isinstance(comps, str):
            raise err("fields and comps must both be strings (or both lists)", "comps")
        comps = comps.strip()
        if not takes_list(comps):
            raise err(f"with a single field, comps must be a list operator (in, pmatch, "
                      f"intersects), not '{comps}'", "comps")
        for k, v in enumerate(values):
            if not _is_scalar(v):
                raise err(f"value {k + 1} must be a string: with a single field, values "
                          "are one list of strings", "values", k)
        return Exception_(name, fields, comps, values, loc)


def exception_field(text: str) -> ast.FieldRef | None:
    """An exception's field as written (``proc.name``, ``tolower(proc.name)``: transformers
    allowed, as in Falco), or None when it is not one field."""
    try:
        ref, end = parse_operand(text.strip())
    except RuleError:
        return None
    return ref if end == len(text.strip()) else None


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _value_loc(marks: yamlmarks.Marks, path: tuple, item: str) -> Location:
    """Where a condition's text starts: its line, and its column when it is on one line.

    Errors inside the condition then point at the YAML column (``col`` + offset); a block
    scalar (``>``/``|``) keeps no column and errors count columns in the condition text.
    """
    loc = marks.loc(path, item)
    lines = getattr(marks, "lines", None)
    col = None
    if lines and loc.line and loc.col and loc.line <= len(lines):
        line = lines[loc.line - 1]
        ch = line[loc.col - 1:loc.col]
        if ch in (">", "|"):
            return Location(loc.file, loc.line + 1, None, item)
        col = loc.col + 1 if ch in ("'", '"') else loc.col
    return Location(loc.file, loc.line, col, item)


# ---------------------------------------------------------------------------------------------
# Exceptions as condition text
# ---------------------------------------------------------------------------------------------

#: An exception value that is a transformer call written without a blank
#: (``toupper(proc.pname)``): Falco writes it into the condition unquoted, so it compares with
#: that transformed field; any other value is a quoted constant.
_TRANSFORMER_CALL = re.compile(r"(?:%s)\(\S*\)" % "|".join(sorted(TRANSFORMERS)))


def exception_text(exc: Exception_, lists: dict[str, Any]) -> str | None:
    """Falco's rendering of an exception as ``(f1 = v1 and f2 in (a, b)) or (...)``.

    Returns None when the exception has no values (it then excludes nothing).
    """
    def value(v: Any, comp: str) -> str:
        if takes_list(comp):
            if isinstance(v, list):
                return "(" + ", ".join(item(x) for x in v) + ")"
            s = _scalar(v)
            return f"({s})" if s in lists else "(" + item(s) + ")"
        return item(v)

    def item(v: Any) -> str:
        s = _scalar(v)
        return s if s in lists or _TRANSFORMER_CALL.fullmatch(s) else _yaml_quote(s)

    if isinstance(exc.fields, str):
        comp = exc.comps if isinstance(exc.comps, str) else "in"
        if not exc.values:
            return None
        if takes_list(comp):
            return f"{exc.fields} {comp} ({', '.join(item(v) for v in exc.values)})"
        return " or ".join(f"{exc.fields} {comp} {item(v)}" for v in exc.values)
    comps = exc.comps if isinstance(exc.comps, list) else ["="] * len(exc.fields)
    parts = []
    for vals in exc.values:
        terms = [f"{f} {c} {value(v, c)}"
                 for f, c, v in zip(exc.fields, comps, vals, strict=True)]
        parts.append("(" + " and ".join(terms) + ")")
    return " or ".join(parts) if parts else None


def rule_condition(rule: RuleDef, lists: dict[str, Any]) -> str:
    """The rule's condition with its exceptions: ``(cond) and not (exc1) and not (exc2)``."""
    texts = [t for t in (exception_text(e, lists) for e in rule.exceptions) if t]
    if not texts:
        return rule.condition
    return "(" + rule.condition + ")" + "".join(f" and not ({t})" for t in texts)
