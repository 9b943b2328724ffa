"""The rules' open prefilter (:mod:`syswarden.core.rules.prefilter`) rendered as C.

:func:`render` gives ``open_wanted(res, flags, upath)``, which the exit handlers of ``open``
and ``openat`` call before building a record: 0 keeps the open in the kernel (no rule can match
it; counted), 1 sends it.  In the order the kernel tests:

1. a term with flag tests only (``ok and write``) holds: sent;
2. the open returned a directory: sent, whatever the rules say (a later ``openat(dirfd, ...)``
   or ``fchdir`` is resolved from it by the fd table);
3. no term with a path test has its flags: kept;
4. the path is read; relative, or not as ``fd.name`` will show it (``//``, a ``.`` or ``..``
   component, a trailing ``/``, longer than :data:`SCAN_MAX`): sent, it cannot be judged here;
5. a term whose flags hold has a prefix the path starts with and (when it has substrings) a
   substring the path contains: sent; else kept.

A substring is searched by a bounded loop over the path (at most :data:`SCAN_MAX` bytes), one
small function per distinct substring.

The terms beyond Falco's path as written are rendered apart, in ``realpath_wanted(res, flags,
rplen)``, which the handlers call when ``open_wanted`` does not keep an open (the realpath is
walked for it only when ``realpath_needed(res, flags)``, the flag and name tests of the
``fd.realpath`` terms, says a term may read it): a term on ``fd.realpath``
tests its prefixes on the path the kernel resolved from the opened file (``fd_realpath``, walked
before, ``rplen`` bytes; one cut short is sent), a ``samefile`` term compares the file's device
(``s_dev``, major << 20 | minor) and inode numbers with those of the files the rule names.
"""

from __future__ import annotations

from syswarden.core.rules.prefilter import (CREATE, MAX_SUBSTRINGS, OK, READ, TRUNC, WRITE,
                                             OpenPrefilter, Term, minimal_prefixes)

from . import name_filter

#: Bytes of a path checked for ``//``, ``/./`` and ``/../``; a longer path is sent unjudged.
SCAN_MAX = 256

_FLAG_C = {
    OK: "res >= 0",
    WRITE: "((flags & 3) == 1 || (flags & 3) == 2)",
    READ: "((flags & 3) == 0 || (flags & 3) == 2)",
    CREATE: "(flags & (O_CREAT | __O_TMPFILE))",      # (record.py's ABI)
    TRUNC: "(flags & O_TRUNC)",
}


def _flags_c(t: Term, bits: dict[frozenset[str], int]) -> str:
    """A term's flag tests, its name test (when its name set has a bit) and its place test,
    as C."""
    # the name and the place looked up only once the flags held (most opens stop there)
    tests = [_FLAG_C[n] for n in sorted(t.needs)] + name_filter.who_c(t.names, t.places, bits,
                                                                       looked_up=False)
    return " && ".join(tests) or "1"


def _char_c(b: int) -> str:
    return f"'{chr(b)}'" if 32 <= b < 127 and chr(b) not in "'\\" else str(b)


def _prefix_c(prefix: str) -> str:
    """The path (``p``, ``n`` bytes without the NUL) starts with ``prefix``."""
    raw = prefix.encode()
    tests = [f"n >= {len(raw)}"] + [f"p[{i}] == {_char_c(b)}" for i, b in enumerate(raw) if i]
    return "(" + " && ".join(tests) + ")"   # p[0] == '/' was tested first


def _by_flags(terms: list[Term], bits: dict[frozenset[str], int]) -> dict[str, list[str]]:
    """The prefix-only terms' prefixes grouped by their flag (and name) tests (as C)."""
    out: dict[str, set[str]] = {}
    for t in terms:
        out.setdefault(_flags_c(t, bits), set()).update(t.prefixes or ())
    return {c: sorted(minimal_prefixes(frozenset(ps)) or ()) for c, ps in out.items()}


def _groups_c(groups: dict[str, list[str]], indent: str) -> list[str]:
    """Return 1 when a group's flag tests hold and the path (``p``, ``n``) starts with one of
    its prefixes."""
    out = []
    for flags, prefixes in groups.items():
        tests = f"\n{indent}    || ".join(_prefix_c(x) for x in prefixes) or "0"
        out += [f"{indent}if (({flags}) && (\n{indent}    {tests}))", f"{indent}    return 1;"]
    return out


def _substring_bits(terms: list[Term]) -> dict[str, int]:
    """Every substring the terms test -> its bit in the ``want`` mask."""
    subs = sorted({x for t in terms for x in (t.substrings or ())})
    return {x: 1 << i for i, x in enumerate(subs)}


def _substring_c(sub: str, bit: int) -> list[str]:
    """Inside the scan, without a branch: sets ``bit`` of ``hits`` when the path holds ``sub``
    from position ``i``.  The path's bytes are compared eight at a time (a little-endian
    ``u64`` load, XORed with the substring's bytes and masked to their count: unaligned loads
    from a map value are allowed where the machine has them cheap, as x86_64); ``d`` is 0
    there when every byte is equal and ``sub`` ends within the path (``left`` is not below its
    length).  ``(d | -d) >> 63`` is 1 exactly when ``d`` is not 0."""
    raw = sub.encode()
    words = []
    for off in range(0, len(raw), 8):
        chunk = raw[off:off + 8]
        value = int.from_bytes(chunk, "little")
        mask = (1 << (8 * len(chunk))) - 1
        at = f"(i + {off}) & (2 * SCAN_MAX - 1)" if off else "i"
        words.append(f"((*(volatile const u64 *)(q + ({at})) ^ {value:#x}ULL) & {mask:#x}ULL)")
    return [f"        d = {' | '.join(words)};",
            f"        d |= (u64)(left - {len(raw)}) >> 63;",
            f"        hits |= (((d | (0 - d)) >> 63) ^ 1) * {bit:#x};"]


def _term_c(t: Term, bits: dict[frozenset[str], int]) -> str:
    """A term's flag, name and prefix tests as C."""
    parts = [_flags_c(t, bits)]
    if t.prefixes is not None:
        parts.append("(" + (" || ".join(_prefix_c(x) for x in sorted(t.prefixes)) or "0") + ")")
    return " && ".join(parts)


def _realpath_wanted(terms: list[Term], names: dict[frozenset[str], int]) -> list[str]:
    """``realpath_wanted``: the terms on ``fd.realpath`` and ``samefile``."""
    lines = [
        "// Whether an open may matter to a rule by the file it opened: its path as the kernel",
        "// resolved it (rplen bytes at RP_PATH in rp_buffer()) or its identity.",
        "static __always_inline int realpath_wanted(s64 res, u64 flags, u32 rplen)",
        "{",
    ]
    real = [t for t in terms if t.real and t.ids is None]
    ids = [t for t in terms if t.ids is not None]
    groups = _by_flags(real, names) if real else {}
    cond = " || ".join(f"({c})" for c in groups) or "0"
    lines[2:2] = [
        "// Whether realpath_wanted may read the realpath of this open (a term on fd.realpath",
        "// whose flag and name tests hold): if not, an open nothing else keeps is judged without",
        "// the walk.",
        "static __always_inline int realpath_needed(s64 res, u64 flags)",
        "{",
        f"    return {cond};",
        "}",
        "",
    ]
    if real:
        lines += [
            f"    if (rplen && ({cond})) {{",
            "        u8 *b = rp_buffer();",
            "        if (!b)",
            "            return 1;",
            "        u8 *p = b + RP_PATH;",
            "        u32 n = rplen;",
            "        if (p[0] != '/')",
            "            return 1;                    // cut short: cannot be judged",
        ]
        lines += _groups_c(groups, "        ")
        lines.append("    }")
    if ids:
        cond = " || ".join(f"({_flags_c(t, names)})" for t in ids)
        lines += [
            f"    if (res >= 0 && ({cond})) {{",
            "        void *inode = fd_inode(res);",
            "        u32 dev = inode_kdev(inode);",
            "        u64 ino = inode_ino(inode);",
        ]
        for t in ids:
            same = " || ".join(f"(dev == {major << 20 | minor} && ino == {ino}ULL)"
                               for major, minor, ino in sorted(t.ids or ())) or "0"
            lines += [f"        if (({_flags_c(t, names)}) && ({same}))", "            return 1;"]
        lines.append("    }")
    return lines + ["    return 0;", "}", ""]


def render(pf: OpenPrefilter | None, names: dict[frozenset[str], int] | None = None) -> str:
    """``#define OPEN_FILTER`` and, with a prefilter, ``open_wanted`` and ``realpath_wanted``.
    ``names``: the bit of each name set in ``name_bits()`` (:mod:`.name_filter`; a set without
    one is not tested)."""
    names = names or {}
    if pf is None:
        return "#define OPEN_FILTER 0\n"
    flag_only = [t for t in pf.terms if not t.has_path_test]
    by_file = [t for t in pf.terms if t.real or t.ids is not None]
    with_path = [t for t in pf.terms if t.has_path_test and t not in by_file]
    prefix_only = [t for t in with_path if t.substrings is None]
    with_subs = [t for t in with_path if t.substrings is not None]
    bits = _substring_bits(with_subs)
    if len(bits) > MAX_SUBSTRINGS:            # filters' prefilters joined: bits of a u32
        return "#define OPEN_FILTER 0\n"
    lines = [
        "#define OPEN_FILTER 1",
        f"#define SCAN_MAX {SCAN_MAX}",
        "",
        *_realpath_wanted(by_file, names),
        "// Whether an open may matter to a rule (rendered from the rules: see open_filter.py).",
        "static __always_inline int open_wanted(s64 res, u64 flags, const void *upath)",
        "{",
    ]
    if flag_only:
        cond = " || ".join(f"({_flags_c(t, names)})" for t in flag_only)
        lines += [f"    if ({cond})", "        return 1;"]
    lines += ["    if (res >= 0 && fd_is_dir(res))", "        return 1;"]
    if not with_path:
        lines += ["    return 0;", "}", ""]
        return "\n".join(lines)
    groups = _by_flags(prefix_only, names)
    cond = " || ".join(f"({c})" for c in {**groups, **{_flags_c(t, names): []
                                                        for t in with_subs}})
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
    lines += _groups_c(groups, "    ")
    # the substrings whose terms' flags and prefixes hold, looked for in the scan below
    lines += ["    u32 want = 0, hits = 0;", "    u64 d = 0;"]
    for t in with_subs:
        mask = sum(bits[x] for x in t.substrings or ())
        lines += [f"    if ({_term_c(t, names)})", f"        want |= {mask:#x};"]
    # One scan, the last thing the function does: a path to normalise (//, a . or ..
    # component; a dot file such as /.ssh is fine) is sent, so is one holding a wanted
    # substring.  What keeps it within the verifier's budget (a million instructions, which a
    # state per combination of partial matches, positions and lengths exceeds at once): the
    # substrings are compared without a branch, every byte is read afresh (volatile: a byte
    # kept in a register would carry what a comparison learnt of it into the next tests), and
    # the bytes left are counted in a copy of the length the verifier cannot relate to `n`.
    lines += [
        "    if (p[(n - 1) & (SCAN_MAX - 1)] == '/')",
        "        return 1;",
        "    volatile const u8 *q = p;           // every byte read afresh (see open_filter.py)",
        "    for (int i = 0; i < SCAN_MAX; i++) {",
        "        if (i >= n)",
        "            break;",
        "        if (q[i] == '/') {",
        "            if (q[i + 1] == '/')",
        "                return 1;",
        "            if (q[i + 1] == '.' && (q[i + 2] == '/' || q[i + 2] == 0))",
        "                return 1;",
        "            if (q[i + 1] == '.' && q[i + 2] == '.' &&",
        "                (q[(i + 3) & (2 * SCAN_MAX - 1)] == '/' ||",
        "                 q[(i + 3) & (2 * SCAN_MAX - 1)] == 0))",
        "                return 1;",
        "        }",
    ]
    if bits:
        lines += ["        long left = n - i;               // bytes from i to the end",
                  '        asm volatile("" : "+r"(left));']
        for sub, bit in bits.items():
            lines += _substring_c(sub, bit)
    lines += [
        "    }",
        "    return (hits & want) != 0;" if bits else "    return 0;",
        "}",
        "",
    ]
    return "\n".join(lines)
