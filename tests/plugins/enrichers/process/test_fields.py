"""The proc/thread/fd/user/group field readers over Process and FdInfo objects."""

from __future__ import annotations

import glob
import ipaddress
import re


from syswarden.core.event import Event, FdInfo, Process
from syswarden.core.fields import ArgKind, FieldRegistry
from syswarden.plugins.enrichers.process.fields import FIELDS, caps_text, directory_of

REG = FieldRegistry(FIELDS)


def read(name, evt, arg=None):
    return REG.get(name).bind(arg).read(evt)


def chain():
    root = Process(1, comm="systemd", exe="/sbin/init", exepath="/usr/lib/systemd/systemd")
    sh = Process(10, comm="bash", exe="-bash", args=[], ppid=1, sid=10, vpid=10, vpgid=10,
                 exepath="/usr/bin/bash", tty=34816, start_ts=1_000)
    sh.parent = root
    child = Process(20, comm="curl", exe="curl", args=["-s", "http://x"], ppid=10, sid=10,
                    vpid=20, vpgid=20, exepath="/usr/bin/curl", cwd="/home/u", uid=1000,
                    gid=1000, user="u", group="u", loginuid=1000, loginname="u",
                    env=["A=1", "HOME=/home/u"], start_ts=5_000)
    child.parent = sh
    return root, sh, child


def test_every_field_of_the_compat_rules_is_declared(compat):
    used = set()
    for path in glob.glob(str(compat / "falco-rules" / "*.yaml")) + \
            glob.glob(str(compat / "seed-rules" / "falco_rules*.yaml")):
        text = open(path).read()
        used |= set(re.findall(r"(?<![\w.])((?:proc|thread|fd|user|group)\.[a-z0-9_.]+)", text))
    assert used, "the compat rule files name no field"
    missing = sorted(n for n in used if n not in REG and n.rstrip(".") not in REG
                     and n not in ("user.log",))  # user.log: a file name in a list
    assert missing == []


def test_no_reader_raises_on_an_empty_event():
    e = Event("openat")
    supported = [d for d in REG if not d.unsupported]
    for d in supported:
        arg = {ArgKind.INDEX: 1, ArgKind.KEY: "cpu", ArgKind.INDEX_OR_KEY: 0}.get(d.arg)
        d.bind(arg).read(e)
    e.proc, e.fd = Process(5), FdInfo()
    for d in supported:
        arg = {ArgKind.INDEX: 1, ArgKind.KEY: "cpu", ArgKind.INDEX_OR_KEY: 0}.get(d.arg)
        d.bind(arg).read(e)


def test_a_field_that_cannot_be_computed_here_is_refused_when_the_rules_load():
    import pytest

    from syswarden.core.errors import RuleError
    from syswarden.core.plugins import make_plugin_manager
    from syswarden.core.rules.compiler import compile_condition
    every = make_plugin_manager({}).fields()
    unsupported = [d for d in every if d.unsupported]
    assert {"evt.latency", "thread.exectime"} <= {d.name for d in unsupported}
    for d in unsupported:
        assert "Not supported" in d.desc                  # --list-fields says so
        with pytest.raises(ValueError, match="not supported by syswarden"):
            d.bind(None)
    with pytest.raises(RuleError, match="evt.latency is not supported by syswarden: a syscall"):
        compile_condition("evt.latency > 1000", every)


def test_process_and_ancestors():
    _, sh, child = chain()
    e = Event("execve", ts=9_000, tid=20, pid=20)
    e.proc = child
    assert read("proc.name", e) == "curl"
    assert read("proc.cmdline", e) == "curl -s http://x"
    assert read("proc.args", e) == "-s http://x"
    assert read("proc.exeline", e) == "curl -s http://x"
    assert read("proc.pname", e) == "bash"
    assert read("proc.pcmdline", e) == "bash"
    assert read("proc.aname", e, 0) == "curl"
    assert read("proc.aname", e, 2) == "systemd"
    assert read("proc.aname", e, 3) is None
    assert REG.get("proc.aname").bind(None).many
    assert read("proc.aname", e) == ("bash", "systemd")
    assert read("proc.apid", e) == (10, 1)
    assert read("proc.apid", e, 1) == 10
    assert read("proc.aexepath", e, 1) == "/usr/bin/bash"
    assert read("proc.sname", e) == "bash"
    assert read("proc.vpgid.name", e) == "curl"
    assert read("proc.is_vpgid_leader", e) is True
    assert read("proc.is_sid_leader", e) is False
    assert read("proc.loginshellid", e) == 10
    assert read("proc.duration", e) == 4_000
    assert read("proc.ppid.duration", e) == 8_000
    assert read("proc.cwd", e) == "/home/u/"
    assert read("proc.env", e) == "A=1 HOME=/home/u"
    assert read("proc.env", e, "HOME") == "/home/u"
    assert read("proc.env", e, "NOPE") is None
    assert read("proc.aenv", e, "HOME") == "/home/u"
    assert read("proc.tty", e) == 0 and read("proc.tty", Event("x")) is None
    assert read("user.name", e) == "u" and read("user.uid", e) == 1000
    assert read("user.loginuid", e) == 1000 and read("user.loginname", e) == "u"
    assert read("group.gid", e) == 1000 and read("group.name", e) == "u"
    child.loginuid = 0xFFFFFFFF
    assert read("user.loginuid", e) == -1


def test_an_exited_parent_keeps_its_name():
    runc = Process(30, comm="runc:[1:CHILD]", exit_ts=123)
    sh = Process(31, comm="sh", ppid=30)
    sh.parent = runc
    e = Event("execve")
    e.proc = sh
    assert read("proc.pname", e) == "runc:[1:CHILD]"


def test_file_fd_fields():
    e = Event("openat", tid=20, pid=20)
    e.proc = Process(20, container_id="abcdef123456")
    e.fd = FdInfo(3, "file", "/etc/ssl/certs/a.pem")
    assert read("fd.name", e) == "/etc/ssl/certs/a.pem"
    assert read("fd.directory", e) == "/etc/ssl/certs"
    assert read("fd.filename", e) == "a.pem"
    assert read("fd.typechar", e) == "f" and read("fd.num", e) == 3
    assert read("fd.containername", e) == "abcdef123456:/etc/ssl/certs/a.pem"
    assert read("fd.uid", e) == "203"
    assert read("fd.rip", e) is None and read("fd.l4proto", e) is None
    e.fd = FdInfo(-1, "file", "/x")
    assert read("fd.num", e) is None and read("fd.directory", e) == "/"
    e.fd = FdInfo(4, "directory", "/var/log")
    assert read("fd.directory", e) == "/var/log" and read("fd.typechar", e) == "d"
    assert directory_of("/a/b/") == "/a/b/" and directory_of("rel") == "/"


def test_socket_fd_fields_by_role():
    ip = ipaddress.ip_address
    e = Event("connect")
    client = FdInfo(5, "ipv4", "10.0.0.1:40000->10.0.0.2:443", cip=ip("10.0.0.1"), cport=40000,
                    sip=ip("10.0.0.2"), sport=443, l4proto="tcp", sockfamily="ip",
                    is_server=False)
    e.fd = client
    assert read("fd.lip", e) == ip("10.0.0.1") and read("fd.rip", e) == ip("10.0.0.2")
    assert read("fd.lport", e) == 40000 and read("fd.rport", e) == 443
    assert read("fd.ip", e) == (ip("10.0.0.1"), ip("10.0.0.2"))
    assert read("fd.port", e) == (40000, 443)
    assert read("fd.net", e) == (ip("10.0.0.1"), ip("10.0.0.2"))
    assert read("fd.snet", e) == ip("10.0.0.2")
    assert read("fd.connected", e) is True and read("fd.is_server", e) is False
    client.is_server = True
    assert read("fd.lip", e) == ip("10.0.0.2") and read("fd.rport", e) == 40000


def test_caps_text():
    assert caps_text(0) == ""
    assert caps_text((1 << 21) | 1) == "CAP_CHOWN CAP_SYS_ADMIN"


def test_thread_fields_of_the_test_process(tmp_path):
    import os
    me = Process(os.getpid(), start_ts=1, live=True)    # known from this machine's /proc
    e = Event("openat", tid=os.getpid(), pid=os.getpid())
    e.proc = me
    assert read("thread.ismain", e) is True
    assert read("thread.tid", e) == os.getpid()
    perm = read("thread.cap_permitted", e)
    assert perm is not None and ("CAP_SYS_ADMIN" in perm) == (os.geteuid() == 0)
    assert read("proc.vmrss", e) > 0
    assert read("proc.nthreads", e) >= 1
