"""The ``evt.*`` fields read from real event objects."""

from __future__ import annotations

import errno
import os
import socket
import time

import pytest
from syswarden.core.event import Event
from syswarden.core.evt_fields import FIELDS
from syswarden.core.syscalls import O_F_CREATED
from syswarden.core.fields import FieldRegistry

REG = FieldRegistry(FIELDS)
TS = 1_700_000_000_123_456_789


def read(name, evt, arg=None):
    return REG.get(name).bind(arg).read(evt)


def opened(flags, mode=0o644, res=3, type="openat"):
    return Event(type, ts=TS, tid=7, pid=7, res=res,
                 args={"fd": res, "dirfd": -100, "name": "/tmp/f", "flags": flags, "mode": mode})


def test_basic_fields():
    e = opened(os.O_RDONLY)
    e.num = 42
    e.cpu = 1
    assert read("evt.type", e) == "openat"
    assert read("evt.num", e) == 42
    assert read("evt.cpu", e) == 1
    assert read("evt.dir", e) == "<"
    assert read("evt.source", e) == "syscall"
    assert read("evt.hostname", e) == socket.gethostname()
    assert read("evt.count", e) == 1


def test_unnumbered_event_reads_evt_num_as_unknown():
    assert read("evt.num", opened(0)) is None


def test_time_fields():
    e = opened(0)
    secs = TS // 1_000_000_000
    local = time.localtime(secs)
    assert read("evt.rawtime", e) == TS
    assert read("evt.rawtime.s", e) == secs
    assert read("evt.rawtime.ns", e) == 123_456_789
    assert read("evt.time", e) == time.strftime("%H:%M:%S", local) + ".123456789"
    assert read("evt.time.s", e) == time.strftime("%H:%M:%S", local)
    assert read("evt.datetime", e) == time.strftime("%Y-%m-%d %H:%M:%S", local) + ".123456789"
    assert read("evt.time.iso8601", e) == "2023-11-14T22:13:20.123456789+0000"


@pytest.mark.parametrize("res, text, failed", [(3, "SUCCESS", False),
                                               (-errno.ENOENT, "ENOENT", True),
                                               (-errno.EACCES, "EACCES", True)])
def test_result_fields(res, text, failed):
    e = opened(0, res=res)
    assert read("evt.res", e) == text
    assert read("evt.rawres", e) == res
    assert read("evt.failed", e) is failed


@pytest.mark.parametrize("flags, mode, r, w, x", [
    (os.O_RDONLY, 0, True, False, False),
    (os.O_WRONLY | os.O_CREAT, 0o644, False, True, False),
    (os.O_RDWR, 0, True, True, False),
    (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755, False, True, True),
    (os.O_WRONLY, 0o755, False, True, False),          # executable mode, but not created
])
def test_open_flags(flags, mode, r, w, x):
    e = opened(flags, mode)
    assert (read("evt.is_open_read", e), read("evt.is_open_write", e),
            read("evt.is_open_exec", e)) == (r, w, x)
    assert read("evt.is_open_create", e) is False      # asking is not creating
    e.args["flags"] = flags | O_F_CREATED              # the source saw the file created
    assert read("evt.is_open_create", e) is True
    assert read("evt.is_open_exec", e) is x
    assert "O_F_CREATED" in read("evt.arg", e, "flags")


def test_a_successful_o_tmpfile_open_creates():
    tmpfile = 0o20000000 | 0o200000
    e = opened(os.O_RDWR | tmpfile, 0o600)
    e.res = 3
    assert read("evt.is_open_create", e) is True
    e.res = -22
    assert read("evt.is_open_create", e) is False


def test_open_flags_on_other_events_are_false():
    e = Event("connect", args={"flags": 1})
    assert read("evt.is_open_read", e) is False and read("evt.is_open_write", e) is False


def test_creat_is_an_open_for_writing():
    e = Event("creat", res=3, args={"fd": 3, "name": "/tmp/x", "mode": 0o700})
    assert read("evt.is_open_write", e) is True and read("evt.is_open_exec", e) is True


def test_arguments():
    e = opened(os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert read("evt.arg", e, "flags") == "O_TRUNC|O_CREAT|O_WRONLY"
    assert read("evt.arg", e, "mode") == "0644"
    assert read("evt.arg", e, "name") == "/tmp/f"
    assert read("evt.arg", e, "nothere") is None
    assert read("evt.rawarg", e, "flags") == os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    # by position: Falco's event (fd, dirfd, name, flags, mode, dev, ino)
    assert read("evt.arg", e, 0) == "3"
    assert read("evt.arg", e, "2") == "/tmp/f"
    assert read("evt.arg", e, 3) == "O_TRUNC|O_CREAT|O_WRONLY"
    assert read("evt.arg", e, 99) is None
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    assert read("evt.args", e) == (f"fd=3 dirfd=-100 name=/tmp/f "
                                   f"flags={flags}(O_TRUNC|O_CREAT|O_WRONLY) mode=0644")
    failed = opened(0, res=-2)
    assert read("evt.args", failed).startswith("fd=-2(ENOENT) dirfd=-100 ")


def test_socket_domain_by_position():
    e = Event("socket", res=4, args={"fd": 4, "domain": socket.AF_PACKET, "type": 3,
                                     "proto": 0})
    assert read("evt.arg", e, 0) == "4"                 # Falco's socket: fd, domain, type, proto
    assert read("evt.arg", e, 1) == "AF_PACKET"
    assert read("evt.arg", e, "domain") == "AF_PACKET"


def test_buffer():
    assert read("evt.buffer", Event("write", args={"data": b"\x00ab"})) == b"\x00ab"
    assert read("evt.buffer", Event("write", args={"data": "ab"})) == b"ab"
    assert read("evt.buffer", Event("write")) is None


def test_every_field_is_declared_once_with_a_description():
    names = [d.name for d in FIELDS]
    assert len(names) == len(set(names))
    assert all(d.desc and d.provider == "core" and d.name.startswith(("evt.", "syscall."))
               for d in FIELDS)


def test_syscall_type_is_the_system_call_and_unknown_for_other_events():
    read = {d.name: d for d in FIELDS}["syscall.type"].bind(None).read
    assert read(Event("getcwd")) == "getcwd"
    assert read(Event("procexit")) is None
