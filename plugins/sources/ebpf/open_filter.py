"""The rules' open prefilter (:mod:`syswarden.core.rules.prefilter`) rendered as C.

:func:`render` gives ``open_wanted(res, flags, upath)``, which the exit handlers of ``open``
and ``openat`` call before building a record: 0 keeps the open in the kernel (no rule can match
it; counted), 1 sends it.  In the order the kernel tests:

1. a term with flag tests only (``ok and write``) holds: sent;
2. the open returned a directory: sent, whatever the rules say (a later ``openat(dirfd, ...)``
   or ``fchdir`` is resolved from it by the fd table);
3. no term with a path test has its flags: kept;
4. the path is read; relative, or not as ``fd.name`` will show it (``//``, ``/.``, a trailing
   ``/``, longer than :data:`SCAN_MAX`): sent, it cannot be judged here;
5. a term whose flags hold has a prefix the path starts with: sent; else kept.
"""

from __future__ import annotations

from syswarden.core.rules.prefilter import (CREATE, OK, READ, TRUNC, WRITE, OpenPrefilter,
                                             Term, minimal_prefixes)

#: Bytes of a path checked for ``//`` and ``/.``; a longer path is sent unjudged.
SCAN_MAX = 256

_FLAG_C = {
    OK: "res >= 0",
    WRITE: "((flags & 3) == 1 || (flags & 3) == 2)",
    READ: "((flags & 3) == 0 || (flags & 3) == 2)",
    CREATE: "(flags & (0100 | 020000000))",       # O_CREAT, O_TMPFILE's own bit
    TRUNC: "(flags & 01000)",
}


def _flags_c(t: Term) -> str:
    return " && ".join(_FLAG_C[n] for n in sorted(t.needs)) or "1"


def _char_c(b: int) -> str:
    return f"'{chr(b)}'" if 32 <= b < 127 and chr(b) not in "'\\" else str(b)


def _prefix_c(prefix: str) -> str:
    """The path (``p``, ``n`` bytes without the NUL) starts with ``prefix``."""
    raw = prefix.encode()
    tests = [f"n >= {len(raw)}"] + [f"p[{i}] == {_char_c(b)}" for i, b in enumerate(raw) if i]
    return "(" + " && ".join(tests) + ")"   # p[0] == '/' was tested first


def _by_flags(terms: list[Term]) -> dict[str, list[str]]:
    """The path terms' prefixes grouped by their flag tests (as C)."""
    out: dict[str, set[str]] = {}
    for t in terms:
        out.setdefault(_flags_c(t), set()).update(t.prefixes or ())
    return {c: sorted(minimal_prefixes(frozenset(ps)) or ()) for c, ps in out.items()}


def render(pf: OpenPrefilter | None) -> str:
    """``#define OPEN_FILTER`` and, with a prefilter, ``open_wanted``."""
    if pf is None:
        return "#define OPEN_FILTER 0\n"
    flag_only = [t for t in pf.terms if t.prefixes is None]
    with_path = [t for t in pf.terms if t.prefixes is not None]
    lines = [
        "#define OPEN_FILTER 1",
        f"#define SCAN_MAX {SCAN_MAX}",
        "",
        "// Whether an open may matter to a rule (rendered from the rules: see open_filter.py).",
        "static __always_inline int open_wanted(s64 res, u64 flags, const void *upath)",
        "{",
    ]
    if flag_only:
        cond = " || ".join(f"({_flags_c(t)})" for t in flag_only)
        lines += [f"    if ({cond})", "        return 1;"]
    lines += ["    if (res >= 0 && fd_is_dir(res))", "        return 1;"]
    if not with_path:
        lines += ["    return 0;", "}", ""]
        return "\n".join(lines)
    groups = _by_flags(with_path)
    cond = " || ".join(f"({c})" for c in groups)
    lines += [
        f"    if (!({cond}))",
        "        return 0;",
        "    int zero = 0;",
        "    u8 *p = (u8 *)scratch.lookup(&zero);",
        "    if (!p)",
        "        return 1;",
        "    p += REC_HDR;                        // where the record's first string goes",
        "    long n = bpf_probe_read_user_str(p, PATH_MAX_B, upath) - 1;",
        "    if (n < 1 || p[0] != '/' || n > SCAN_MAX)",
        "        return 1;",
    ]
    for flags, prefixes in groups.items():
        tests = "\n        || ".join(_prefix_c(x) for x in prefixes) or "0"
        lines += [f"    if (({flags}) && (\n        {tests}))", "        return 1;"]
    lines += [
        "    if (p[(n - 1) & (SCAN_MAX - 1)] == '/')",
        "        return 1;",
        "    for (int i = 0; i < SCAN_MAX - 1; i++) {",
        "        if (i + 1 >= n)",
        "            break;",
        "        if (p[i] == '/' && (p[i + 1] == '.' || p[i + 1] == '/'))",
        "            return 1;",
        "    }",
        "    return 0;",
        "}",
        "",
    ]
    return "\n".join(lines)
