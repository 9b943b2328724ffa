"""Event values are the attacker's: whatever a process name, an argument or a path holds (bytes
that are not UTF-8, NUL, terminal escapes, glob and regex syntax, option-like words, very long
text), the new language (transformers, join/concat/getopt, modifiers, val() globs, widths)
raises nothing in the rule stage and prints one escaped line."""

from __future__ import annotations

import random

from syswarden.core.event import Event, Process
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.plugins.enrichers.process.fds import FdTable

CONDITIONS = [
    'toupper(fd.name) contains "ETC"',
    "basename(fd.name) = shadow",
    'b64(proc.name) = "abc"',
    "len(fd.name) > 3",
    'join(",", (proc.name, fd.name)) contains x',
    'concat(proc.name, fd.name) glob "*x*"',
    'getopt((proc.name, proc.args, fd.name), "t:")[t] = x',
    'getopt((proc.name, proc.args), "t:") intersects (x, "?")',
    "fd.name glob val(proc.name)",
    "fd.name iglob val(proc.name)",
    "fd.name startswith val(proc.name)",
    'fd.name glob anyof ("/etc/*", "*\\xff*")',
    'fd.name contains "\\xff"',
    "proc.name icontains oneof (a, B)",
    "evt.arg[2] contains x",
    "syscall.type = openat and fd.num < 0",
]
OUTPUT = ('%toupper(proc.name) %basename(fd.name) %3proc.name %b64(fd.name) '
          '%join(",", (proc.name, fd.name)) %getopt((proc.args, proc.name), "t:") %evt.arg[2]')
PIECES = ["\udcff", "\x00", "\x1b[2K", "\n", "[z-a]", "*a*a*a*a*a*", "\\", "\u00e9", "\u202e",
          "-t", "--", "", "a" * 3000, "%", "(", "'", '"', "[[:alpha:]", "\\x41"]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_no_event_value_raises_or_breaks_the_line(tmp_path):
    rules = "".join(f"- rule: r{i}\n  desc: d\n  condition: {_quoted('evt.type = openat and ' + c)}"
                    f"\n  output: {_quoted(OUTPUT)}\n  priority: WARNING\n"
                    for i, c in enumerate(CONDITIONS))
    (tmp_path / "rules.yaml").write_text(rules)
    eng = RuleEngine.load([str(tmp_path / "rules.yaml")], collect_fields(), rule_matching="all")
    fds = FdTable(proc_root=str(tmp_path / "noproc"))
    rnd = random.Random(14)

    def text() -> str:
        return "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 4)))
    hits = 0
    for _ in range(800):
        p = Process(1000)
        p.comm, p.exepath = text(), "/usr/bin/" + text()
        p.args = [text() for _ in range(rnd.randint(0, 4))]
        ev = Event("openat", ts=1, tid=1000, pid=1000, res=rnd.choice([3, -2]),
                   args={"dirfd": -100, "name": "/" + text(), "flags": 0, "mode": 0})
        ev.proc = p
        fds.enrich(ev, p)
        for alert in eng.check(ev):
            hits += 1
            assert alert.output.isprintable() or set(alert.output) <= {" "}, alert.output
            alert.output.encode()                       # no lone surrogate left
    assert eng.errors == 0                              # no rule raised, none was skipped
    assert hits > 100
