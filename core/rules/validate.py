"""``syswarden -V FILE``: validate rules files and report like Falco's ``falco -V``.

The files are loaded together, in order (a later file may use an earlier one's macros and
lists), and compiled against the field registry.  Each file gets a verdict::

    /etc/syswarden/rules.yaml: Ok
    /etc/syswarden/broken.yaml: Invalid
    1 Errors:
    In rule 'Shell in container': (/etc/syswarden/broken.yaml:5:13)
    ------
    evt.type = execve and proc.nme = bash
                          ^
    ------
    LOAD_ERR_COMPILE_CONDITION (Error compiling condition): unknown field 'proc.nme'

followed by its warnings the same way (``Ok, with warnings``).  With ``json_output`` the result
is Falco's JSON document (``falco_load_results``: per file ``name``, ``successful``, ``errors``,
``warnings``, each with ``code``, ``codedesc``, ``message`` and ``context`` locations and
snippet).  The exit code is 0 when every file is valid, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from ..errors import Location, RuleError
from ..fields import FieldRegistry
from .engine import load_rules
from .loader import BUILTIN_PLUGINS, NEEDS_PLUGIN, NEEDS_SOURCE, expand_paths

CODES = {
    "LOAD_ERR_FILE_READ": "Could not read file",
    "LOAD_ERR_YAML_PARSE": "Invalid yaml",
    "LOAD_ERR_YAML_VALIDATE": "Yaml document does not match schema",
    "LOAD_ERR_COMPILE_CONDITION": "Error compiling condition",
    "LOAD_ERR_COMPILE_OUTPUT": "Error compiling output",
    "LOAD_ERR_VALIDATE": "Error in item",
    "LOAD_UNUSED_MACRO": "Unused macro",
    "LOAD_UNUSED_LIST": "Unused list",
    "LOAD_NO_EVTTYPE": "No event types specified in rule",
    "LOAD_UNKNOWN_KEY": "Unknown key",
    "LOAD_UNKNOWN_ITEM": "Unknown item",
    "LOAD_UNKNOWN_SOURCE": "Unknown rule source",
    "LOAD_UNKNOWN_FILTER": "Unknown filter",
    "LOAD_UNKNOWN_EVTTYPE": "Unknown event type",
    "LOAD_UNKNOWN_PLUGIN": "Required plugin not available",
    "LOAD_INVALID_MACRO_NAME": "Invalid macro name",
    "LOAD_COMPILE_CONDITION": "Warning in rule condition",
    "LOAD_APPEND_NO_VALUES": "Overriding/appending with no values",
    "LOAD_EXCEPTION_NAME_NOT_UNIQUE": "Multiple exceptions defined with the same name",
    "LOAD_DEPRECATED_ITEM": "Used deprecated item",
}


def classify(err: RuleError, warning: bool) -> str:
    """Falco's code for a problem, from what it says."""
    msg = err.message
    if warning:
        for needle, code in (("macro not referenced", "LOAD_UNUSED_MACRO"),
                             ("list not referenced", "LOAD_UNUSED_LIST"),
                             ("too many evt.type", "LOAD_NO_EVTTYPE"),
                             ("unknown key", "LOAD_UNKNOWN_KEY"),
                             ("unknown top-level item", "LOAD_UNKNOWN_ITEM"),
                             ("rule source", "LOAD_UNKNOWN_SOURCE"),
                             ("skip-if-unknown-filter", "LOAD_UNKNOWN_FILTER"),
                             ("unknown event type", "LOAD_UNKNOWN_EVTTYPE"),
                             ("require plugin", "LOAD_UNKNOWN_PLUGIN"),
                             ("is not an identifier", "LOAD_INVALID_MACRO_NAME"),
                             ("misused as a const", "LOAD_COMPILE_CONDITION"),
                             ("regex check with", "LOAD_COMPILE_CONDITION"),
                             ("with no values", "LOAD_APPEND_NO_VALUES"),
                             ("multiple definitions of exception",
                              "LOAD_EXCEPTION_NAME_NOT_UNIQUE"),
                             ("is ignored in an item with 'append'", "LOAD_DEPRECATED_ITEM")):
            if needle in msg:
                return code
        return "LOAD_UNKNOWN_ITEM"
    if msg.startswith("cannot read"):
        return "LOAD_ERR_FILE_READ"
    if msg.startswith("invalid YAML"):
        return "LOAD_ERR_YAML_PARSE"
    if "in output" in msg:
        return "LOAD_ERR_COMPILE_OUTPUT"
    if msg.startswith((NEEDS_PLUGIN, NEEDS_SOURCE)):
        return "LOAD_ERR_VALIDATE"      # what the file needs is not loaded (fatal to Falco)
    if getattr(err, "column", None) is not None:
        return "LOAD_ERR_COMPILE_CONDITION"
    return "LOAD_ERR_YAML_VALIDATE"


def _split(err: RuleError) -> tuple[str, str]:
    """(message, snippet): a condition error carries its snippet after the first line."""
    reason = getattr(err, "reason", None)
    if reason is not None:
        head, _, snip = err.message.partition("\n")
        return reason, snip
    return err.message, ""


def _file_snippet(loc: Location | None, cache: dict[str, list[str]]) -> str:
    if loc is None or not loc.file or not loc.line:
        return ""
    lines = cache.get(loc.file)
    if lines is None:
        try:
            with open(loc.file, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            lines = []
        cache[loc.file] = lines
    if loc.line > len(lines):
        return ""
    col = (loc.col or 1) - 1
    return f"{lines[loc.line - 1]}\n{' ' * col}^"


def _where(loc: Location | None) -> str:
    if loc is None:
        return "<input>"
    return f"{loc.file or '<input>'}:{loc.line or 0}:{loc.col or 0}"


def _entry(err: RuleError, warning: bool, cache: dict[str, list[str]]) -> dict[str, Any]:
    code = classify(err, warning)
    message, snip = _split(err)
    loc = err.location
    if not snip:
        snip = _file_snippet(loc, cache)
    locations = [{"item_type": "rules content", "item_name": "",
                  "position": {"name": loc.file if loc else "", "line": 0, "column": 0,
                               "offset": 0}}]
    if loc is not None:
        kind, _, name = (loc.item or "").partition(" ")
        locations.append({"item_type": kind or "item", "item_name": name.strip("'"),
                          "position": {"name": loc.file or "", "line": loc.line or 0,
                                       "column": loc.col or 0, "offset": 0}})
    return {"code": code, "codedesc": CODES[code], "message": message,
            "context": {"locations": locations, "snippet": snip}}


def _text(entry: dict[str, Any]) -> str:
    loc = entry["context"]["locations"][-1]
    pos = loc["position"]
    head = f"In {loc['item_type']} '{loc['item_name']}'" if loc["item_name"] else "In rules content"
    lines = [f"{head}: ({pos['name']}:{pos['line']}:{pos['column']})"]
    if entry["context"]["snippet"]:
        lines += ["------", entry["context"]["snippet"], "------"]
    lines.append(f"{entry['code']} ({entry['codedesc']}): {entry['message']}")
    return "\n".join(lines)


def validate(paths: list[str], fields: FieldRegistry, json_output: bool,
             out: TextIO = sys.stdout, *, describe: str | bool = False,
             plugins: Iterable[str] = BUILTIN_PLUGINS) -> int:
    """Validate rules files; print Falco's report; return 0 when all are valid, else 1.

    ``describe``: as Falco's ``-V`` with ``-L`` (True) or ``-l RULE`` (the name), the valid
    files' rules are then described too (``falco_describe_results`` in the JSON);
    ``plugins``: the Falco plugins whose requirement is met (the config's)."""
    files = expand_paths(paths)
    result, _, _ = load_rules(files, fields, plugins=plugins)
    per_file: dict[str, tuple[list[RuleError], list[RuleError]]] = {f: ([], []) for f in files}
    for errs, bucket in ((result.errors, 0), (result.warnings, 1)):
        for e in errs:
            f = e.location.file if e.location and e.location.file in per_file else files[-1] \
                if files else None
            if f is not None:
                per_file[f][bucket].append(e)
    cache: dict[str, list[str]] = {}
    ok_all = True
    docs = []
    text_out: list[str] = []
    for f in files:
        errors, warnings = per_file[f]
        errors.sort(key=lambda e: (e.location.line or 0) if e.location else 0)
        warnings.sort(key=lambda e: (e.location.line or 0) if e.location else 0)
        ok_all &= not errors
        e_entries = [_entry(e, False, cache) for e in errors]
        w_entries = [_entry(w, True, cache) for w in warnings]
        docs.append({"name": f, "successful": not errors, "errors": e_entries,
                     "warnings": w_entries})
        if errors:
            verdict = "Invalid"
        elif warnings:
            verdict = "Ok, with warnings"
        else:
            verdict = "Ok"
        text_out.append(f"{f}: {verdict}")
        if e_entries:
            text_out.append(f"{len(e_entries)} Errors:")
            text_out.extend(_text(x) for x in e_entries)
        if w_entries:
            text_out.append(f"{len(w_entries)} Warnings:")
            text_out.extend(_text(x) for x in w_entries)
    described = None
    if describe is not False and ok_all:
        from .describe import describe as describe_rules
        described = describe_rules(files, fields, None if describe is True else describe)
    if json_output:
        doc: dict[str, Any] = {"falco_load_results": docs}
        if described is not None:
            doc["falco_describe_results"] = described
        out.write(json.dumps(doc, indent=None) + "\n")
    else:
        out.write("\n".join(text_out) + "\n")
        if described is not None:
            from ..info import describe_text
            out.write("\n")
            describe_text([(r["info"]["name"], r["info"]["description"])
                           for r in described["rules"]], out)
    return 0 if ok_all else 1
