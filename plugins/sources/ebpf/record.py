"""The kernel record: the one declaration of what ``program.c`` sends and :mod:`.decode` reads.

A record is ``struct rec`` (:data:`FIELDS`, laid out as a C compiler lays them out, any padding
made explicit) followed by its strings back to back, one per string slot (at most
:data:`STRING_SLOTS`), their lengths in ``slen``.  Its ``kind`` (:class:`Kind`) says what it
is.  The kernel counts the records it sends and drops per :data:`CATEGORIES`; the syscall
numbers it compares or passes through are :data:`SYSCALL_NR`'s.

Both sides derive from this module: :func:`render_c` is the C block ``program.py`` puts in
place of ``program.c``'s ``@RECORD@`` marker (the struct, ``REC_HDR``, ``STRING_SLOTS``, the
``KIND_*``, ``CAT_*``, ``SLOT_*`` and ``NR_*`` constants); :data:`FORMAT` is the same layout
for :mod:`struct` and :data:`AT` the position of each field in the tuple it unpacks, so the
decoder reads fields by name; :func:`pack` builds a record by field name.  A field added here
is sent by the kernel side once it is written there, and read by the decoder by its name;
nothing else lists them.  A layout the kernel side cannot index (string slots not a power of
two) fails at import.
"""

from __future__ import annotations

import platform
import stat
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from syswarden.core.errors import Location, PluginError
from syswarden.core.syscalls import O_CREAT, O_TMPFILE_OWN, O_TRUNC, SOCKET_FAMILIES

#: C type -> (size in bytes, :mod:`struct` code); the size is also the alignment.
C_TYPES: dict[str, tuple[int, str]] = {
    "u8": (1, "B"), "u16": (2, "H"), "s32": (4, "i"), "u32": (4, "I"), "u64": (8, "Q"),
    "s64": (8, "q"), "char": (1, "s"),
}

#: The strings a record can carry.  A power of two: the kernel side bounds a slot index with
#: ``slot & (STRING_SLOTS - 1)`` for the verifier.  A syscall declared with more strings than
#: this is refused where it is declared (``program.py``).
STRING_SLOTS = 4

#: The bytes of an I/O buffer a record carries at most (a receive's data: Falco's
#: ``evt.buffer``, ``evt.arg.data``): Falco's ``snaplen`` (``falco_libs.snaplen``, 80 by
#: default).  The program is rendered with the configured value (``ebpf`` ``snaplen``, see
#: ``program.py``) as ``SNAPLEN``, never above :data:`SNAPLEN_MAX` (a buffer is copied into
#: the record's scratch space below its half, where every write starts).
SNAPLEN = 80
SNAPLEN_MAX = 4096


@dataclass(frozen=True)
class Field:
    """One member of ``struct rec``."""

    name: str
    ctype: str                 # a key of C_TYPES
    count: int = 1             # more than 1: an array (``a[6]``)
    doc: str = ""

    @property
    def size(self) -> int:
        return C_TYPES[self.ctype][0] * self.count


FIELDS: tuple[Field, ...] = (
    Field("ts", "u64", doc="bpf_ktime_get_ns: CLOCK_MONOTONIC"),
    Field("cgroup", "u64", doc="the task's cgroup id"),
    Field("res", "s64", doc="the return value (fork: the child's id)"),
    Field("a", "u64", 6, doc="the syscall's register arguments"),
    Field("tid", "u32"),
    Field("pid", "u32"),
    Field("cpu", "u32", doc="the CPU it ran on (evt.cpu)"),
    Field("spare", "u32", doc="0"),
    Field("kind", "u16", doc="KIND_*"),
    Field("evt", "u16", doc="syscall: its position in SYSCALLS; exec, fork: its number"),
    Field("slen", "u16", STRING_SLOTS, doc="the strings' lengths, by slot"),
    Field("extra", "u32", doc="fork: child tid; exec: old pid; exit: group_dead; open: created; "
          "a socket call (SOCK_INFO): its socket's family, type, protocol"),
    Field("ino", "u64", doc="the inode of the fd the syscall created or used (0: none, "
          "unknown); a credential call: the effective capabilities after it"),
)


class Kind(IntEnum):
    """What a record is: ``struct rec``'s ``kind``, ``KIND_<NAME>`` in C."""

    SYSCALL = 1        # a syscall's exit; ``evt``: its position in SYSCALLS
    EXEC = 2           # sched_process_exec: a successful execve/execveat
    FORK = 3           # sched_process_fork, in the parent (the clone family's event)
    EXIT = 4           # sched_process_exit
    EXEC_FAIL = 5      # a failed execve/execveat, from its exit


#: The string slots of an exec record, ``SLOT_<NAME>`` in C: the file the kernel ran
#: (sched_process_exec's filename), the path as passed, argv and the environment (both
#: NUL-separated, as read from the caller's memory at the exec's entry).  A fork record sends
#: the parent's comm alone, in slot 0.
EXEC_SLOTS: tuple[str, ...] = ("filename", "path", "argv", "env")
SLOT: dict[str, int] = {name: i for i, name in enumerate(EXEC_SLOTS)}

#: What an exec record (``KIND_EXEC``, ``KIND_EXEC_FAIL``) carries between ``struct rec`` and
#: its strings: ``struct exec_tail``, the new image's credentials and executable as the kernel
#: has them at ``sched_process_exec`` (task->cred, task->mm->exe_file; offsets from BTF).
EXEC_TAIL: tuple[Field, ...] = (
    Field("cap_effective", "u64", doc="task->cred's capability sets"),
    Field("cap_permitted", "u64"),
    Field("cap_inheritable", "u64"),
    Field("exe_ino", "u64", doc="the executable's inode: number, ctime, mtime (ns)"),
    Field("exe_ctime", "u64"),
    Field("exe_mtime", "u64"),
    Field("fdlimit", "u64", doc="RLIMIT_NOFILE's soft limit"),
    Field("euid", "u32", doc="the effective ids (Falco's user.uid, group.gid; the real ones "
          "when the cred cannot be read)"),
    Field("egid", "u32"),
    Field("flags", "u32", doc="EXE_* bits"),
    Field("vm_size", "u32", doc="memory, kB: total, resident, swapped (task->mm)"),
    Field("vm_rss", "u32"),
    Field("vm_swap", "u32"),
    Field("pf_major", "u32", doc="page faults so far (task->maj_flt, min_flt)"),
    Field("pf_minor", "u32"),
    Field("vpgid", "u32", doc="process group and session ids in its own pid namespace (0: "
          "not read, or not visible there)"),
    Field("vsid", "u32"),
    Field("comm", "char", 16, doc="the comm after the exec"),
)

@dataclass(frozen=True)
class Part:
    """A value a record of one kind carries in a register slot of ``a[]`` its syscall does
    not use: ``bits`` bits of ``a[reg]`` from bit ``shift``."""

    name: str
    reg: int
    shift: int = 0
    bits: int = 64
    doc: str = ""

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def get(self, regs: Any) -> int:
        """Its value in the registers ``regs`` (the record's ``a``, as unpacked)."""
        return (regs[self.reg] >> self.shift) & self.mask


#: What an exec record carries in ``a[]`` beside its syscall's arguments (execve has three,
#: execveat five; a[3] is envp, which the decoder does not read): ``EXEC_PUT`` in C.
EXEC_PARTS: tuple[Part, ...] = (
    Part("vpid", 3, 0, 32, "the pid in the process's own pid namespace"),
    Part("tty", 5, 0, 32, "the controlling terminal of the new image"),
    Part("loginuid", 5, 32, 32, "its login uid (audit)"),
)
#: :data:`EXEC_PARTS` by name.
EXEC_PART: dict[str, Part] = {p.name: p for p in EXEC_PARTS}

#: What a fork record (``KIND_FORK``, sent from sched_process_fork in the parent) carries in
#: ``a[]``: ``FORK_PUT`` in C.  ``evt`` has the syscall's number (0xffff: not known, a kernel
#: thread's fork), ``extra`` the child's tid, string slot 0 the parent's comm.
FORK_PARTS: tuple[Part, ...] = (
    Part("flags", 0, 0, 64, "the clone flags: clone's first argument, clone3's "
         "clone_args.flags; 0 for fork, vfork or when not known"),
    Part("uid", 2, 0, 32, "the parent's real uid (the child's)"),
    Part("gid", 2, 32, 32, "the parent's real gid"),
)
#: :data:`FORK_PARTS` by name.
FORK_PART: dict[str, Part] = {p.name: p for p in FORK_PARTS}


def pack_parts(parts: tuple[Part, ...], **values: int) -> list[int]:
    """The six registers of a record whose ``parts`` have ``values`` (absent: 0)."""
    unknown = set(values) - {p.name for p in parts}
    if unknown:
        raise TypeError(f"no part {', '.join(sorted(unknown))}")
    regs = [0] * 6
    for p in parts:
        regs[p.reg] |= (values.get(p.name, 0) & p.mask) << p.shift
    return regs


@dataclass(frozen=True)
class Bits:
    """A value packed in a record's ``extra``: ``bits`` bits from bit ``shift``."""

    name: str
    shift: int
    bits: int
    doc: str = ""

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def get(self, word: int) -> int:
        return (word >> self.shift) & self.mask


#: What the record of a socket call (:data:`~.program.SOCK_INFO`: connect, accept, listen,
#: dup...) carries in ``extra``: its socket as the kernel has it, ``SOCK_INFO_OF`` in C; 0 when
#: the fd is not a socket or it could not be read.  The family is never 0 (AF_UNSPEC) for a
#: socket read.
SOCK_INFO: tuple[Bits, ...] = (
    Bits("family", 0, 8, "sk_family (AF_*)"),
    Bits("type", 8, 8, "the socket's type (SOCK_*: socket->type)"),
    Bits("protocol", 16, 8, "sk_protocol's low byte (IPPROTO_*)"),
)
#: :data:`SOCK_INFO` by name.
SOCK_BITS: dict[str, Bits] = {b.name: b for b in SOCK_INFO}


def pack_sock_info(family: int, stype: int, protocol: int = 0) -> int:
    """The ``extra`` of a socket call's record on a socket of this family, type, protocol."""
    values = {"family": family, "type": stype, "protocol": protocol}
    return sum((values[b.name] & b.mask) << b.shift for b in SOCK_INFO)


#: The bits of ``exec_tail.flags``, ``EXE_<NAME>`` in C.
EXE_FLAGS: dict[str, int] = {
    "CREDS": 1,          # the credentials were read (the BTF offsets were there)
    "FILE": 2,           # the executable's inode was read
    "UPPER_LAYER": 4,    # the executable is in the upper layer of an overlayfs
    "WRITABLE": 8,       # the executable is writable by the process's effective ids
    "RESOURCES": 16,     # the memory, page faults and fd limit were read
    "GROUPS": 32,        # the process group and session were read
}


@dataclass(frozen=True)
class Category:
    """A kernel counter category, ``CAT_<NAME>`` in C.  Each has two per-CPU counters:
    ``counters[2 * cat]`` counts what happened and, for a drop category, ``counters[2 * cat +
    1]`` what was lost."""

    name: str
    metric: str          # drops: drops.kernel.<metric> counts the lost; else the metric counting it
    drops: bool
    doc: str
    #: a drop category whose records are events: what it sends and loses is what the drop
    #: monitor (Falco's ``syscall_event_drops``) weighs
    events: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category("PROC", "proc", True, "records for proc_ring", events=True),
    Category("EVT", "events", True, "records for evt_ring", events=True),
    Category("PENDING", "pending", True, "syscall enters stored; lost: a slot taken over"),
    Category("EXEC", "exec", True, "exec argv stashes"),
    Category("RETRY", "ebpf.ring_retries", False, "ring outputs retried"),
    Category("FILTERED", "ebpf.opens_filtered", False, "opens no rule can match, kept here"),
    Category("ROOM", "ebpf.drops_with_room", False, "records lost while their ring had room"),
    Category("SOCK_FILTERED", "ebpf.sockets_filtered", False,
             "socket syscalls on a class no rule can match, kept here"),
)
#: How many per-CPU counters the kernel keeps (``counters``).
N_COUNTERS = 2 * len(CATEGORIES)


def counter(name: str, dropped: bool = False) -> int:
    """The index in ``counters`` of category ``name`` (``FILTERED``): what it counts, or with
    ``dropped`` what it lost."""
    i = next(i for i, cat in enumerate(CATEGORIES) if cat.name == name)
    return 2 * i + int(dropped)


#: Syscall numbers by machine.  Exec and fork records carry their syscall's number in ``evt``
#: (the decoder reads them with this machine's); the C program is rendered with x86_64's (its
#: register code, sched_process_fork's syscall test, and the raw_syscalls handlers of the
#: syscalls that may have no tracepoint of their own).
SYSCALL_NR: dict[str, dict[str, int]] = {
    "x86_64": {"clone": 56, "fork": 57, "vfork": 58, "clone3": 435, "execve": 59,
               "execveat": 322, "init_module": 175, "delete_module": 176,
               "finit_module": 313},
    "aarch64": {"clone": 220, "clone3": 435, "execve": 221, "execveat": 281},
}
#: The numbers the C program is rendered with.
C_NR = SYSCALL_NR["x86_64"]


def machine_nr() -> dict[str, int]:
    """This machine's syscall numbers (x86_64's on a machine not in :data:`SYSCALL_NR`)."""
    return SYSCALL_NR.get(platform.machine(), C_NR)


#: Linux constants the C program (and the filters rendered into it) names, ``#define``\ d
#: from their one Python definition: the syscall tables (:mod:`syswarden.core.syscalls`) and
#: :mod:`stat` (``S_IFMT`` is a function there).  A kernel header may define them too: the C
#: side then checks the header agrees.
ABI: dict[str, int] = {
    **{name: num for num, name in SOCKET_FAMILIES.items()
       if name in ("AF_UNIX", "AF_INET", "AF_INET6")},
    "O_CREAT": O_CREAT, "O_TRUNC": O_TRUNC, "__O_TMPFILE": O_TMPFILE_OWN,
    "S_IFMT": 0o170000, "S_IFDIR": stat.S_IFDIR, "S_IFSOCK": stat.S_IFSOCK,
}


# ---------------------------------------------------------------------------------------------
# The layout, as the C compiler makes it: each member at a multiple of its size
# ---------------------------------------------------------------------------------------------

def _layout(fields: tuple[Field, ...]) -> tuple[list[tuple[str, str, int]], str, int]:
    """The members in order, padding included, as (C type, name, count); the :mod:`struct`
    format; the size (a multiple of the largest member's, as ``sizeof`` rounds it)."""
    members: list[tuple[str, str, int]] = []
    codes: list[tuple[str, int]] = []            # (struct code, repeat)
    off = 0
    align = 1

    def add(code: str, n: int) -> None:          # "6Q", not "QQQQQQ": unpacked faster
        if codes and codes[-1][0] == code and code != "s":
            n += codes.pop()[1]
        codes.append((code, n))

    def pad_to(boundary: int) -> None:
        nonlocal off
        if off % boundary:
            pad = boundary - off % boundary
            members.append(("u8", f"_pad{len(members)}", pad))
            add("x", pad)
            off += pad

    for f in fields:
        if f.ctype not in C_TYPES:
            raise PluginError(f"struct rec: field {f.name!r} has the C type {f.ctype!r}, not "
                              f"one of {', '.join(C_TYPES)}", Location(__file__))
        size, code = C_TYPES[f.ctype]
        align = max(align, size)
        pad_to(size)
        members.append((f.ctype, f.name, f.count))
        add(code, f.count)
        off += f.size
    pad_to(align)
    fmt = "<" + "".join(f"{n if n > 1 or code == 's' else ''}{code}" for code, n in codes)
    return members, fmt, off


_MEMBERS, FORMAT, SIZE = _layout(FIELDS)
#: ``struct rec`` as :mod:`struct` reads it (the kernel's byte order: the machine's, little-endian;
#: the members padded as C pads them): :data:`FORMAT`, ``sizeof(struct rec)`` bytes.
REC = struct.Struct(FORMAT)
assert REC.size == SIZE


def _positions(fields: tuple[Field, ...]) -> dict[str, int]:
    at, i = {}, 0
    for f in fields:
        at[f.name] = i
        i += 1 if f.ctype == "char" else f.count      # a char array unpacks as one bytes
    return at


#: A field's position in the tuple :data:`REC` unpacks (an array's: its first element's).
AT: dict[str, int] = _positions(FIELDS)

_TAIL_MEMBERS, TAIL_FORMAT, TAIL_SIZE = _layout(EXEC_TAIL)
#: ``struct exec_tail`` as :mod:`struct` reads it, and each field's position in its tuple.
TAIL = struct.Struct(TAIL_FORMAT)
assert TAIL.size == TAIL_SIZE
TAIL_AT: dict[str, int] = _positions(EXEC_TAIL)


def pack_tail(**values: Any) -> bytes:
    """An exec record's ``struct exec_tail`` from its fields by name (absent: 0)."""
    unknown = set(values) - set(TAIL_AT)
    if unknown:
        raise TypeError(f"struct exec_tail has no field {', '.join(sorted(unknown))}")
    return TAIL.pack(*(values.get(f.name, b"" if f.ctype == "char" else 0) for f in EXEC_TAIL))


def pack(**values: Any) -> bytes:
    """A record's fixed part from its fields by name (absent: 0; an array: a sequence, short
    ones padded with 0): how tests and benchmarks build what the kernel would send."""
    unknown = set(values) - set(AT)
    if unknown:
        raise TypeError(f"struct rec has no field {', '.join(sorted(unknown))}")
    flat: list[int] = []
    for f in FIELDS:
        v = values.get(f.name, 0)
        if f.count == 1:
            flat.append(v)
        else:
            v = list(v or ())
            if len(v) > f.count:
                raise ValueError(f"struct rec: {f.name} has {f.count} elements, not {len(v)}")
            flat += v + [0] * (f.count - len(v))
    return REC.pack(*flat)


def _check() -> None:
    where = Location(__file__)
    if STRING_SLOTS & (STRING_SLOTS - 1) or STRING_SLOTS < 1:
        raise PluginError(f"STRING_SLOTS is {STRING_SLOTS}: it must be a power of two (the "
                          "kernel side masks a slot index with STRING_SLOTS - 1)", where)
    if len(EXEC_SLOTS) > STRING_SLOTS:
        raise PluginError(f"EXEC_SLOTS names {len(EXEC_SLOTS)} strings, the record has "
                          f"{STRING_SLOTS} slots", where)
    if next(f for f in FIELDS if f.name == "slen").count != STRING_SLOTS:
        raise PluginError("struct rec: slen must have STRING_SLOTS elements", where)


_check()


# ---------------------------------------------------------------------------------------------
# The C side
# ---------------------------------------------------------------------------------------------

def _define(name: str, value: int, doc: str = "") -> str:
    line = f"#define {name} {value}"
    return f"{line:<40}// {doc}" if doc else line


def _put_macro(name: str, parts: tuple[Part, ...], what: str) -> list[str]:
    """``#define NAME(r, part...)``: the parts written into ``r->a[]``, each register once."""
    regs: dict[int, list[str]] = {}
    for p in parts:
        value = f"(((u64)({p.name}) & {p.mask:#x}) << {p.shift})" if p.shift else \
            f"((u64)({p.name}) & {p.mask:#x})"
        regs.setdefault(p.reg, []).append(value)
    lines = [f"// {what} (record.py):"]
    lines += [f"//   a[{p.reg}] bits {p.shift}-{p.shift + p.bits - 1}: {p.name}, {p.doc}"
              for p in parts]
    lines.append(f"#define {name}(r, {', '.join(p.name for p in parts)}) do {{ \\")
    lines += [f"    (r)->a[{reg}] = {' | '.join(values)}; \\" for reg, values in regs.items()]
    return lines + ["} while (0)"]


def render_c() -> str:
    """The C block of the record (``program.c``'s ``@RECORD@``): the constants, then ``struct
    rec`` with a compile-time check that the C compiler laid it out as :data:`REC`."""
    lines = ["// One record's fixed part.  Strings follow it back to back, their lengths in "
             "slen[].",
             _define("REC_HDR", SIZE, "sizeof(struct rec)"),
             _define("STRING_SLOTS", STRING_SLOTS, "strings a record carries at most"),
             ""]
    lines += [_define(f"KIND_{k.name}", k.value) for k in Kind]
    lines.append("")
    lines += [_define(f"SLOT_{name.upper()}", i, "exec record string slots" if i == 0 else "")
              for i, name in enumerate(EXEC_SLOTS)]
    lines += ["", "// Counter categories: counters[2*cat] attempted (or counted), "
              "counters[2*cat+1] dropped."]
    lines += [_define(f"CAT_{c.name}", i, c.doc) for i, c in enumerate(CATEGORIES)]
    lines += [_define("NCAT", len(CATEGORIES)), ""]
    lines.append("// Syscall numbers, x86_64's (TASK_REGS and the raw_syscalls handlers "
                 "are x86_64's).")
    lines += [_define(f"NR_{name.upper()}", nr) for name, nr in C_NR.items()]
    lines += ["", "// Linux constants (record.py's ABI: from syscalls.py and Python's stat)."]
    for name, value in ABI.items():
        lines += [f"#ifndef {name}", _define(name, value), "#endif",
                  f"_Static_assert({name} == {value}, \"{name}: see record.py\");"]
    lines += [_define(f"EXE_{name}", bit) for name, bit in EXE_FLAGS.items()]
    lines += ["", *_put_macro("EXEC_PUT", EXEC_PARTS, "An exec record's parts in a[]")]
    lines += ["", *_put_macro("FORK_PUT", FORK_PARTS, "A fork record's parts in a[]")]
    lines += ["", "// A socket call's extra (record.py's SOCK_INFO):"]
    lines += [f"//   bits {b.shift}-{b.shift + b.bits - 1}: {b.name}, {b.doc}" for b in SOCK_INFO]
    lines.append(f"#define SOCK_INFO_OF({', '.join(b.name for b in SOCK_INFO)}) ("
                 + " | ".join(f"(((u32)({b.name}) & {b.mask:#x}) << {b.shift})"
                              for b in SOCK_INFO) + ")")
    lines += ["", "struct rec {"]
    docs = {f.name: f.doc for f in FIELDS}
    for ctype, name, count in _MEMBERS:
        count_s = "STRING_SLOTS" if name == "slen" else str(count)
        decl = f"    {ctype} {name}{f'[{count_s}]' if count > 1 else ''};"
        lines.append(f"{decl:<32}// {docs[name]}" if docs.get(name) else decl)
    lines += ["};",
              "_Static_assert(sizeof(struct rec) == REC_HDR, \"struct rec: see record.py\");",
              "", "// An exec record's fixed part after struct rec (then its strings).",
              _define("TAIL_SIZE", TAIL_SIZE), "struct exec_tail {"]
    docs = {f.name: f.doc for f in EXEC_TAIL}
    for ctype, name, count in _TAIL_MEMBERS:
        decl = f"    {ctype} {name}{f'[{count}]' if count > 1 else ''};"
        lines.append(f"{decl:<32}// {docs[name]}" if docs.get(name) else decl)
    lines += ["};",
              "_Static_assert(sizeof(struct exec_tail) == TAIL_SIZE, \"see record.py\");"]
    return "\n".join(lines)
