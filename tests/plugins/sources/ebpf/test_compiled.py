"""What is kept of a compiled program (:mod:`.compiled`): the maps an instruction names by file
descriptor become places in the list of maps, the agent pid's mark a place to write it; anything
else named by a descriptor or an id cannot be kept; a stored program is read back only under
its key and whole."""

from __future__ import annotations

import pytest

from syswarden.plugins.sources.ebpf import compiled


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return (bytes([op, dst | src << 4]) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def ld_map(fd: int, src: int = 1) -> bytes:
    return insn(0x18, 1, src, 0, fd) + insn(0, 0, 0, 0, 0)     # two slots


EXIT = insn(0x95)
#: is_agent's load of the agent pid's mark (r6 = mark ll)
MARK = insn(0x18, 6, 0, 0, compiled.AGENT_PID_MARK) + insn(0)
MAPS = [("ring", 31), ("counters", 7)]


def info(fd: int) -> dict:
    return {"type": 2, "key_size": 4, "value_size": 8, "max_entries": fd, "map_flags": 0,
            "name": "whatever"}


def test_maps_become_places_and_the_agents_pid_is_written_where_its_mark_was():
    code = insn(0xb7, 0, 0, 0, 5) + ld_map(7) + MARK + ld_map(31) + EXIT
    got = compiled.capture(MAPS, {"f": (5, code)}, "GPL", 0, info=info)
    f = got.functions["f"]
    assert f.relocs == [(1, 1), (5, 0)] and f.pid_sites == [3] and not got.not_kept
    assert [m["name"] for m in got.maps] == ["ring", "counters"]      # bcc's names
    assert got.maps[1]["max_entries"] == 7
    out = f.code([40, 41], 4242)                  # the maps created again, under new fds
    assert out == (insn(0xb7, 0, 0, 0, 5) + ld_map(41) + insn(0x18, 6, 0, 0, 4242) + insn(0)
                   + ld_map(40) + EXIT)


@pytest.mark.parametrize("code, why", [
    (ld_map(99) + MARK + EXIT, "names fd 99"),
    (ld_map(7, src=3) + MARK + EXIT, "kind 3 pseudo value"),     # a BTF id
    (insn(0x85, 0, 2, 0, 1234) + MARK + EXIT, "by BTF id"),      # a kfunc call
])
def test_what_names_anything_else_cannot_be_kept(code, why):
    got = compiled.capture(MAPS, {"f": (5, code)}, "GPL", 0, info=info)
    assert why in got.not_kept
    with pytest.raises(compiled.NotKept, match=why):
        compiled.encode(got, "k")


@pytest.mark.parametrize("code, why", [(EXIT[:5], "whole number"), (EXIT, "agent's pid")])
def test_a_program_that_is_not_whole_or_has_no_place_for_the_pid_is_refused(code, why):
    with pytest.raises(compiled.NotKept, match=why):
        compiled.capture(MAPS, {"f": (5, code)}, "GPL", 0, info=info)


def test_a_stored_program_is_read_back_only_under_its_key_and_whole():
    prog = compiled.capture(MAPS, {"f": (5, ld_map(7) + MARK + EXIT)}, "GPL", 3, info=info)
    data = compiled.encode(prog, "k1")
    back = compiled.decode(data, "k1")
    assert back.functions["f"].insns == prog.functions["f"].insns and back.kern_version == 3
    with pytest.raises(ValueError, match="another"):
        compiled.decode(data, "k2")
    with pytest.raises(ValueError):
        compiled.decode(data[:-10], "k1")
    prog.functions["f"].relocs = [(1, 0)]             # the second slot: not a map load
    with pytest.raises(ValueError, match="does not hold"):
        compiled.decode(compiled.encode(prog, "k1"), "k1")
    prog.functions["f"].relocs, prog.functions["f"].pid_sites = [(0, 0)], [0]
    with pytest.raises(ValueError, match="pid does not go"):
        compiled.decode(compiled.encode(prog, "k1"), "k1")
