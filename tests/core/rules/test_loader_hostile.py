"""Hostile rules files: each a located error (file:line, what is wrong), exit 2 at start-up.

Every input below used to end in a Python traceback or to be silently accepted.
"""

from __future__ import annotations

import pytest

from syswarden.core.rules.loader import Loader
from syswarden.testing import refused_at_start

RULE = b"- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n"

# (name, file bytes, line, text the message must hold)
CASES = [
    ("non-UTF-8", RULE + b"- rule: s\n  desc: \"\xc3\x28\"\n", 7, "not UTF-8 text: byte 0xc3"),
    ("5000-digit integer", b"- required_engine_version: " + b"9" * 5000 + b"\n", 1,
     "more than 4300 digits"),
    ("5000-digit engine version", b"- required_engine_version: 0." + b"9" * 5000 + b".0\n", 1,
     "is not a version"),
    ("duplicate rule key", RULE + b"  condition: evt.type = execve\n", 6,
     "duplicate key 'condition' (first on line 3)"),
    ("duplicate list key", b"- list: l\n  items: [a]\n  items: [b]\n", 3,
     "duplicate key 'items' (first on line 2)"),
    ("deep nesting", b"- list: l\n  items: " + b"[" * 10000 + b"]" * 10000 + b"\n", 2,
     "nesting"),
    ("recursive alias", b"- list: l\n  items: &a [x, *a]\n", 2, "refers to a node that contains"),
    ("control character", b"- list: l\n  items: [\"\x07\"]\n", 2, "control characters"),
]


@pytest.mark.parametrize("name,content,line,text", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_rules_file_is_a_located_error(tmp_path, name, content, line, text):
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    result = Loader().load_files([str(path)])
    assert len(result.errors) == 1, result.errors
    [error] = result.errors
    assert (error.location.file, error.location.line) == (str(path), line), str(error)
    assert text in error.message
    assert len(error.message) < 400


@pytest.mark.parametrize("name", ["non-UTF-8", "5000-digit integer", "duplicate rule key"])
def test_start_up_exits_2_with_the_location(tmp_path, name):
    content, line = next((c[1], c[2]) for c in CASES if c[0] == name)
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    assert f"{path}:{line}:" in refused_at_start("-r", str(path))
