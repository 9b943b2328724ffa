"""The BPF program renderer: pure, no root needed."""

from __future__ import annotations

import ctypes
import pathlib
import re
import struct
import sys
import types

import pytest

from syswarden.core import syscalls as core_syscalls
from syswarden.core.errors import PluginError
from syswarden.plugins.sources.ebpf import compiled
from syswarden.plugins.sources.ebpf import decode as D
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf import record as R
from syswarden.plugins.sources.ebpf import source as S

DOCS = pathlib.Path(__file__).resolve().parents[4] / "docs"


def handlers(text: str) -> set[str]:
    return set(re.findall(r"^int sw_exit_(\w+)\(", text, re.M))


def test_only_the_needed_and_state_syscalls_get_an_exit_handler():
    text = P.render_program({"openat", "connect"}, {})
    got = handlers(text)
    assert {"openat", "connect"} <= got
    assert "mkdirat" not in got and "unlink" not in got
    # state: dup*, chdir, fchdir, set*id, setsid; the fork family has none (sent from
    # sched_process_fork); close is not followed (the fd table's entries carry a stamp)
    assert {"dup", "dup2", "dup3", "chdir", "fchdir", "setuid", "setsid"} <= got
    assert "close" not in got
    assert not {"clone", "clone3", "fork", "vfork"} & got
    assert "exec" in got                       # sw_exit_exec: execve/execveat always


def test_none_means_every_supported_syscall():
    got = handlers(P.render_program(None))
    assert got == {n for n in P.BY_NAME if n not in P.FORK_SYSCALLS} | {"exec"}


def test_the_config_is_baked_in_and_the_agents_pid_is_not():
    """The agent's pid is written in a map by the loader: the text, and so the compiled program
    kept between starts, is the same for every agent."""
    text = P.render_program(set(), {"path_max": 300, "argv_max": 100, "evt_ring_pages": 3,
                                    "proc_ring_pages": 8, "max_args": 7})
    assert f'#define AGENT_PID_MARK "{hex(compiled.AGENT_PID_MARK)}"' in text
    assert "#define AGENT_PID " not in text
    assert "#define PATH_MAX_B 512" in text          # rounded up to a power of two
    assert "#define ARGV_MAX_B 256" in text          # at least 256
    assert "#define MAX_ARGS 7" in text
    assert "BPF_RINGBUF_OUTPUT(evt_ring, 4);" in text
    assert "BPF_RINGBUF_OUTPUT(proc_ring, 8);" in text
    assert "@" not in re.sub(r"//.*", "", text)       # every marker replaced


def test_whole_config_is_accepted_too():
    text = P.render_program(set(), {"ebpf": {"max_args": 9}, "priority": "debug"})
    assert "#define MAX_ARGS 9" in text


def test_tracepoints_follow_the_event_types():
    tps = dict(P.tracepoints({"openat"}))
    assert tps["syscalls:sys_enter_openat"] == "sw_enter4"
    assert tps["syscalls:sys_exit_openat"] == "sw_exit_openat"
    assert "syscalls:sys_exit_mkdirat" not in tps
    for base in ("sched:sched_process_fork", "sched:sched_process_exec",
                 "sched:sched_process_exit", "syscalls:sys_enter_execve",
                 "syscalls:sys_enter_clone", "syscalls:sys_enter_clone3"):
        assert base in tps
    assert "syscalls:sys_exit_clone" not in tps
    assert dict(P.tracepoints({"umount2"}))["syscalls:sys_exit_umount"] == "sw_exit_umount2"


def test_with_the_registers_a_syscall_costs_its_exit_tracepoint_only():
    regs = {"args_from": "regs"}
    tps = dict(P.tracepoints({"openat", "connect"}, regs))
    assert tps["syscalls:sys_exit_openat"] == "sw_exit_openat"
    assert tps["syscalls:sys_exit_dup2"] == "sw_exit_dup2"
    assert "syscalls:sys_exit_close" not in tps        # not followed unless a rule needs it
    # the enter of exec stays (argv is gone after a successful exec); the fork family has no
    # tracepoint of its own (sched_process_fork reads the parent's registers)
    assert {tp for tp in tps if ":sys_enter_" in tp} == {
        "syscalls:sys_enter_execve", "syscalls:sys_enter_execveat"}
    assert not [tp for tp in tps if tp.startswith("syscalls:") and (
        "clone" in tp or tp.endswith("fork"))]
    assert "sched:sched_process_fork" in tps
    assert "#define TASK_REGS 1" in P.render_program({"openat"}, regs)
    assert "#define TASK_REGS 0" in P.render_program({"openat"}, {"args_from": "enter"})
    # with enter, both tracepoints of every followed syscall
    enter = dict(P.tracepoints({"openat"}, {"args_from": "enter"}))
    assert {"syscalls:sys_enter_openat", "syscalls:sys_exit_openat",
            "syscalls:sys_enter_clone3"} <= set(enter)


def test_auto_is_made_concrete_before_rendering(monkeypatch):
    monkeypatch.setattr(P, "registers_usable", lambda: True)
    assert P.resolve_args_from("auto") == "regs"
    monkeypatch.setattr(P, "registers_usable", lambda: False)
    assert P.resolve_args_from("auto") == "enter"
    assert P.resolve_args_from("regs") == "regs"     # asked for: the kernel has the last word


def test_argument_names_agree_with_the_core_event_table():
    """Every argument the source fills is one Falco (core/syscalls.py) knows for that event."""
    for sc in P.SYSCALLS:
        known = core_syscalls.arg_names(sc.name)
        assert known, f"{sc.name} is not in core/syscalls.py"
        names = [a[0] for a in sc.args if a is not None and not a[0].startswith("_")]
        names.append(sc.res)
        if any(a is not None and a[1] == P.HOW for a in sc.args):
            names = [n for n in names if n != "how"] + ["flags", "mode", "resolve"]
        unknown = [n for n in names if n not in known]
        assert not unknown, f"{sc.name}: {unknown} not in {known}"
    for name in P.EXEC_SYSCALLS:
        assert {"res", "exe", "args", "tid", "pid", "comm"} <= set(core_syscalls.arg_names(name))


# ---------------------------------------------------------------------------------------------
# The record: declared once (record.py), rendered into the C, read back by the decoder
# ---------------------------------------------------------------------------------------------

def test_the_record_is_rendered_from_its_declaration():
    text = P.render_program(set(), {})
    struct_rec = re.search(r"^struct rec \{\n(.*?)^\};", text, re.M | re.S).group(1)
    members = re.findall(r"^\s+(\w+) (\w+)(?:\[(\w+)\])?;", struct_rec, re.M)
    assert [(t, n) for t, n, _ in members] == [(f.ctype, f.name) for f in R.FIELDS]
    assert ("u16", "slen", "STRING_SLOTS") in members
    assert f"#define REC_HDR {R.REC.size}" in text and R.REC.size == 112
    assert "_Static_assert(sizeof(struct rec) == REC_HDR" in text     # the compiler agrees
    assert f"#define STRING_SLOTS {R.STRING_SLOTS}" in text
    for kind in R.Kind:
        assert f"#define KIND_{kind.name} {kind.value}" in text
    for i, name in enumerate(R.EXEC_SLOTS):
        assert re.search(rf"^#define SLOT_{name.upper()} {i}\b", text, re.M)
    for name, nr in R.C_NR.items():
        assert re.search(rf"^#define NR_{name.upper()} {nr}\b", text, re.M)
    assert "@RECORD@" not in text


def test_the_counter_indexes_are_the_kernels():
    """The source reads counters[] where the kernel's count(CAT_X, dropped) writes them."""
    text = P.render_program(set(), {})
    cat = {m[0]: int(m[1]) for m in re.findall(r"^#define CAT_(\w+) (\d+)", text, re.M)}
    assert list(cat) == [c.name for c in R.CATEGORIES]
    assert re.search(rf"^#define NCAT {len(cat)}\b", text, re.M)
    assert R.N_COUNTERS == 2 * len(cat)
    assert (S.RETRIED, S.FILTERED, S.LOST_WITH_ROOM, S.SOCKS_FILTERED) == (
        2 * cat["RETRY"], 2 * cat["FILTERED"], 2 * cat["ROOM"], 2 * cat["SOCK_FILTERED"])
    assert R.counter("PENDING", dropped=True) == 2 * cat["PENDING"] + 1


def test_a_layout_is_padded_as_the_c_compiler_pads_it():
    fields = (R.Field("kind", "u16"), R.Field("ts", "u64"), R.Field("n", "u32"))
    members, fmt, size = R._layout(fields)
    assert members == [("u16", "kind", 1), ("u8", "_pad1", 6), ("u64", "ts", 1),
                       ("u32", "n", 1), ("u8", "_pad4", 4)]
    assert fmt == "<H6xQI4x" and struct.calcsize(fmt) == size

    class C(ctypes.Structure):      # as the C compiler lays it out
        _fields_ = [("kind", ctypes.c_uint16), ("ts", ctypes.c_uint64), ("n", ctypes.c_uint32)]

    assert size == ctypes.sizeof(C) == 24 and C.ts.offset == 8


def test_records_are_packed_and_read_by_field_name():
    head = R.pack(ts=7, a=(1, 2), slen=(3,), kind=R.Kind.EXIT, ino=9)
    h = R.REC.unpack(head)
    assert (h[R.AT["ts"]], h[R.AT["kind"]], h[R.AT["ino"]]) == (7, R.Kind.EXIT, 9)
    assert h[R.AT["a"]:R.AT["a"] + 6] == (1, 2, 0, 0, 0, 0)
    assert h[R.AT["slen"]:R.AT["slen"] + R.STRING_SLOTS] == (3, 0, 0, 0)
    with pytest.raises(TypeError, match="no field nope"):
        R.pack(nope=1)


def test_a_syscall_with_more_strings_than_the_record_has_slots_is_refused():
    """Where it is declared: a row of SYSCALLS like this one fails the module's import."""
    five = [(f"path{i}", P.STR) for i in range(R.STRING_SLOTS + 1)]
    with pytest.raises(PluginError, match=r"syscall 'toomany' sends 5 strings \(path0, "
                                          r"path1, path2, path3, path4\), but a record has "
                                          r"4 string slots") as info:
        P._s("toomany", *five)
    assert "STRING_SLOTS" in info.value.hint and "syscall 'toomany'" in str(info.value)
    P._s("enough", *five[:R.STRING_SLOTS])
    # connect's record ends with the socket's local end: one slot more
    with pytest.raises(PluginError, match="sends 5 strings .*the local end"):
        P._s("connect", *five[:R.STRING_SLOTS])
    with pytest.raises(PluginError, match="7 arguments"):
        P._s("sevenargs", *[("x", P.U32)] * 7)


def test_a_table_with_such_a_row_fails_the_import(monkeypatch):
    """program.py itself, with a row of five strings added to SYSCALLS, does not import."""
    source = pathlib.Path(P.__file__).read_text()
    table = "SYSCALLS: tuple[Syscall, ...] = (\n"
    row = '    _s("mount5", ("a", STR), ("b", STR), ("c", STR), ("d", STR), ("e", STR)),\n'
    assert source.count(table) == 1
    code = compile(source.replace(table, table + row), P.__file__, "exec")
    copy = types.ModuleType(f"{P.__package__}.program_copy")
    copy.__package__, copy.__file__ = P.__package__, P.__file__
    monkeypatch.setitem(sys.modules, copy.__name__, copy)
    with pytest.raises(PluginError, match="syscall 'mount5' sends 5 strings"):
        exec(code, copy.__dict__)


def test_every_syscall_followed_by_number_has_one():
    assert set(P.RAW_SYSCALLS) <= set(R.C_NR)
    assert set(P.EXEC_SYSCALLS) | set(P.FORK_SYSCALLS) <= set(R.C_NR)
    for numbers in R.SYSCALL_NR.values():
        assert set(P.EXEC_SYSCALLS) <= set(numbers)


def test_the_docs_walkthrough_row_is_all_a_syscall_needs(monkeypatch):
    """docs/plugins.md's "Adding a syscall", run from the page: the row renders the handler,
    names the hooks and generates the decoder (its event id: the next in the table)."""
    text = (DOCS / "plugins.md").read_text()
    section = text[text.index("## Adding a syscall"):]
    scope: dict = {}
    exec(compile(re.search(r"```python\n(.*?)```", section, re.S).group(1), "docs/plugins.md",
                 "exec"), scope)
    row = scope["LCHOWN"]
    monkeypatch.setitem(P.EVT_ID, row.name, len(P.SYSCALLS))
    names = [a[0] for a in row.args] + [row.res]
    assert set(names) <= set(core_syscalls.arg_names("lchown"))
    handler = P._exit_handler(row)
    assert "int sw_exit_lchown(struct sys_exit_ctx *ctx)" in handler
    assert f"new_rec(id, KIND_SYSCALL, {len(P.SYSCALLS)}, ctx->ret)" in handler
    assert "pos = put_str(r, pos, 0, (const void *)p.a[0]);" in handler
    assert P._kfunc_names(row) == ("__x64_sys_lchown",) and row.tracepoint == "lchown"
    head = R.pack(ts=1, res=0, a=(0, 1000, 50), tid=7, pid=7, kind=R.Kind.SYSCALL,
                  evt=len(P.SYSCALLS), slen=[len(b"/tmp/x")])
    ev = D._syscall_decoder(row)(R.REC.unpack_from(head), head + b"/tmp/x", 0, 0)
    assert (ev.type, ev.tid, ev.args) == ("lchown", 7, {"res": 0, "path": "/tmp/x", "uid": 1000,
                                                        "gid": 50})


def _handler(text: str, name: str) -> str:
    start = text.index(f"static __always_inline int do_exit_{name}(")
    return text[start:text.index("\n}\n", start)]


def test_an_open_walks_its_file_s_path_before_the_prefilter_and_sends_it_last():
    from syswarden.core.rules.prefilter import OK, READ, OpenPrefilter, Term
    pf = OpenPrefilter((Term(frozenset({OK, READ}), frozenset({"/etc/shadow"}), real=True),
                        Term(frozenset({OK, READ}), ids=frozenset({(8, 1, 42)}))))
    text = P.render_program({"openat", "openat2"}, {}, open_prefilter=pf)
    openat = _handler(text, "openat")
    walk = openat.index("fd_realpath(ctx->ret)")
    assert walk < openat.index("realpath_wanted(") < openat.index("new_rec(")
    assert "put_realpath(r, pos, 1, rplen)" in openat           # after the name's slot
    assert "put_realpath(r, pos, 2, rplen)" in _handler(text, "openat2")   # after how's
    assert "realpath_wanted" not in _handler(text, "openat2")   # never filtered
    # the rules' prefixes tested on the walked path, the identity as the kernel's s_dev
    assert "p[5] == 's'" in text and f"dev == {8 << 20 | 1} && ino == 42ULL" in text
    assert all(P.BY_NAME[n].slots == len(P.BY_NAME[n].strings) + 1 for n in P.REALPATH)
