"""Falco's ``rules:`` config key: enable or disable loaded rules by name or by tag, in order.

Each entry is ``{enable: {rule: NAME}}``, ``{disable: {rule: NAME}}``, ``{enable: {tag: T}}``
or ``{disable: {tag: T}}`` (an entry may name both a rule and a tag: the rule first).  A name
may hold ``*`` (any text) and ``?`` (one character), as Falco's ``enable_rule_wildcard``; a tag
selects every rule carrying it.  Later entries win, so ``disable: {rule: "*"}`` followed by
``enable: {tag: network}`` runs only the network rules.  A rule disabled in its file
(``enabled: false``) can be enabled here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol


class Selectable(Protocol):
    name: str
    tags: list[str]
    enabled: bool


def wildcard(pattern: str) -> re.Pattern[str]:
    """Falco's wildcard: ``*`` any text, ``?`` one character, everything else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def apply_selection(rules: Iterable[Selectable], selection: Iterable[dict[str, Any]]) -> None:
    """Set each rule's ``enabled`` as the ``rules:`` entries say, in order."""
    rules = list(rules)
    for entry in selection:
        enable = "enable" in entry
        what = entry["enable" if enable else "disable"] or {}
        if what.get("rule"):
            match = wildcard(str(what["rule"])).fullmatch
            for rule in rules:
                if match(rule.name):
                    rule.enabled = enable
        if what.get("tag"):
            for rule in rules:
                if what["tag"] in rule.tags:
                    rule.enabled = enable
