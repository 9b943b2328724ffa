"""A compiled program as bcc left it, kept so that a later start loads it without compiling.

bcc compiles the program's text with LLVM at every start: 1.5-2.5 s here, most of the agent's
start-up.  What the compile yields is, per function, its instructions, and the maps they use.
The instructions name a map by the file descriptor bcc created it under (a ``ld_imm64`` with
``BPF_PSEUDO_MAP_FD``): :func:`capture` keeps, instead of the descriptor, the map's place in
the list of maps, each described as the kernel has it (type, key and value sizes, entries,
flags, name).  :func:`load` creates the maps again, writes their new descriptors into the
instructions and loads the programs: the kernel's verifier checks them as it did the compiled
ones, so a program is no less checked for having been kept.

The agent's pid is not in the text either: each test of it loads the 64-bit constant
:data:`AGENT_PID_MARK` (an ``asm`` statement, which the compiler cannot fold into the
comparison), where the loader writes the agent's pid before loading, kept or just compiled
(:meth:`Function.code`).  A map would do the same for a lookup per event, but the lookup and
its null test change how the compiler lays the handlers out, and with Falco's rules the open
handlers' prefilters then exceed the verifier's budget of a million instructions.

What cannot be kept is said (:attr:`Compiled.not_kept`): an instruction naming something else
by a descriptor or an id (BTF, a kfunc, a map's value).  A program attached to a kernel
function (fexit) names it at its load by its BTF id, which the loader is given (the kernel's
BTF, read by the agent).  Where the kept program is stored, and when it may be used, is
:mod:`.program_cache`'s business.

This module imports nothing of syswarden but :mod:`.bpf_syscall` (relatively), so that the
loader helper can load both by their paths.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from . import bpf_syscall

#: The version of the stored form (a change makes every stored program a miss).
FORMAT = 1
#: What the program's text loads where the agent's pid goes (above any pid: PID_MAX_LIMIT is
#: 2^22; below 2^31, so that a 32-bit immediate would hold it unchanged too).
AGENT_PID_MARK = 0x5357A9E7
INSN = 8                                # bytes of one instruction
_LD_IMM64 = 0x18                        # BPF_LD | BPF_IMM | BPF_DW: two instruction slots
_CALL = 0x85                            # BPF_JMP | BPF_CALL
_PSEUDO_MAP_FD = 1
_PSEUDO_KFUNC_CALL = 2

T = TypeVar("T")


class NotKept(Exception):
    """Why a compiled program cannot be kept (it is compiled at every start)."""


@dataclass
class Function:
    prog_type: int
    insns: bytes
    #: (instruction index, index in :attr:`Compiled.maps`) of each map the code names
    relocs: list[tuple[int, int]]
    #: the instructions that load :data:`AGENT_PID_MARK`
    pid_sites: list[int]

    def code(self, map_fds: list[int], agent_pid: int) -> bytes:
        """The instructions to load: each map named by its fd in ``map_fds`` (by place), the
        agent's pid where the mark was."""
        code = bytearray(self.insns)
        for i, m in self.relocs:
            code[i * INSN + 4:i * INSN + 8] = map_fds[m].to_bytes(4, "little", signed=True)
        for i in self.pid_sites:
            code[i * INSN + 4:i * INSN + 8] = agent_pid.to_bytes(4, "little")
            code[(i + 1) * INSN + 4:(i + 1) * INSN + 8] = bytes(4)
        return bytes(code)


@dataclass
class Compiled:
    maps: list[dict[str, Any]]          # bpf_syscall.map_info's descriptions, in bcc's order
    functions: dict[str, Function]
    license: str
    kern_version: int
    #: why this program cannot be kept ("": it can)
    not_kept: str = ""


def capture(tables: list[tuple[str, int]], functions: dict[str, tuple[int, bytes]],
            license: str, kern_version: int,
            info: Callable[[int], dict[str, Any]] = bpf_syscall.map_info) -> Compiled:
    """What bcc compiled: ``tables`` its maps (name, fd), ``functions`` each loaded function's
    (program type, instructions).  Raises :class:`NotKept` for instructions that are not
    whole, or a program with no place for the agent's pid."""
    index = {fd: i for i, (_name, fd) in enumerate(tables)}
    maps = [{**info(fd), "name": name} for name, fd in tables]
    kept, problems = {}, []
    for name, (kind, insns) in functions.items():
        relocs, sites, problem = _scan(name, insns, index)
        kept[name] = Function(kind, insns, relocs, sites)
        problems += [problem] if problem else []
    if not any(f.pid_sites for f in kept.values()):
        raise NotKept("the program has no place for the agent's pid (is_agent's mark)")
    return Compiled(maps, kept, license, kern_version, "; ".join(problems[:3]))


def _scan(name: str, insns: bytes,
          index: dict[int, int]) -> tuple[list[tuple[int, int]], list[int], str]:
    """The map relocations and the agent pid's sites of one function, and what in it cannot
    be kept ("": nothing)."""
    if len(insns) % INSN:
        raise NotKept(f"{name}: {len(insns)} bytes is not a whole number of instructions")
    relocs, sites, problem = [], [], ""
    i, n = 0, len(insns) // INSN
    while i < n:
        at = i * INSN
        op, src = insns[at], insns[at + 1] >> 4
        if op == _LD_IMM64 and i + 1 < n:
            if src == _PSEUDO_MAP_FD:
                fd = int.from_bytes(insns[at + 4:at + 8], "little", signed=True)
                if fd in index:
                    relocs.append((i, index[fd]))
                else:
                    problem = problem or f"{name}: instruction {i} names fd {fd}, not a map's"
            elif src:
                problem = problem or f"{name}: instruction {i} loads a kind {src} pseudo value"
            elif _imm64(insns, i) == AGENT_PID_MARK:
                sites.append(i)
            i += 2
            continue
        if op == _CALL and src == _PSEUDO_KFUNC_CALL:
            problem = problem or f"{name}: instruction {i} calls a kernel function by BTF id"
        i += 1
    return relocs, sites, problem


def _imm64(insns: bytes, i: int) -> int:
    """The 64-bit constant a ``ld_imm64`` at instruction ``i`` loads."""
    lo = int.from_bytes(insns[i * INSN + 4:i * INSN + 8], "little")
    hi = int.from_bytes(insns[(i + 1) * INSN + 4:(i + 1) * INSN + 8], "little")
    return lo | hi << 32


# -- the stored form ----------------------------------------------------------------------------

def encode(compiled: Compiled, key: str) -> bytes:
    """The stored form: JSON, the instructions in base64, each with its digest.  Raises
    :class:`NotKept` for a program that cannot be kept."""
    if compiled.not_kept:
        raise NotKept(compiled.not_kept)
    return json.dumps({
        "format": FORMAT, "key": key, "license": compiled.license,
        "kern_version": compiled.kern_version, "maps": compiled.maps,
        "functions": {name: {"type": f.prog_type, "relocs": f.relocs, "pid": f.pid_sites,
                             "insns": base64.b64encode(f.insns).decode(),
                             "sha256": hashlib.sha256(f.insns).hexdigest()}
                      for name, f in compiled.functions.items()},
    }).encode()


def decode(data: bytes, key: str) -> Compiled:
    """The program :func:`encode` stored under ``key``; ValueError if it is not that, or
    damaged (a digest or a relocation that does not hold)."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT or doc.get("key") != key:
            raise ValueError("another format or another program")
        maps = [{f: m[f] for f in bpf_syscall.MAP_FIELDS} for m in doc["maps"]]
        functions = {}
        for name, f in doc["functions"].items():
            insns = base64.b64decode(f["insns"], validate=True)
            if hashlib.sha256(insns).hexdigest() != f["sha256"]:
                raise ValueError(f"{name}: the instructions do not match their digest")
            relocs = [(int(i), int(m)) for i, m in f["relocs"]]
            sites = [int(i) for i in f["pid"]]
            for i, m in relocs:
                if not (0 <= m < len(maps) and _ld_imm64(insns, i, _PSEUDO_MAP_FD)):
                    raise ValueError(f"{name}: relocation {i} -> {m} does not hold")
            for i in sites:
                if not (_ld_imm64(insns, i, 0) and _imm64(insns, i) == AGENT_PID_MARK):
                    raise ValueError(f"{name}: the agent's pid does not go at {i}")
            functions[name] = Function(int(f["type"]), insns, relocs, sites)
        return Compiled(maps, functions, str(doc["license"]), int(doc["kern_version"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a kept program: {exc}") from None


def _ld_imm64(insns: bytes, i: int, src: int) -> bool:
    return (0 <= i < len(insns) // INSN - 1 and insns[i * INSN] == _LD_IMM64
            and insns[i * INSN + 1] >> 4 == src)


# -- loading ------------------------------------------------------------------------------------

def load(compiled: Compiled, agent_pid: int,
         attach_to: dict[str, tuple[int, int]] | None = None
         ) -> tuple[dict[str, int], dict[str, int]]:
    """Create the maps, load the functions (:meth:`Function.code`): the maps' fds by name,
    the programs' fds by function name.  ``attach_to``: the (attach type, kernel function's
    BTF id) of each fexit program, which its load names.  On a failure every fd made is closed
    and the error (a :class:`~.bpf_syscall.BpfError`) raised."""
    attach_to = attach_to or {}
    made: list[int] = []
    try:
        fds = []
        for m in compiled.maps:
            fds.append(bpf_syscall.map_create(m))
            made.append(fds[-1])

        def loader(name: str, f: Function) -> Callable[[], int]:
            code = f.code(fds, agent_pid)
            kind, btf_id = attach_to.get(name, (0, 0))
            return lambda: bpf_syscall.prog_load(f.prog_type, name, code, compiled.license,
                                                 compiled.kern_version, kind, btf_id)

        jobs = {name: (len(f.insns), loader(name, f)) for name, f in compiled.functions.items()}
        progs = largest_first(jobs, made)
        return {m["name"]: fd for m, fd in zip(compiled.maps, fds)}, progs
    except BaseException:
        for fd in made:
            os.close(fd)
        raise


def largest_first(jobs: dict[str, tuple[int, Callable[[], T]]],
                  made: list[T] | None = None) -> dict[str, T]:
    """Run each job (its size, the call) on two threads, the largest first: the verifier runs
    in each loading thread's own system call, and with Falco's rules the open handlers'
    prefilter scans are half of its work.  Each result is also appended to ``made`` as it
    comes (to be closed on a failure); the first failure is raised once all have ended."""
    order = sorted(jobs.items(), key=lambda item: -item[1][0])
    out: dict[str, T] = {}
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = [(name, pool.submit(call)) for name, (_size, call) in order]
    failure = None
    for name, done in futures:
        try:
            out[name] = done.result()
            if made is not None:
                made.append(out[name])
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return out
