"""The state objects: one declaration each, from which the copies are derived."""

from __future__ import annotations

import ipaddress

import pytest
from syswarden.core.event import (
    FACTS_CLASSES,
    Container,
    Event,
    FdInfo,
    KernelFacts,
    Mount,
    Process,
    declared,
    state,
)

#: A value unlike any default, by declared type.
SAMPLES = {
    "int": 7, "int | None": 8, "str": "s", "str | None": "t", "bool": True, "bool | None": False,
    "list[str]": ["a", "b"], "IPAddress | None": ipaddress.ip_address("10.0.0.1"),
    "FdType": "ipv6", "dict[int, FdInfo]": {3: FdInfo(3)}, "Process | None": Process(1),
    "Container | None": Container("0123456789ab"), "list[Mount]": [Mount("/a", "/b")],
    "dict[str, str]": {"k": "v"}, "SockAddr | None": ("unix", "/run/x", 0),
    "UInt": 9, "EventType": "openat", "Args": {"fd": 3}, "FdInfo | None": FdInfo(4),
    "KernelFacts | None": KernelFacts(5),
    "dict[str, tuple[list[str], list[str]]]": {"web": (["cat", "/tmp/healthy"], ["true"])},
}


def _unusual(cls: type, *args) -> object:
    """An object of ``cls`` whose every attribute holds a value other than its default."""
    obj = cls(*args)
    for a in declared(cls):
        if a.name != "pid":
            setattr(obj, a.name, SAMPLES[a.type])
    return obj


@pytest.mark.parametrize("cls", [Event, Process, FdInfo, Container, Mount, *FACTS_CLASSES])
def test_every_attribute_is_declared_with_a_doc_line(cls):
    attrs = declared(cls)
    assert set(cls.__slots__) <= {a.name for a in attrs}      # a subclass: its own slots
    for a in attrs:
        assert a.doc and a.type in SAMPLES, a.name


def test_a_fork_copies_what_is_declared_copied_and_nothing_else():
    parent = _unusual(Process, 10)
    child = parent.fork(11)
    fresh = Process(11)
    for a in declared(Process):
        got, had = getattr(child, a.name), getattr(parent, a.name)
        if a.copied == "share":
            assert got is had, a.name
        elif a.copied == "copy":
            assert got == had and got is not had, a.name
        else:
            assert got == getattr(fresh, a.name), a.name
    assert {a.name for a in declared(Process) if a.copied} >= {
        "comm", "exe", "exepath", "args", "cwd", "uid", "user", "container", "fds", "env"}


def test_a_new_version_of_a_process_shares_everything():
    p = _unusual(Process, 10)
    q = p.copy()
    assert q is not p and all(getattr(q, a.name) is getattr(p, a.name) for a in declared(Process))


def test_a_dup_copies_what_is_declared_copied():
    src = _unusual(FdInfo)
    new = src.dup(9)
    assert (new.num, new.open_flags) == (9, 0)
    for a in declared(FdInfo):
        if a.copied:
            assert getattr(new, a.name) == getattr(src, a.name), a.name


def test_defaults_that_follow_another_attribute():
    assert (Process(5).tid, Process(5).vpid, Process(5).vtid) == (5, 5, 5)
    p = Process(5, tid=6)
    assert (p.tid, p.vpid, p.vtid) == (6, 5, 6)


def test_an_attribute_without_a_declaration_is_refused():
    import dataclasses

    @dataclasses.dataclass(slots=True)
    class Half:
        a: int = state(0, "declared")
        b: int = 0

    with pytest.raises(TypeError, match="Half.b is not declared with state"):
        declared(Half)


def test_the_event_constructor_is_its_declarations():
    """Event's constructor is generated from its declarations: the attributes with a position
    are its arguments in that order, the rest start at their defaults, each event with its
    own arguments dict."""
    positional = sorted((a for a in declared(Event) if a.position is not None),
                        key=lambda a: a.position)
    assert [a.name for a in positional] == ["type", "ts", "tid", "pid", "res", "args", "num"]
    e = Event("openat", 1, 2, 3, 4, {"fd": 3}, 5)
    assert [getattr(e, a.name) for a in positional] == ["openat", 1, 2, 3, 4, {"fd": 3}, 5]
    for a in declared(Event):
        if a.position is None:
            assert getattr(e, a.name) == a.default, a.name
    a, b = Event("close"), Event("close", args=None)
    assert a.args == {} and b.args == {} and a.args is not b.args
    assert Event("x", pid=7).pid == 7 and Event("x").source == "syscall"
    with pytest.raises(TypeError):
        Event()                                 # the type has no default
