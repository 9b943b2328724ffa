"""Compiled programs kept between starts (``ebpf.program_cache``): a start with the same program
loads the kept one without compiling, and it sends what the compiled one sent; a kept program
that is unsafe to read, damaged or refused by the kernel is compiled again, never loaded as it
is.  Real helper, real kernel, real files."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import uuid

import pytest

from syswarden.plugins.sources.ebpf import compiled, program_cache
from syswarden.plugins.sources.ebpf.source import EbpfSource, Program
from tests.helpers.ebpf import events_of, needs_root

pytestmark = needs_root


def start(cache_dir) -> tuple[Program, set[str], set[str]]:
    """Load a source keeping its program in ``cache_dir``; a child and this process (the
    "agent") each create a file: (the program loaded, the files the kernel sent the child's
    opens of, the files it sent this process's opens of)."""
    src = EbpfSource({"program_cache": str(cache_dir)}, {"openat"}, os.getpid())
    tag = uuid.uuid4().hex
    child, own = f"/tmp/sw-kept-child-{tag}", f"/tmp/sw-kept-own-{tag}"
    loaded = []

    def action() -> None:
        loaded.append(src.prog)
        subprocess.run(["/bin/sh", "-c", f": > {child}"], check=True)
        with open(own, "w"):
            pass

    try:
        events = events_of(src, action)
    finally:
        for path in (child, own):
            if os.path.exists(path):
                os.unlink(path)
    opens = [e for e in events if e.type == "openat" and e.args.get("name") in (child, own)]
    return (loaded[0], {e.args["name"] for e in opens if e.pid != os.getpid()},
            {e.args["name"] for e in opens if e.pid == os.getpid()})


def kept_files(cache_dir) -> list:
    return sorted(cache_dir.glob("*" + program_cache.SUFFIX))


def test_a_second_start_loads_the_kept_program_which_sends_what_the_compiled_one_did(tmp_path):
    cache = tmp_path / "cache"
    first, child_opens, own_opens = start(cache)
    assert not first.from_kept and first.seconds["compile"] > 0
    assert len(child_opens) == 1 and not own_opens      # the agent's own opens stay out
    [kept] = kept_files(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]

    second, child_opens, own_opens = start(cache)
    assert second.from_kept
    assert second.seconds["compile"] == 0 and second.seconds["import"] == 0
    assert len(child_opens) == 1 and not own_opens      # the agent's pid reached the map
    assert kept_files(cache) == [kept]


def test_another_program_is_another_key(tmp_path):
    cache = program_cache.ProgramCache(str(tmp_path))
    hooks = [("syscalls:sys_exit_openat", "sw_exit_openat")]
    assert cache.key("text", hooks) == cache.key("text", hooks)
    assert cache.key("text", hooks) != cache.key("text ", hooks)
    assert cache.key("text", hooks) != cache.key("text", [("raw_tp:sys_exit", "sw_exit_openat")])


def _planted(cache, how: str) -> None:
    [kept] = kept_files(cache)
    if how == "writable by others":
        kept.chmod(0o666)
    elif how == "owned by nobody":
        os.chown(kept, 65534, 65534)
    elif how == "a symbolic link":
        target = cache.parent / "elsewhere.json"
        kept.rename(target)
        kept.symlink_to(target)
    elif how == "a directory others can write":
        cache.chmod(0o1777)


@pytest.mark.parametrize("how", ["writable by others", "owned by nobody", "a symbolic link",
                                 "a directory others can write"])
def test_a_kept_program_someone_else_could_have_written_is_not_loaded(tmp_path, caplog, how):
    cache = tmp_path / "cache"
    start(cache)
    _planted(cache, how)
    with caplog.at_level(logging.WARNING, logger="syswarden"):
        prog, child_opens, own_opens = start(cache)
    assert not prog.from_kept and prog.seconds["compile"] > 0
    assert len(child_opens) == 1 and not own_opens
    warned = [r.getMessage() for r in caplog.records if "kept program is not used" in
              r.getMessage()]
    assert warned and "refusing" in warned[0]


def _rewrite(path, change) -> None:
    """Change the kept program at ``path``; its digests made to match again (a program the
    loader's checks pass, which the kernel alone can refuse)."""
    doc = json.loads(path.read_bytes())
    key = doc["key"]
    prog = compiled.decode(path.read_bytes(), key)
    change(prog)
    path.write_bytes(compiled.encode(prog, key))


def test_a_damaged_kept_program_is_compiled_again_and_replaced(tmp_path, caplog):
    cache = tmp_path / "cache"
    start(cache)
    [kept] = kept_files(cache)
    data = bytearray(kept.read_bytes())
    at = data.index(b'"insns": "') + 20
    data[at] = ord("A") if data[at] != ord("A") else ord("B")   # one instruction byte
    kept.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="syswarden"):
        prog, child_opens, _own = start(cache)
    assert not prog.from_kept and len(child_opens) == 1
    assert any("kept program was refused" in r.getMessage() and "digest" in r.getMessage()
               for r in caplog.records)
    assert start(cache)[0].from_kept                 # replaced by the one compiled


def test_a_kept_program_the_kernel_refuses_is_compiled_again_and_replaced(tmp_path, caplog):
    cache = tmp_path / "cache"
    start(cache)
    [kept] = kept_files(cache)

    def jump_out(prog: compiled.Compiled) -> None:
        fn = prog.functions["sw_exit_openat"]
        # the last instruction (exit) becomes a jump past the end: the verifier refuses it
        fn.insns = fn.insns[:-8] + bytes([0x05, 0, 0x10, 0, 0, 0, 0, 0])

    _rewrite(kept, jump_out)
    with caplog.at_level(logging.WARNING, logger="syswarden"):
        prog, child_opens, _own = start(cache)
    assert not prog.from_kept and len(child_opens) == 1
    refused = [r.getMessage() for r in caplog.records if "kept program was refused" in
               r.getMessage()]
    assert refused and "BPF_PROG_LOAD" in refused[0] and "sw_exit_openat" in refused[0]
    assert start(cache)[0].from_kept


def test_no_cache_compiles_every_start_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = EbpfSource({"program_cache": ""}, {"openat"}, os.getpid())
    assert src.cache is None
    loaded = []
    events_of(src, lambda: loaded.append(src.prog))
    assert not loaded[0].from_kept and not list(tmp_path.iterdir())


def test_only_the_newest_kept_programs_stay(tmp_path):
    cache = program_cache.ProgramCache(str(tmp_path / "c"))
    keys = [f"{i:064x}" for i in range(program_cache.KEEP + 3)]
    for i, key in enumerate(keys):
        entry = cache.open_new(key)
        os.write(entry.fd, b"{}")
        os.utime(entry.fd, (1000 + i, 1000 + i))
        cache.commit(entry, written=True)
    left = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert left == sorted(k + program_cache.SUFFIX for k in keys[-program_cache.KEEP:])
