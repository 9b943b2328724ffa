"""docs/operators.md, generated from the operator registry: every operator, what it takes and
what it means.

``python -m syswarden.core.rules.operators_doc > docs/operators.md``;
``tests/core/rules/test_operators.py`` fails when the file is out of date.
"""

from __future__ import annotations

import sys

from ..fields import FieldType
from .operators import ANY_TYPE, MODIFIERS, OPERATORS, Operator

HEADER = """# Condition operators

Generated from the code (`python -m syswarden.core.rules.operators_doc > docs/operators.md`);
do not edit.  Each operator is one declaration in `core/rules/operators.py`; adding one is
walked through in [plugins.md](plugins.md#adding-an-operator).

A check is `field operator value` (`proc.name = bash`), `field operator list`
(`proc.name in (bash, sh)`, or a list's name: `proc.name in shell_binaries`) or
`field operator` (`fd.name exists`).  Semantics are Falco's:

- a field that cannot be read (an event without a process, an fd, a container) makes every
  comparison false, `!=` included;
- a multi-valued field (`proc.aname`, `container.mount.dest`) holds when any of its values
  does (`!=`: when none equals);
- a value is converted to the field's type when the rules load: a number that is not one, an
  IP address that is not one, an operator the field's type does not take are errors naming the
  file, line and column;
- `val(field)` on the right compares with another field of the same event (`proc.name =
  val(proc.pname)`), where the `val()` column says yes;
- a rule's `exceptions` take as comparators (`comps`) the operators the `exceptions` column
  says yes for; a list operator's exception values are lists;
- an operator the `modifiers` column says yes for may take a list with a modifier (Falco
  0.44): `proc.name startswith anyof (ba, zs)`.  {modifiers}.  Items are not deduplicated
  (`= oneof (a, a)` is false of `a`); an `allof` of an empty list is false.  In `exceptions`,
  `comps: startswith oneof` takes a list like a list operator.
"""

MODIFIER_DOCS = {"oneof": "exactly one item holds", "anyof": "at least one item holds",
                 "allof": "every item holds"}


def _types(op: Operator) -> str:
    if op.types == ANY_TYPE:
        return "any"
    names = []
    numeric = [t for t in FieldType if t.is_numeric]
    if all(t in op.types for t in numeric):
        names.append("numeric")
    names += [t.value for t in FieldType if t in op.types and not t.is_numeric]
    return ", ".join(names)


def _row(op: Operator) -> str:
    spelled = " ".join(f"`{s}`" for s in op.spelled)
    val = "yes" if op.pair is not None else "no"
    exc = "yes" if op.comparator else "no"
    mods = "yes" if op.modifiers else "no"
    return (f"| {spelled} | {op.kind.value} | {_types(op)} | {val} | {exc} | {mods} "
            f"| {op.doc} |")


def render() -> str:
    mods = "; ".join(f"`{m}`: {MODIFIER_DOCS[m]}" for m in MODIFIERS)
    out = [HEADER.format(modifiers=mods[0].upper() + mods[1:]),
           "| operator | right side | field types | `val()` | `exceptions` | modifiers "
           "| meaning |", "|---|---|---|---|---|---|---|"]
    out += [_row(op) for op in OPERATORS]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
