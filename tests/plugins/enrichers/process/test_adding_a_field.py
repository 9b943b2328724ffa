"""docs/plugins.md's walk-through "Adding a field that needs new process state", run.

Its code blocks are applied, as written, to a copy of the project (each block names its file
and where it goes); the copy then has the field: its test passes, ``--list-fields`` lists it, a
fork copies the state, a capture stores, checks and documents it.  So the walk-through's four
edits are all such a field takes, and the page cannot drift from the code.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[4]
SECTION = "## Adding a field that needs new process state"
#: What a walk-through block says of where it goes: its first line.
WHERE = re.compile(r"# (?P<file>\S+), (?:(?P<how>after|before) `(?P<anchor>.+)`|at the end):")


def walkthrough_blocks() -> list[tuple[str, str | None, str | None, str]]:
    """(file, "after"/"before"/None (at the end), anchor, code) of each block of the section."""
    text = (REPO / "docs" / "plugins.md").read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    out = []
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        first, _, code = block.partition("\n")
        m = WHERE.fullmatch(first)
        assert m, f"a walk-through block must say where it goes: {first!r}"
        out.append((m["file"], m["how"], m["anchor"], code))
    return out


def apply(root: pathlib.Path, file: str, how: str | None, anchor: str | None,
          code: str) -> None:
    """Insert ``code`` in ``root/file`` after or before the one line holding ``anchor``,
    indented as that line (or at the end of the file)."""
    path = root / file
    lines = path.read_text().splitlines(keepends=True)
    if how is None:
        lines.append("\n\n" + code)
    else:
        at = [i for i, line in enumerate(lines) if anchor in line]
        assert len(at) == 1, f"{file}: {len(at)} lines hold {anchor!r}"
        line = lines[at[0]]
        indent = line[:len(line) - len(line.lstrip())]
        lines.insert(at[0] + (how == "after"), textwrap.indent(code, indent))
    path.write_text("".join(lines))


CHECKS = r'''
import json, os, sys
from syswarden.core.capture import CaptureError, event_to_record, record_to_event
from syswarden.core.capture.schema import render_schema, render_tables
from syswarden.core.event import Event, Process, declared
from syswarden.plugins.enrichers.process.table import ProcessTable, ProcReader

assert "nice" in {a.name for a in declared(Process)}
# a fork copies it
parent = Process(100, nice=7)
table = ProcessTable(reader=ProcReader(root="/nonexistent"))
table.procs[100] = parent
table.on_fork(Event("clone", ts=1, tid=100, pid=100, res=101))
assert table.procs[101].nice == 7
# a capture writes it, reads it back, refuses a value of another type
evt = Event("openat", ts=1, tid=101, pid=101)
evt.proc = table.procs[101]
rec = json.loads(json.dumps(event_to_record(evt)))
assert rec["proc"]["nice"] == 7
assert record_to_event(rec).proc.nice == 7
try:
    record_to_event({"type": "openat", "proc": {"name": "x", "nice": "7"}})
    raise SystemExit("a nice value that is no integer was taken")
except CaptureError as exc:
    assert "proc.nice must be an integer" in str(exc), exc
# the schema and the docs' tables show it
assert json.loads(render_schema())["$defs"]["process"]["properties"]["nice"]["type"] == "integer"
assert "| `nice` | integer |" in render_tables()
print("checked")
'''


def test_the_walkthrough_adds_a_field_with_its_state(tmp_path):
    blocks = walkthrough_blocks()
    assert [b[0] for b in blocks] == [
        "core/event.py", "plugins/enrichers/process/table.py",
        "plugins/enrichers/process/fields/proc.py",
        "tests/plugins/enrichers/process/test_fields.py"]
    copy = tmp_path / "syswarden"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("core", "plugins", "commands", "rules", "tests", "docs"):
        shutil.copytree(REPO / part, copy / part, ignore=ignore)
    for path in [*REPO.glob("*.py"), REPO / "pyproject.toml"]:      # testing.py among them
        shutil.copy(path, copy / path.name)
    for block in blocks:
        apply(copy, *block)

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}      # the copy, not the installed one

    def run(*args: str, nice: int = 0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=300,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)

    test = run("-m", "pytest", "-q", "-p", "no:cacheprovider",
               "tests/plugins/enrichers/process/test_fields.py", "-k", "proc_nice", nice=3)
    assert test.returncode == 0 and "1 passed" in test.stdout, test.stdout + test.stderr
    listed = run("-m", "syswarden.core.cli", "--list-fields")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^proc\.nice +int64 +The nice value of the process", listed.stdout, re.M)
    checks = run("-c", CHECKS)
    assert checks.returncode == 0 and "checked" in checks.stdout, checks.stdout + checks.stderr
    # the generated docs are stale until regenerated, then current again
    stale = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core/test_capture.py",
                "-k", "generated_from_the_declarations")
    assert stale.returncode == 1, stale.stdout
    assert run("-m", "syswarden.core.capture.schema", "--write").returncode == 0
    assert "| `nice` | integer |" in (copy / "docs" / "capture-format.md").read_text()
    assert "nice" in json.loads((copy / "docs" / "capture-format.schema.json").read_text())[
        "$defs"]["process"]["properties"]
