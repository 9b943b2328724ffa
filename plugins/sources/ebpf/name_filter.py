"""Process names in the kernel: a copy of the process table's ``proc.name`` per process, and the
names the rules' prefilters test (:mod:`syswarden.core.rules.procnames`), rendered as C.

:func:`render` declares three maps and the functions that keep them:

* ``proc_names`` (an LRU hash, by process id): the process's name as the process table has it.
  The kernel writes it where the table learns it, from the same records: at a successful exec
  (the comm after it), at a fork (the parent's entry, copied to the child), and removes it at
  the process's exit.  A record the ring had no room for removes the entry instead (the table
  never learns what it said).  The processes the table found running at start (read from
  ``/proc``) are written by the source once the program is attached (never over an entry the
  kernel wrote meanwhile), and a reload's new program is given the old one's entries.
* ``rule_names`` (a hash, by name): the bits of the rules' name sets that hold the name.
* ``names_ready`` (one u32): set once ``rule_names`` is written.
* ``host_cgroups`` (a hash, by cgroup id): where the cgroup's processes run (:class:`CgroupPlaces`);
  ``place_bits()`` is both places for a cgroup not in it.

``name_bits()`` is the bits of the current process's name: every bit (no name test fails)
while ``rule_names`` is not written or the process has no entry (not known: an entry evicted,
a process forked before the program was attached), else the name's bits (0 for a name no rule
tests).  A prefilter's term with a name set is tested as ``(nbits & bit)``.
"""

from __future__ import annotations

from typing import Any, Iterable

from syswarden.core.cgroup_ids import CgroupResolver
from syswarden.core.cgroups import parse_cgroup_path
from syswarden.core.rules.procnames import COMM_LEN, CONTAINER, HOST, bit_sets

#: Processes ``proc_names`` keeps (least recently used evicted: then not known, sent).
PROC_NAMES_MAX = 65536
#: Distinct names ``rule_names`` holds at most.
RULE_NAMES_MAX = 4096
#: The maps the source writes (the loader passes their fds).
MAPS = ("proc_names", "rule_names", "names_ready", "host_cgroups")
#: Cgroups ``host_cgroups`` holds at most.
CGROUPS_MAX = 65536
#: ``place_bits()``: the current cgroup is the host's, a container's (both: not known).
PLACE_BITS = {HOST: 1, CONTAINER: 2}


class CgroupPlaces:
    """Where each cgroup's processes run, as ``host_cgroups`` holds it (:data:`PLACE_BITS`: the
    host, or the container its path names, as the container enricher takes it): every cgroup
    of the v2 hierarchy when a program is loaded (:meth:`all`), then each cgroup first seen in
    a process record (:meth:`learn`): a container started since, whose processes' place was
    not known, so their events were all sent, until its first exec reached the agent."""

    def __init__(self, resolver: CgroupResolver | None = None) -> None:
        self.resolver = resolver if resolver is not None else CgroupResolver()
        self.known: set[int] = set()

    def _place(self, path: str) -> int:
        return PLACE_BITS[HOST if parse_cgroup_path(path) is None else CONTAINER]

    def all(self) -> dict[int, int]:
        """Every cgroup there is now -> its place (they are then known)."""
        self.resolver.walk()
        places = {cid: self._place(path) for cid, path in self.resolver.paths().items()}
        self.known = set(places)
        return places

    def learn(self, events: Iterable[Any]) -> dict[int, int]:
        """The places of the cgroups of ``events`` not known yet (each looked up once; at most
        :data:`CGROUPS_MAX` are known)."""
        new: dict[int, int] = {}
        for ev in events:
            cid = ev.cgroup_id
            if cid and cid not in self.known and len(self.known) < CGROUPS_MAX:
                self.known.add(cid)
                path = self.resolver.path_of(cid)
                if path is not None:
                    new[cid] = self._place(path)
        return new


def bits_of(*name_sets: Iterable[frozenset[str] | None]) -> dict[frozenset[str], int]:
    """The bit of each name set the prefilters test (:func:`~.procnames.bit_sets`)."""
    return bit_sets(s for sets in name_sets for s in sets)


def who_c(names: frozenset[str] | None, places: frozenset[str] | None,
          bits: dict[frozenset[str], int], looked_up: bool = True) -> list[str]:
    """The C tests of a term's name set (when it has a bit) and places: on the variables
    ``nbits`` and ``place`` (``looked_up``), else calling ``name_bits()`` and
    ``place_bits()`` (where a test only runs once cheaper ones held)."""
    nbits, place = ("nbits", "place") if looked_up else ("name_bits()", "place_bits()")
    out = [f"({nbits} & {bits[names]:#x}ULL)"] if names is not None and names in bits else []
    if places is not None:
        out.append(f"({place} & {sum(PLACE_BITS[p] for p in places)})")
    return out


def render() -> str:
    """The maps and functions (always: the copy of the names is kept whatever the rules)."""
    return "\n".join([
        "struct comm_key { char c[%d]; };" % COMM_LEN,
        f"BPF_TABLE(\"lru_hash\", u32, struct comm_key, proc_names, {PROC_NAMES_MAX});",
        f"BPF_HASH(rule_names, struct comm_key, u64, {RULE_NAMES_MAX});",
        "BPF_ARRAY(names_ready, u32, 1);",
        f"BPF_HASH(host_cgroups, u64, u32, {CGROUPS_MAX});",
        "",
        "// Where the current process runs, by its cgroup as the agent takes it: 1 the host, 2 a",
        "// container, 3 not known (a cgroup the agent had not seen when it wrote the map).",
        "static __always_inline u32 place_bits(void)",
        "{",
        "    u64 cg = bpf_get_current_cgroup_id();",
        "    u32 *place = host_cgroups.lookup(&cg);",
        "    return place ? *place : 3;",
        "}",
        "",
        "// The current task's comm as a key: NUL padded (the bytes after its NUL zeroed).",
        "static __always_inline void current_comm_key(struct comm_key *k)",
        "{",
        "    __builtin_memset(k, 0, sizeof(*k));",
        "    bpf_get_current_comm(k->c, sizeof(k->c));",
        "    u8 keep = 0xff;",
        "    #pragma unroll",
        f"    for (int i = 0; i < {COMM_LEN}; i++) {{",
        "        keep &= -(u8)(k->c[i] != 0);",
        "        k->c[i] &= keep;",
        "    }",
        "}",
        "",
        "// After the exec record of process `tgid` was sent (err 0) or lost: its name as the",
        "// process table will have it, or no entry (not known).",
        "static __always_inline void names_exec(u32 tgid, int err)",
        "{",
        "    struct comm_key k;",
        "    current_comm_key(&k);",
        "    if (err || !k.c[0])",
        "        proc_names.delete(&tgid);",
        "    else",
        "        proc_names.update(&tgid, &k);",
        "}",
        "",
        "// After the fork record of a new process `child` was sent or lost: the parent's name.",
        "static __always_inline void names_fork(u32 tgid, u32 child, int err)",
        "{",
        "    struct comm_key *k = err ? 0 : proc_names.lookup(&tgid);",
        "    if (k) {",
        "        struct comm_key copy = *k;",
        "        proc_names.update(&child, &copy);",
        "    } else {",
        "        proc_names.delete(&child);",
        "    }",
        "}",
        "",
        "// The bits of the rules' name sets holding the current process's name (all: not known).",
        "static __always_inline u64 name_bits(void)",
        "{",
        "    int zero = 0;",
        "    u32 *ready = names_ready.lookup(&zero);",
        "    if (!ready || !*ready)",
        "        return ~0ULL;",
        "    u32 tgid = bpf_get_current_pid_tgid() >> 32;",
        "    struct comm_key *k = proc_names.lookup(&tgid);",
        "    if (!k)",
        "        return ~0ULL;",
        "    struct comm_key key = *k;",
        "    u64 *bits = rule_names.lookup(&key);",
        "    return bits ? *bits : 0;",
        "}",
        "",
    ])
