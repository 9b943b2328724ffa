"""The fexit mode (``ebpf.attach``): syscalls followed by fexit programs on their kernel
functions where the kernel runs them, tracepoints elsewhere.

The renderer's tests are pure.  The others ask the running kernel: this machine's refuses fexit
programs (EPERM), so here they check the fallback; in the guest of ``tests/vm`` (Debian's own
kernel, which allows them) the same tests check the fexit mode, and the live tests of
``test_source.py`` run in it.
"""

from __future__ import annotations

import logging
import os
import re

import pytest

from syswarden.core.errors import SourceError
from syswarden.plugins.sources.ebpf import btf, fentry, loader
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf.source import (EbpfSource, _fallback, resolve_attach,
                                                   resolved_config)
from tests.helpers.ebpf import needs_root

#: What the kernel's BTF has of the functions the fexit mode may use, as the source asks.
KFUNCS = {name: i + 1 for i, name in enumerate(P.KFUNC_CANDIDATES)
          if name != "__x64_sys_setsid"}           # an alias BTF does not name (6.x)
FEXIT = {"attach": "fentry", "args_from": "regs", "kfuncs": KFUNCS}


def fexit_programs(text: str) -> dict[str, str]:
    """kernel function -> the arguments its fexit program declares."""
    return dict(re.findall(r"^KRETFUNC_PROBE\((\w+), (.*)\)$", text, re.M))


def test_in_the_fexit_mode_every_followed_syscall_is_an_fexit_program():
    text = P.render_program({"openat", "connect", "umount2"}, FEXIT)
    progs = fexit_programs(text)
    for name in ("openat", "connect", "dup2", "chdir", "setuid"):
        assert progs[f"__x64_sys_{name}"] == "void *regs, long ret"
    assert progs["__x64_sys_umount"] == "void *regs, long ret"     # umount2's function
    # setsid's entry is an alias BTF does not name: its body, which on x86_64 takes the
    # registers too (SYSCALL_DEFINE0), so the result is the second argument
    assert progs["__do_sys_setsid"] == "void *regs, long ret"
    assert "__x64_sys_mkdirat" not in progs                          # not needed
    assert not re.search(r"^int sw_exit_(?!exec\b)\w+\(", text, re.M)  # no tracepoint program
    # exec: argv stored at the entry, a failure sent at the exit
    assert "KFUNC_PROBE(__x64_sys_execve, void *regs)" in text
    assert "KRETFUNC_PROBE(__x64_sys_execveat, void *regs, long ret)" in text
    assert "#define TASK_REGS 1" in text
    assert "fexit programs on the syscalls' kernel functions" in text


def test_in_the_fexit_mode_no_syscall_tracepoint_is_attached():
    hooks = dict(P.tracepoints({"openat", "connect"}, FEXIT))
    assert not [h for h in hooks if h.startswith(("syscalls:", "raw_syscalls:"))]
    assert hooks["fexit:__x64_sys_openat"] == "kretfunc____x64_sys_openat"
    assert hooks["fexit:__do_sys_setsid"] == "kretfunc____do_sys_setsid"
    assert hooks["fentry:__x64_sys_execve"] == "kfunc____x64_sys_execve"
    assert hooks["fexit:__x64_sys_execve"] == "kretfunc____x64_sys_execve"
    assert {"sched:sched_process_fork", "sched:sched_process_exec",
            "sched:sched_process_exit"} <= set(hooks)


def test_a_syscall_the_kernel_has_no_function_for_keeps_its_tracepoint():
    cfg = {**FEXIT, "kfuncs": {k: v for k, v in KFUNCS.items() if "connect" not in k}}
    hooks = dict(P.tracepoints({"openat", "connect"}, cfg))
    assert hooks["syscalls:sys_exit_connect"] == "sw_exit_connect"
    assert "fexit:__x64_sys_openat" in hooks
    text = P.render_program({"openat", "connect"}, cfg)
    assert "int sw_exit_connect(struct sys_exit_ctx *ctx)" in text
    assert "__x64_sys_connect" not in fexit_programs(text)


def test_raw_syscalls_are_not_needed_for_a_syscall_an_fexit_program_follows():
    cfg = {**FEXIT, "raw_fallback": True, "no_tracepoint": ["finit_module"]}
    assert P.raw_syscalls({"finit_module"}, cfg) == []
    assert "fexit:__x64_sys_finit_module" in dict(P.tracepoints({"finit_module"}, cfg))
    tp = {**cfg, "attach": "tracepoint"}
    assert P.raw_syscalls({"finit_module"}, tp) == ["finit_module"]


def test_a_syscall_with_neither_tracepoint_nor_function_is_a_raw_tracepoint_in_fexit_mode():
    """fexit programs for the others, raw tracepoint programs on sys_exit for it (the
    arguments from the registers: no sys_enter program), testing the number first."""
    cfg = {**FEXIT, "raw_fallback": True, "no_tracepoint": ["finit_module"],
           "kfuncs": {k: v for k, v in KFUNCS.items() if "finit_module" not in k}}
    assert P.raw_syscalls({"openat", "finit_module"}, cfg) == ["finit_module"]
    hooks = dict(P.tracepoints({"openat", "finit_module"}, cfg))
    assert hooks["raw_tp:sys_exit"] == "sw_raw_exit" and "raw_tp:sys_enter" not in hooks
    assert "fexit:__x64_sys_openat" in hooks
    assert not [h for h in hooks if h.startswith("syscalls:")]
    text = P.render_program({"openat", "finit_module"}, cfg)
    body = text[text.index("int sw_raw_exit(struct bpf_raw_tracepoint_args *ctx)"):]
    assert body.index("if (!(nr == NR_FINIT_MODULE))") < body.index("do_exit_finit_module")


@needs_root
def test_a_syscall_with_neither_tracepoint_nor_function_is_followed_live_in_fexit_mode():
    """In the fexit mode (the guest of tests/vm), finit_module told to have neither its own
    tracepoint nor a function: the raw sys_exit program sends it, with its arguments."""
    if not kernel_answer()[0]:
        pytest.skip("this kernel refuses fexit programs (the guest of tests/vm runs this)")
    from tests.helpers.ebpf import events_of, finit_module_attempt
    _, kfuncs = btf.kernel_info(functions=P.KFUNC_CANDIDATES)
    kfuncs.pop("__x64_sys_finit_module", None)
    src = EbpfSource({"attach": "fentry", "kfuncs": kfuncs, "raw_fallback": True,
                      "no_tracepoint": ["finit_module"],
                      "not_built": []},
                     {"openat", "finit_module"}, os.getpid())
    pids = []

    def load_a_module() -> None:
        assert "raw_tp:sys_exit" in src.attached and "fexit:__x64_sys_openat" in src.attached
        pids.append(finit_module_attempt())

    events = events_of(src, load_a_module)
    got = [e for e in events if e.type == "finit_module" and e.pid == pids[0]]
    assert len(got) == 1 and got[0].res < 0 and isinstance(got[0].args["fd"], int)


def test_the_tracepoint_mode_renders_no_fexit_program():
    text = P.render_program({"openat"}, {**FEXIT, "attach": "tracepoint"})
    assert not fexit_programs(text) and "KFUNC_PROBE(" not in text
    assert "int sw_exit_openat(struct sys_exit_ctx *ctx)" in text


def test_the_kernel_btf_names_the_functions_the_fexit_mode_uses():
    _, kfuncs = btf.kernel_info(functions=P.KFUNC_CANDIDATES)
    if not kfuncs:
        pytest.skip("this kernel has no BTF")
    for name in ("openat", "connect", "execve", "dup2"):
        assert f"__x64_sys_{name}" in kfuncs
    assert "__x64_sys_setsid" in kfuncs or "__do_sys_setsid" in kfuncs
    assert all(isinstance(v, int) and v > 0 for v in kfuncs.values())


# -- asking the running kernel -------------------------------------------------------------------

def kernel_answer() -> tuple[bool, str]:
    _, kfuncs = btf.kernel_info(functions=["__x64_sys_openat"])
    return fentry.probe(kfuncs.get("__x64_sys_openat"))


@needs_root
def test_the_probe_answers_for_this_kernel_and_auto_follows_it(caplog):
    usable, why = kernel_answer()
    assert usable == (why == "")
    _, kfuncs = btf.kernel_info(functions=P.KFUNC_CANDIDATES)
    with caplog.at_level(logging.INFO, "syswarden.ebpf"):
        got = resolve_attach({"attach": "auto", "kfuncs": kfuncs})
    assert got == (P.FENTRY if usable else P.TRACEPOINT)
    if not usable:    # the reason is logged, naming what the kernel said
        assert why in caplog.text and "tracepoints" in caplog.text
    # arguments stored at enter need the enter tracepoints
    assert resolve_attach({"attach": "auto", "args_from": "enter", "kfuncs": kfuncs}) \
        == P.TRACEPOINT
    assert resolve_attach({"attach": "tracepoint", "kfuncs": kfuncs}) == P.TRACEPOINT
    if usable:
        assert resolve_attach({"attach": "fentry", "kfuncs": kfuncs}) == P.FENTRY
    else:          # asked for explicitly where the kernel refuses it: one clear error
        with pytest.raises(SourceError, match="ebpf.attach is fentry, but the kernel"):
            resolve_attach({"attach": "fentry", "kfuncs": kfuncs})


def test_without_the_syscall_functions_in_btf_the_probe_says_so():
    assert fentry.probe(None) == (False, "the kernel's BTF does not have the syscall functions")


@needs_root
def test_the_source_follows_syscalls_the_way_the_kernel_allows():
    """Loaded for real: fexit programs and no syscall tracepoint where the kernel runs them (so
    a syscall nobody follows costs nothing), tracepoints elsewhere."""
    usable, _ = kernel_answer()
    src = EbpfSource({}, {"openat", "connect"}, os.getpid())
    src.load()
    try:
        hooks = set(src.attached)
        if usable:
            assert src.cfg["attach"] == P.FENTRY and src.cfg["args_from"] == "regs"
            assert not [h for h in hooks if h.startswith(("syscalls:", "raw_syscalls:"))]
            assert {"fexit:__x64_sys_openat", "fexit:__x64_sys_connect",
                    "fentry:__x64_sys_execve"} <= hooks
        else:
            assert src.cfg["attach"] == P.TRACEPOINT
            assert {"syscalls:sys_exit_openat", "syscalls:sys_exit_connect"} <= hooks
            assert not [h for h in hooks if h.startswith(("fentry:", "fexit:"))]
    finally:
        src.close()


@needs_root
def test_auto_falls_back_to_tracepoints_when_the_kernel_refuses_the_program(caplog):
    """The probe said yes, the real program is refused (here: told of a syscall entry BTF does
    not name, which the kernel cannot attach to): ``auto`` loads tracepoints instead."""
    if not kernel_answer()[0]:
        pytest.skip("this kernel refuses fexit programs already at the probe (the guest of "
                    "tests/vm runs this)")
    _, kfuncs = btf.kernel_info(functions=P.KFUNC_CANDIDATES)
    absent = next((f"__x64_sys_{sc.name}" for sc in P.SYSCALLS
                   if not sc.args and sc.name not in P.FORK_SYSCALLS
                   and f"__x64_sys_{sc.name}" not in kfuncs), None)
    if absent is None:
        pytest.skip("this kernel's BTF names every syscall entry the source follows")
    src = EbpfSource({"kfuncs": {**kfuncs, absent: 1}}, {"openat"}, os.getpid())
    assert src.cfg["attach"] == P.FENTRY
    with caplog.at_level(logging.INFO, "syswarden.ebpf"):
        src.load()
    try:
        assert src.cfg["attach"] == P.TRACEPOINT
        assert "fexit programs were refused" in caplog.text
        assert "syscalls:sys_exit_openat" in src.attached
    finally:
        src.close()
    asked = EbpfSource({"attach": "fentry", "kfuncs": {**kfuncs, absent: 1}}, {"openat"},
                       os.getpid())
    try:
        with pytest.raises(SourceError):  # asked for explicitly: the refusal is an error
            asked.load()
    finally:
        asked.close()


def test_fexit_programs_with_arguments_stored_at_enter_is_refused_as_asked():
    with pytest.raises(SourceError, match="fexit programs read the arguments from the regis"):
        resolved_config({"attach": "fentry", "args_from": "enter"})
    # rendered directly, the fexit mode reads the registers whatever args_from says
    assert "#define TASK_REGS 1" in P.render_program({"openat"}, {**FEXIT, "args_from": "auto"})


@pytest.mark.parametrize("asked, tried, then", [
    ({"attach": "auto", "args_from": "auto"}, {"attach": "fentry", "args_from": "regs"},
     {"attach": "tracepoint", "args_from": "regs"}),
    ({"attach": "auto", "args_from": "auto"}, {"attach": "tracepoint", "args_from": "regs"},
     {"attach": "tracepoint", "args_from": "enter"}),
    ({"attach": "fentry", "args_from": "auto"}, {"attach": "fentry", "args_from": "regs"},
     None),
    ({"attach": "auto", "args_from": "regs"}, {"attach": "tracepoint", "args_from": "regs"},
     None),
    ({"attach": "tracepoint", "args_from": "enter"},
     {"attach": "tracepoint", "args_from": "enter"}, None),
])
def test_after_a_refusal_only_an_auto_choice_falls_back(monkeypatch, asked, tried, then):
    monkeypatch.setattr(P, "registers_usable", lambda: True)
    refused = loader.LoadError("bpf: Failed to load program: Permission denied\nmore")
    cfg = {**tried, "asked": asked, "kfuncs": KFUNCS}
    if then is None:
        with pytest.raises(SourceError, match="Permission denied"):
            _fallback(cfg, refused)
    else:
        got = _fallback(cfg, refused)
        assert {k: got[k] for k in then} == then and got["asked"] == asked
        assert cfg == {**tried, "asked": asked, "kfuncs": KFUNCS}     # not changed in place
