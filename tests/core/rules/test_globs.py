"""glob and iglob as Falco matches them: glibc's fnmatch (called here through ctypes as the
reference), in time linear in the value, whatever the value holds."""

from __future__ import annotations

import ctypes
import random
import re

import pytest
from syswarden.core.fields import FieldType
from syswarden.core.rules.globs import Glob, glob_regex
from syswarden.core.rules.operators import OPERATORS

LIBC = ctypes.CDLL(None)
FNM_CASEFOLD = 1 << 4


def fnmatch(pattern: str, value: str, flags: int = 0) -> bool:
    return LIBC.fnmatch(pattern.encode(), value.encode(), flags) == 0


@pytest.mark.parametrize("pattern, value, matches", [
    ("*../*../*", "/etc/../etc/../etc/shadow", True),     # * crosses /
    ("/etc/?hadow", "/etc//hadow", True),
    ("[\\]]", "]", True),                                   # a backslash escapes in a class
    ("[\\]]", "\\]", False),
    ("[a\\-z]", "-", True), ("[a\\-z]", "m", False),
    ("[]a]", "]", True), ("[!]a]", "b", True), ("[!]a]", "]", False),
    ("[[:digit:]]x", "7x", True), ("[[:digit:]]x", "ax", False),
    ("[![:alpha:]]", "/", True),
    ("[z-a]", "m", False),                                  # a reversed range holds nothing
    ("[ab", "[ab", True),                                   # no ]: the [ is a character
    ("a\\", "a\\", False),                                  # a trailing backslash: nothing
    ("\\*", "*", True), ("\\*", "a", False),
    ("a[&&]b", "a&b", True),                                # no set operation of re's
])
def test_glob_is_glibcs_fnmatch(pattern, value, matches):
    assert fnmatch(pattern, value) is matches           # the reference agrees with the table
    assert Glob(pattern, False)(value) is matches
    assert (glob_regex(pattern, False).fullmatch(value) is not None) is matches


def _random_cases(seed: int, n: int, alphabet: str, values: str) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    out = []
    while len(out) < n:
        p = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 7)))
        if re.search(r"\[[^\]]*-$", p):
            continue    # glibc fails on an unclosed class ending in '-' (a range to nothing)
        out.append((p, "".join(rnd.choice(values) for _ in range(rnd.randint(0, 6)))))
    return out


def test_glob_agrees_with_fnmatch_on_random_patterns():
    for pattern, value in _random_cases(14, 20000, "ab/*?[]!^-\\:", "ab/-]![\\:^"):
        want = fnmatch(pattern, value)
        g = Glob(pattern, False)
        assert g(value) is want, (pattern, value)
        assert (g.regex.fullmatch(value) is not None) is want, (pattern, value)


def test_iglob_folds_case_as_fnm_casefold():
    for pattern, value in _random_cases(15, 5000, "aB/*?!\\", "Ab/!\\"):
        assert Glob(pattern, True)(value) is fnmatch(pattern, value, FNM_CASEFOLD), \
            (pattern, value)


@pytest.mark.parametrize("pattern, value", [
    ("*/*/*/*/*.so", "/a" * 2000),               # a regex backtracks for minutes here
    ("*a*a*a*a*a*a*b", "a" * 4000),
    ("/home/*/.ssh/*x", "/home/" + "/.ssh/" * 700),
])
def test_a_hostile_value_is_matched_in_linear_time(pattern, value):
    assert Glob(pattern, False)(value) is False
    assert Glob(pattern, False)(value + pattern.replace("*", "")[-3:]) in (True, False)


@pytest.mark.parametrize("pattern", ["[z-a]", "a\\", "*a*a*a*a*a*a*b", "[[:nope:]]", "(", "[\\"])
def test_a_glob_read_from_the_event_never_raises(pattern):
    """``glob val(f)``: the pattern is the attacker's too."""
    pair = OPERATORS["glob"].pair
    assert pair is not None
    assert pair("a" * 3000, pattern) is False


def test_glob_holds_on_any_element_of_a_multi_valued_field():
    op = OPERATORS["glob"]
    g = op.const("/tmp/*", FieldType.STRING, "fd.name")
    assert op.pred(g, FieldType.STRING)("/tmp/a/b") is True
    assert op.pred(g, FieldType.STRING)("/etc/x") is False
