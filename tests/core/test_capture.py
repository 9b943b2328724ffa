"""The capture format: round trips, the short form, malformed lines, and the JSON Schema.

The schema check uses a small validator for the subset of JSON Schema the schema file uses
(``$ref``, ``oneOf``, ``type``, ``required``, ``properties``, ``additionalProperties``, ``items``,
``enum``, ``minimum``, ``minLength``): no dependency is added for it.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import os
import pathlib
import re

import pytest

from syswarden.core.capture import (
    ANCESTOR_KEYS,
    CaptureError,
    CaptureWriter,
    Decoder,
    event_to_record,
    header_record,
    parse_flag_text,
    read_capture,
    record_to_event,
)
from syswarden.core.capture.lines import MAX_LINE_BYTES
from syswarden.core.errors import UnsafePathError
from syswarden.core.event import (Container, Event, ExecFacts, FdInfo, ForkFacts, KernelFacts,
                                  Mount, Process)
from tests.helpers.users import as_nobody, root_secret, shared_dir, unchanged

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "capture-format.schema.json").read_text())

# ---------------------------------------------------------------------------------------------
# A validator for the subset of JSON Schema the schema uses
# ---------------------------------------------------------------------------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"$schema", "$id", "title", "description", "$defs", "$ref", "oneOf", "type",
          "required", "properties", "additionalProperties", "items", "enum", "minimum",
          "minLength"}


def schema_errors(value, schema, root=SCHEMA, path="$") -> list[str]:
    unknown = set(schema) - _KNOWN
    assert not unknown, f"validator does not know {unknown}"
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/")
        return schema_errors(value, root["$defs"][ref[8:]], root, path)
    errors: list[str] = []
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not schema_errors(value, s, root, path)]
        if len(ok) != 1:
            errors.append(f"{path}: matches {len(ok)} of oneOf")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return errors + [f"{path}: not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errors.append(f"{path}: below minimum")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{path}: missing {key}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], root, f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {key}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, root, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    return errors


# ---------------------------------------------------------------------------------------------
# Events as the live pipeline builds them
# ---------------------------------------------------------------------------------------------


def _live_events() -> list[Event]:
    """Events shaped like the enrichers leave them: a shell in a container, its parent chain,
    an open, a connect with real ip addresses, a write with a byte buffer."""
    c = Container(id="0123456789ab", full_id="0123456789ab" + "0" * 52, name="web",
                  host_pid=False, host_network=True, pod_labels={"app": "web"},
                  image="registry.local:5000/team/nginx:1.25", image_repository=
                  "registry.local:5000/team/nginx", image_tag="1.25", privileged=True,
                  mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", "", True,
                                "rprivate")],
                  labels={"io.kubernetes.pod.name": "web-1"}, start_ts=1_795_000_000_000_000_000,
                  complete=True)
    init = Process(1, comm="systemd", exe="/sbin/init", exepath="/usr/lib/systemd/systemd",
                   uid=0, user="root", container_id="host")
    runtime = Process(900, ppid=1, comm="containerd-shim", exe="containerd-shim",
                      exepath="/usr/bin/containerd-shim", args=["-namespace", "moby"],
                      container_id="host", start_ts=5)
    runtime.parent = init
    nginx = Process(1001, ppid=900, vpid=1, comm="nginx", exe="nginx",
                    exepath="/usr/sbin/nginx", args=["-g", "daemon off;"], cwd="/",
                    container_id=c.id, container=c, uid=101, user="nginx", gid=101,
                    group="nginx", start_ts=10)
    nginx.parent = runtime
    sh = Process(1050, ppid=1001, vpid=7, comm="bash", exe="/bin/bash", exepath="/bin/bash",
                 args=["-i"], cwd="/tmp/", tty=34816, uid=0, gid=0, user="root", group="root",
                 loginuid=-1, sid=1050, env=["TERM=xterm", "HOME=/root"], container_id=c.id,
                 container=c, is_exe_upper_layer=True, cap_effective=0xa80425fb,
                 start_ts=20)
    sh.parent = nginx
    out = []
    e = Event("execve", ts=1_795_000_000_000_000_100, tid=1050, pid=1050, res=0,
              args={"filename": "/bin/bash", "res": 0}, num=1)
    e.proc, e.container, e.cpu, e.cgroup_id = sh, c, 1, 4242
    out.append(e)
    e = Event("openat", ts=1_795_000_000_000_000_200, tid=1050, pid=1050, res=3,
              args={"dirfd": -100, "name": "/etc/shadow", "flags": 0, "mode": 0}, num=2)
    e.proc, e.container = sh, c
    e.fd = FdInfo(3, "file", "/etc/shadow", ino=1234, dev=2049)
    out.append(e)
    e = Event("connect", ts=1_795_000_000_000_000_300, tid=1050, pid=1050, res=0,
              args={"fd": 4, "tuple": "172.17.0.2:40000->1.2.3.4:443"}, num=3)
    e.proc, e.container = sh, c
    e.fd = FdInfo(4, "ipv4", "172.17.0.2:40000->1.2.3.4:443",
                  sip=ipaddress.ip_address("1.2.3.4"), sport=443,
                  cip=ipaddress.ip_address("172.17.0.2"), cport=40000, l4proto="tcp",
                  sockfamily="ip", is_server=False)
    out.append(e)
    e = Event("write", ts=1_795_000_000_000_000_400, tid=1051, pid=1050, res=5,
              args={"fd": 4, "data": b"\x00hi\xff\n"}, num=4)
    e.proc, e.container = sh, c
    e.kernel = KernelFacts(fd_name_changed=True)
    out.append(e)
    e = Event("ptrace", ts=1_795_000_000_000_000_500, tid=900, pid=900, res=-1,
              args={"request": 16, "pid": 1050}, num=5)
    e.proc = runtime
    out.append(e)
    return out


def _same_proc(a: Process, b: Process, keys=None) -> None:
    for key in keys or Process.__slots__:
        if key in ("parent", "container", "fds"):
            continue
        assert getattr(a, key) == getattr(b, key), key
    assert (a.parent is None) == (b.parent is None)


def _same_lineage(a: Process, b: Process) -> None:
    """The same process, and ancestors with what Falco's ancestor fields read."""
    _same_proc(a, b)
    a, b = a.parent, b.parent
    while a is not None:
        _same_proc(a, b, ANCESTOR_KEYS)
        a, b = a.parent, b.parent
    assert b is None


def test_round_trip_keeps_every_field_the_rules_read(tmp_path):
    events = _live_events()
    path = tmp_path / "cap.jsonl"
    with CaptureWriter(path) as w:
        w.write_batch(events)
    assert w.count == len(events)
    errors: list = []
    back = list(read_capture(str(path), on_error=lambda n, m: errors.append((n, m))))
    assert errors == []
    assert len(back) == len(events)
    for a, b in zip(events, back):
        for key in ("num", "ts", "type", "tid", "pid", "res", "args", "cpu", "cgroup_id",
                    "source", "kernel"):
            assert getattr(a, key) == getattr(b, key), (a, key)
        _same_lineage(a.proc, b.proc)
        if a.fd is not None:
            for key in FdInfo.__slots__:
                assert getattr(a.fd, key) == getattr(b.fd, key), key
        if a.container is not None:
            assert a.container == b.container
            assert b.proc.container is b.container
    # the byte buffer and the ip addresses come back as their types
    assert back[3].args["data"] == b"\x00hi\xff\n"
    assert back[2].fd.sip == ipaddress.ip_address("1.2.3.4")
    # the same process on four lines is one object, so are its ancestors and its container
    assert back[0].proc is back[1].proc is back[2].proc is back[3].proc
    assert back[0].container is back[3].container
    # the runtime: an ancestor on the first lines, then an event's own process (a full record)
    assert back[4].proc.pid == back[0].proc.parent.parent.pid == 900
    assert back[4].proc.parent is back[0].proc.parent.parent.parent


def test_an_ancestor_record_reuses_the_full_record_of_an_earlier_line():
    d = Decoder()
    full = d.decode({"type": "openat", "proc": {"pid": 5, "comm": "bash", "exe": "bash",
                                                "cwd": "/root", "uid": 0, "user": "root",
                                                "gid": 0, "group": "root"}})
    child = d.decode({"type": "execve", "proc": {"pid": 6, "ppid": 5, "comm": "ls", "uid": 0,
                                                 "user": "root", "gid": 0, "group": "root"},
                      "ancestors": [{"pid": 5, "comm": "bash", "exe": "bash"}]})
    assert child.proc.parent is full.proc
    changed = d.decode({"type": "execve", "proc": {"pid": 7, "ppid": 5, "comm": "ls"},
                        "ancestors": [{"pid": 5, "comm": "vim", "exe": "vim"}]})
    assert changed.proc.parent is not full.proc and changed.proc.parent.comm == "vim"
    assert changed.proc.parent.uid is None  # an ancestor's record gets no short-form defaults


def test_the_schema_names_every_field_of_the_state_objects():
    """A field added to Process, FdInfo or Container must be documented in the schema."""
    import dataclasses
    defs = SCHEMA["$defs"]
    # parent, container, fds: written apart; live: never stored (a replay reads no /proc)
    assert set(Process.__slots__) - {"parent", "container", "fds", "live"} \
        <= set(defs["process"]["properties"])
    assert set(FdInfo.__slots__) <= set(defs["fd"]["properties"])
    # pod_probes: a Docker pod sandbox's, which its pod's containers copy theirs from (live)
    assert {f.name for f in dataclasses.fields(Container)} - {"pod_probes"} \
        <= set(defs["container"]["properties"])
    assert {f.name for f in dataclasses.fields(Mount)} <= set(defs["mount"]["properties"])


def test_the_schema_and_the_docs_tables_are_generated_from_the_declarations():
    from syswarden.core.capture import schema as generated
    stale = "stale: python -m syswarden.core.capture.schema --write"
    assert (REPO / "docs" / generated.SCHEMA_FILE).read_text() == generated.render_schema(), \
        stale
    page = (REPO / "docs" / generated.FORMAT_DOC).read_text()
    assert generated.tables_in(page) == generated.render_tables(), stale


def test_an_attribute_the_capture_cannot_check_is_refused():
    """Every stored attribute is read through the codec of its declared type: a type without
    one is an error, not a value taken unchecked."""
    import dataclasses
    import datetime

    from syswarden.core.capture.format import stored
    from syswarden.core.event import state

    @dataclasses.dataclass(slots=True)
    class Odd:
        when: datetime.datetime | None = state(None, "a type the capture cannot check")
        kept: datetime.datetime | None = state(None, "not stored", captured=False)

    with pytest.raises(TypeError, match="Odd.when: the capture has no codec for its type"):
        stored(Odd)


def test_kernel_facts_round_trip_and_an_older_capture_reads():
    sa = ("ipv4", ipaddress.ip_address("1.2.3.4"), 443)
    connect = Event("connect", ts=1, tid=5, pid=5, res=0, args={"fd": 3})
    connect.kernel = KernelFacts(7, sa, local=("ipv4", ipaddress.ip_address("10.0.0.2"), 4000))
    execve = Event("execve", ts=2, tid=5, pid=5)
    execve.kernel = ExecFacts(exepath="/usr/bin/ls", argv=["ls", "-l"], uid=0, gid=0, tty=0,
                              old_pid=6)
    clone = Event("clone", ts=3, tid=5, pid=5, res=9)
    clone.kernel = ForkFacts(child_tid=9, is_thread=True)
    for evt in (connect, execve, clone):
        rec = json.loads(json.dumps(event_to_record(evt)))
        assert schema_errors(rec, SCHEMA) == []
        back = record_to_event(rec, 1, Decoder(short_form=False))
        assert back.kernel == evt.kernel and type(back.kernel) is type(evt.kernel)
    assert "extra" not in event_to_record(Event("openat"))
    # written by an earlier version: argv_truncated is read and ignored
    old = {"type": "execve", "extra": {"tty": None, "loginuid": None, "vpid": None,
                                       "exepath": "/bin/sh", "argv": ["sh"], "old_pid": 0,
                                       "argv_truncated": False, "uid": 0, "gid": 0}}
    assert record_to_event(old).kernel == ExecFacts(exepath="/bin/sh", argv=["sh"], uid=0,
                                                     gid=0)
    # a fact the event type does not have, or of the wrong type, is the line's fault
    for rec, fault in ((({"type": "openat", "extra": {"child_tid": 5}}),
                        "unknown key extra.child_tid"),
                       ({"type": "openat", "extra": {"ino": "5"}}, "extra.ino must be an integer"),
                       ({"type": "connect", "extra": {"sockaddr": ["ipv4", "x", 1]}},
                        "extra.sockaddr: 'x' is not an IP address")):
        with pytest.raises(CaptureError, match=re.escape(fault)):
            record_to_event(rec)


def test_an_open_s_realpath_and_identity_are_replayed_as_captured():
    """fd.realpath and fd.devino come back from a capture as the kernel had them: a replay
    never walks or stats the replaying machine's files."""
    from syswarden.testing import read_field
    ev = Event("openat", ts=1, tid=5, pid=5, res=3, args={"fd": 3, "name": "/tmp/x"})
    ev.kernel = KernelFacts(realpath="/etc/shadow")
    ev.fd = FdInfo(3, "file", "/tmp/x")
    ev.fd.realpath, ev.fd.dev, ev.fd.ino = "/etc/shadow", os.makedev(254, 3), 4242
    rec = json.loads(json.dumps(event_to_record(ev)))
    assert schema_errors(rec, SCHEMA) == []
    back = record_to_event(rec, 1, Decoder(short_form=False))
    assert back.kernel == ev.kernel and back.fd.realpath == "/etc/shadow"
    assert read_field("fd.realpath", back) == "/etc/shadow"
    assert read_field("fd.devino", back) == "254:3:4242"
    assert read_field("fd.name", back) == "/tmp/x"


def test_written_lines_match_the_schema(tmp_path):
    path = tmp_path / "cap.jsonl"
    with CaptureWriter(path) as w:
        w.write_batch(_live_events())
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["syswarden_capture"] == 1
    for line in lines:
        assert schema_errors(json.loads(line), SCHEMA) == []


SHORT_SAMPLES = [
    {"type": "openat", "proc": {"name": "cat", "cmdline": "cat /etc/shadow"},
     "fd": {"name": "/etc/shadow"}, "args": {"flags": "O_RDONLY"}},
    {"type": "execve", "proc": {"name": "sh", "args": "-c 'id; ls'",
                                "parent": {"name": "nginx", "parent": {"name": "containerd"}}},
     "container": {"image": "nginx:1.25", "mounts": [{"dest": "/host", "source": "/"}]}},
    {"type": "connect", "proc": {"pid": 77, "name": "bash"},
     "fd": {"sip": "2001:db8::1", "sport": 4444}},
    {"type": "ptrace", "args": {"request": "PTRACE_ATTACH", "pid": 77}, "pid": 77},
]


@pytest.mark.parametrize("rec", SHORT_SAMPLES)
def test_short_form_samples_match_the_schema(rec):
    assert schema_errors(rec, SCHEMA) == []


@pytest.mark.parametrize("rec, fault", [
    ({"proc": {"name": "x"}}, "missing type"),
    ({"type": "openat", "bogus": 1}, "unexpected key bogus"),
    ({"type": "openat", "proc": {"name": "x", "uid": "root"}}, "$.proc.uid"),
    ({"type": "openat", "fd": {"type": "socket"}}, "not in enum"),
    ({"type": "execve", "container": {"mounts": [{"source": "/"}]}}, "missing dest"),
    ({"type": "write", "args": {"data": {"b64": "AA=="}}}, "$.args.data"),
])
def test_schema_rejects_bad_records(rec, fault):
    errors = schema_errors(rec, SCHEMA)
    assert errors, rec
    # a bad event is also no header; the event branch names the fault
    from_event = schema_errors(rec, SCHEMA["$defs"]["event"])
    assert any(fault in e for e in from_event), from_event


def test_short_form_defaults():
    d = Decoder()
    e = d.decode(SHORT_SAMPLES[0])
    assert (e.type, e.res, e.fd.num, e.fd.type, e.args["name"]) == \
        ("openat", 3, 3, "file", "/etc/shadow")
    assert e.args["flags"] == 0
    assert (e.proc.comm, e.proc.args, e.proc.cmdline) == ("cat", ["/etc/shadow"],
                                                          "cat /etc/shadow")
    assert (e.proc.uid, e.proc.user, e.proc.container_id) == (0, "root", "host")
    assert e.pid == e.tid == e.proc.pid >= 20000
    e2 = d.decode(SHORT_SAMPLES[1])
    assert e2.ts == e.ts + 1000 and e2.num == e.num + 1
    assert e2.proc.args == ["-c", "id; ls"]
    assert [p.comm for p in e2.proc.ancestors()] == ["nginx", "containerd"]
    c = e2.container
    assert (c.image_repository, c.image_tag, c.privileged, c.complete) == \
        ("nginx", "1.25", False, True)
    assert len(c.id) == 12 and e2.proc.container_id == c.id and e2.proc.container is c
    assert e2.proc.parent.container is c
    assert c.mounts == [Mount("/", "/host")]
    e3 = d.decode(SHORT_SAMPLES[2])
    assert (e3.fd.type, e3.fd.l4proto, e3.fd.name) == \
        ("ipv6", "tcp", "0.0.0.0:0->[2001:db8::1]:4444")
    e4 = d.decode(SHORT_SAMPLES[3])
    assert e4.args["request"] == 16
    assert e4.proc is e3.proc  # named by pid only: the process of an earlier line


def test_same_short_process_twice_is_one_process():
    d = Decoder()
    rec = {"type": "execve", "proc": {"name": "sh", "parent": {"name": "nginx"}}}
    a, b = d.decode(rec), d.decode(dict(rec))
    assert a.proc is b.proc and a.proc.parent is b.proc.parent
    other = d.decode({"type": "execve", "proc": {"name": "sh", "parent": {"name": "httpd"}}})
    assert other.proc is not a.proc and other.proc.pid != a.proc.pid


def test_ppid_links_to_the_process_of_an_earlier_line():
    d = Decoder()
    d.decode({"type": "execve", "proc": {"pid": 10, "name": "sshd"}})
    child = d.decode({"type": "execve", "proc": {"pid": 11, "ppid": 10, "name": "bash"}})
    assert child.proc.parent.comm == "sshd"
    # the parent execs a new program: a new object; the child keeps its link to the old one
    d.decode({"type": "execve", "proc": {"pid": 10, "name": "login"}})
    grandchild = d.decode({"type": "execve", "proc": {"pid": 12, "ppid": 10, "name": "ls"}})
    assert grandchild.proc.parent.comm == "login"
    assert child.proc.parent.comm == "sshd"


@pytest.mark.parametrize("text, value", [
    ("O_WRONLY|O_CREAT|O_TRUNC", 0o1101), ("O_RDWR", 2), ("PTRACE_ATTACH", 16),
    ("CLONE_NEWNET|CLONE_NEWNS", 0x40020000), ("0644", 0o644), ("12", 12), ("AF_INET", 2),
])
def test_flag_text(text, value):
    assert parse_flag_text(text) == value


def test_malformed_lines_are_reported_with_their_numbers_and_skipped(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"type": "execve", "proc": {"name": "ok"}})
    path.write_text("\n".join([
        good,                                                             # 1 (short form)
        good,                                                             # 2
        "{not json",                                                      # 3
        "",                                                               # 4 (blank: fine)
        json.dumps([1, 2]),                                               # 5
        json.dumps({"type": "openat", "proc": {"name": "x", "uid": "0"}}),  # 6
        json.dumps({"type": "openat", "args": {"flags": "O_BOGUS"}}),     # 7
        json.dumps({"type": "openat", "fd": {"sip": "not-an-ip"}}),       # 8
        json.dumps(header_record()),                                      # 9
        json.dumps({"proc": {"name": "no type"}}),                        # 10
        good,                                                             # 11
    ]) + "\n")
    errors: list[tuple[int, str]] = []
    events = list(read_capture(str(path), on_error=lambda n, m: errors.append((n, m))))
    assert len(events) == 3 and events[0].proc is events[1].proc is events[2].proc
    assert [n for n, _ in errors] == [3, 5, 6, 7, 8, 9, 10]
    messages = dict(errors)
    assert "not JSON" in messages[3]
    assert "proc.uid must be an integer" in messages[6]
    assert "O_BOGUS" in messages[7]
    assert "not-an-ip" in messages[8]
    assert "header" in messages[9]
    assert "type" in messages[10]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: (a hostile line, what its report says): each is skipped, the lines around it decoded.
HOSTILE_LINES = [
    (json.dumps({"type": "open", "container": {"id": "c1", "image": 5}}),
     "container.image must be a string or null"),
    (json.dumps({"type": "open", "container": {"id": "c1", "image": ["a", "b"]}}),
     "container.image must be a string or null"),
    (json.dumps({"type": "open", "container": {"id": "c1", "privileged": "yes"}}),
     "container.privileged must be true or false or null"),
    (json.dumps({"type": "open", "container": {"id": "c1", "mounts": {"dest": "/"}}}),
     "container.mounts must be a list"),
    (json.dumps({"type": "open", "container": {"id": "c1", "mounts": [{"dest": 7}]}}),
     "container.mounts[0].dest must be a string"),
    (json.dumps({"type": "open", "container": {"id": "c1", "pod_labels": "x"}}),
     "container.pod_labels must be an object"),
    ('{"type": "open", "args": {"a": ' + _nested(100_000) + '}}', "nested too deeply"),
    ('{"type": "open", "args": {"a": ' + _nested(200) + '}}', "args.a is nested deeper than"),
    ('{"type": "open", "extra": {"a": ' + _nested(200) + '}}', "extra is nested deeper than"),
    (json.dumps({"type": "open", "proc": functools.reduce(
        lambda p, _: {"name": "sh", "parent": p}, range(200), {"name": "init"})}),
     "parents nested deeper than"),
    (json.dumps({"type": "open", "args": {"buf": {"$bytes": 5}}}),
     "args.buf.$bytes must be a string"),
    (b'{"type": "open", "fd": {"name": "\xff\xfe"}}', "not JSON"),  # not UTF-8
    (json.dumps([{"type": "open"}]), "a record must be a JSON object"),
    (json.dumps("open"), "a record must be a JSON object"),
    ("42", "a record must be a JSON object"),
    ("null", "a record must be a JSON object"),
]


def test_every_hostile_line_is_skipped_and_reported_and_the_good_lines_decoded(tmp_path):
    path = tmp_path / "hostile.jsonl"
    good = json.dumps({"type": "execve", "proc": {"name": "ok"},
                       "container": {"id": "c1", "image": "nginx:1"}}).encode()
    lines = [good]
    for bad, _ in HOSTILE_LINES:
        lines += [bad if isinstance(bad, bytes) else bad.encode(), good]
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors: list[tuple[int, str]] = []
    events = list(read_capture(str(path), on_error=lambda n, m: errors.append((n, m))))
    assert len(events) == len(HOSTILE_LINES) + 1
    assert all(e.container.image_repository == "nginx" for e in events)
    assert [n for n, _ in errors] == list(range(2, 2 * len(HOSTILE_LINES) + 1, 2))
    for (lineno, message), (_, expected) in zip(errors, HOSTILE_LINES):
        assert expected in message, (lineno, message)


def test_a_line_longer_than_the_limit_is_skipped_and_reported(tmp_path):
    path = tmp_path / "long.jsonl"
    long_line = json.dumps({"type": "open", "fd": {"name": "x" * (MAX_LINE_BYTES + 10)}})
    path.write_text("\n".join(['{"type": "open"}', long_line, '{"type": "close"}']) + "\n")
    errors: list[tuple[int, str]] = []
    events = list(read_capture(str(path), on_error=lambda n, m: errors.append((n, m))))
    assert [e.type for e in events] == ["open", "close"]
    assert errors == [(2, f"line longer than {MAX_LINE_BYTES} bytes ({len(long_line) + 1})")]


def test_a_megabyte_command_line_in_the_short_form_is_split_like_a_shell():
    word = "A" * (1 << 20)
    evt = record_to_event({"type": "execve", "proc": {
        "cmdline": f"/usr/bin/python3 -c '{word} x' \"y\\\"z\" {word}"}})
    assert (evt.proc.comm, evt.proc.exe) == ("python3", "/usr/bin/python3")
    assert evt.proc.args == ["-c", f"{word} x", 'y"z', word]
    evt = record_to_event({"type": "execve", "proc": {"name": "sh", "args": word + " b"}})
    assert evt.proc.args == [word, "b"]


def test_a_capture_with_a_header_is_read_as_written(tmp_path):
    """syswarden wrote it: no short-form defaults, flags stay as recorded."""
    path = tmp_path / "cap.jsonl"
    path.write_text(json.dumps(header_record()) + "\n" + json.dumps(
        {"type": "openat", "ts": 7, "tid": 1, "pid": 1, "res": -2,
         "args": {"flags": "O_WRONLY"}, "proc": {"pid": 1, "comm": "x"},
         "fd": {"num": 5, "type": "file", "name": "/a"}}) + "\n")
    (evt,) = read_capture(str(path))
    assert evt.args == {"flags": "O_WRONLY"} and evt.res == -2
    assert (evt.proc.exe, evt.proc.uid, evt.proc.user) == ("", None, None)


def test_malformed_line_goes_to_the_log_without_a_callback(tmp_path, caplog):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "open"}\nnope\n')
    assert len(list(read_capture(str(path)))) == 1
    assert f"{path}:2: malformed capture line skipped" in caplog.text


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps({"syswarden_capture": 99}) + "\n")
    with pytest.raises(CaptureError, match="version 99 is newer") as info:
        list(read_capture(str(path)))
    assert info.value.location.line == 1


def test_unreadable_file_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot read capture") as info:
        list(read_capture(str(tmp_path / "missing.jsonl")))
    assert info.value.location.file.endswith("missing.jsonl")


def test_written_lines_reach_the_file_while_the_capture_runs(tmp_path):
    path = tmp_path / "cap.jsonl"
    w = CaptureWriter(str(path), flush_seconds=0)
    w.write(_live_events()[0])
    assert len(path.read_text().splitlines()) == 2  # header and the event, before close
    w.close()


def test_gzip_capture(tmp_path):
    path = tmp_path / "cap.jsonl.gz"
    with CaptureWriter(str(path)) as w:
        w.write_batch(_live_events())
    with gzip.open(path, "rt") as fh:
        assert json.loads(fh.readline())["syswarden_capture"] == 1
    assert [e.num for e in read_capture(str(path))] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", ["cap.jsonl", "cap.jsonl.gz"])
def test_a_capture_is_written_0600(tmp_path, name):
    path = tmp_path / name
    with CaptureWriter(str(path)) as w:
        w.write_batch(_live_events())
    assert path.stat().st_mode & 0o7777 == 0o600
    assert [e.num for e in read_capture(str(path))] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", ["cap.jsonl", "cap.jsonl.gz"])
def test_capture_w_refuses_a_symlink_nobody_planted(tmp_path, name):
    """``capture -w /tmp/cap.jsonl``: a link planted there must not make root truncate the
    file it points at."""
    secret = root_secret(tmp_path / "shadow")
    with shared_dir() as shared:
        as_nobody(os.symlink, str(secret), str(shared / name))
        with pytest.raises(UnsafePathError, match="is a symbolic link"):
            CaptureWriter(str(shared / name))
    assert unchanged(secret)


def test_record_to_event_names_the_line():
    with pytest.raises(CaptureError) as info:
        record_to_event({"type": "openat", "proc": {"nmae": "typo"}}, 42)
    assert info.value.location.line == 42
    assert "unknown key proc.nmae" in str(info.value)


def test_real_process_from_proc_round_trips():
    """This test process, read from the real /proc, through the writer and back."""
    pid = os.getpid()
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        argv = [a.decode() for a in fh.read().split(b"\0") if a]
    with open(f"/proc/{pid}/comm") as fh:
        comm = fh.read().strip()
    proc = Process(pid, ppid=os.getppid(), comm=comm, exe=argv[0],
                   exepath=os.readlink(f"/proc/{pid}/exe"), args=argv[1:], cwd=os.getcwd(),
                   uid=os.getuid(), gid=os.getgid(), container_id="host")
    evt = Event("execve", ts=1, tid=pid, pid=pid)
    evt.proc = proc
    back = record_to_event(json.loads(json.dumps(event_to_record(evt))))
    _same_proc(proc, back.proc)
    assert back.proc.cmdline == f"{comm} {' '.join(argv[1:])}".strip()


@pytest.mark.parametrize("all_events", [False, True])
def test_capture_main_writes_enriched_events_and_the_rules_event_types(tmp_path, all_events):
    """`syswarden capture` wiring, with the agent tests' kit plugins as the live stages."""
    import argparse

    from syswarden.commands.capture import capture_main
    from syswarden.core.config import load_config
    from syswarden.core.plugins import BUILTIN_PLUGINS, make_plugin_manager

    kit = str(REPO / "tests" / "core" / "plugin_kit.py")
    rules = tmp_path / "kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    cfg = {"plugins": [kit], "disabled_plugins": [n for n, _, _ in BUILTIN_PLUGINS],
           "kit": {"rules": str(rules), "output": str(tmp_path / "alerts"), "count": 30},
           "pipeline": {"stats_interval": 0}}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(json.dumps(cfg))
    plugins = make_plugin_manager(cfg)
    config = load_config(str(cfg_path), (), plugins.schemas())
    out = tmp_path / "cap.jsonl"
    args = argparse.Namespace(write=str(out), max_seconds=None, all_events=all_events,
                              config=str(cfg_path), overrides=[], rules=None)
    assert capture_main(args, config, plugins) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["event_types"] == ("all" if all_events else ["kit"])
    assert header["source"] == "kit-source"
    events = list(read_capture(str(out)))
    assert [e.num for e in events] == list(range(1, 31))
    assert not (tmp_path / "alerts").exists()  # no rules judged, no outputs ran


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for eBPF")
def test_live_capture_then_replay_raises_the_alert(tmp_path):
    """`syswarden capture` on the real kernel records a real `cat /etc/shadow`; replaying the
    capture with `syswarden -e` raises the default rule's alert for it, on its own fields."""
    import signal
    import subprocess
    import threading
    import time
    import uuid

    from syswarden.testing import SYSWARDEN

    marker = f"/nonexistent-{uuid.uuid4().hex}"
    out = tmp_path / "live.jsonl"
    cap = subprocess.Popen([*SYSWARDEN, "capture", "-w", str(out), "-M", "120"],
                           stderr=subprocess.PIPE, text=True)
    ready = threading.Event()
    log: list[str] = []

    def watch() -> None:
        for line in cap.stderr:
            log.append(line)
            if "syswarden ready" in line:
                ready.set()
    threading.Thread(target=watch, daemon=True).start()
    try:
        assert ready.wait(90), "".join(log)
        subprocess.run(["cat", "/etc/shadow", marker], capture_output=True)
        # lines reach the file within a second; stop once ours is there (or give up)
        deadline = time.monotonic() + 60
        while marker not in out.read_text() and time.monotonic() < deadline:
            subprocess.run(["true", marker])  # more events, so the writer checks its clock
            time.sleep(0.2)
    finally:
        cap.send_signal(signal.SIGINT)
        cap.wait(timeout=120)
    assert cap.returncode == 0, "".join(log)

    mine = [e for e in read_capture(str(out))
            if e.type in ("open", "openat") and e.proc is not None
            and marker in e.proc.args]
    shadow = [e for e in mine if e.fd is not None and e.fd.name == "/etc/shadow"]
    opens = [(e.fd.name if e.fd else None, e.args.get("name"), e.proc.comm, e.res)
             for e in read_capture(str(out)) if e.type in ("open", "openat")
             and "shadow" in str(e.args.get("name"))]
    assert len(shadow) == 1 and shadow[0].res >= 0, (opens, "".join(log)[-2000:])
    assert shadow[0].proc.comm == "cat" and shadow[0].proc.parent is not None

    replay = subprocess.run([*SYSWARDEN, "-e", str(out), "-o", "json_output=true",
                             "-o", "disabled_plugins=[ebpf]"],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    alerts = [json.loads(line) for line in replay.stdout.splitlines()]
    hits = [a for a in alerts if marker in (a["output_fields"].get("proc.cmdline") or "")]
    assert [a["rule"] for a in hits] == ["Sensitive file read by an untrusted program"]
    assert hits[0]["output_fields"]["fd.name"] == "/etc/shadow"


# ---------------------------------------------------------------------------------------------
# Property: whatever the pipeline attaches, a written line reads back to the same values
# ---------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_int = st.integers(-2**40, 2**40)
_proc_values = st.fixed_dictionaries({
    "comm": _text, "exe": _text, "exepath": _text, "args": st.lists(_text, max_size=4),
    "cwd": _text, "tty": st.integers(0, 2**20), "uid": st.none() | st.integers(0, 2**32),
    "user": st.none() | _text, "loginuid": st.none() | st.integers(-1, 2**32),
    "sid": st.integers(0, 2**22), "start_ts": st.integers(0, 2**62),
    "env": st.lists(_text, max_size=3), "is_exe_upper_layer": st.booleans(),
    "cap_effective": st.integers(0, 2**40),
})
_args = st.dictionaries(st.sampled_from(["fd", "name", "flags", "data", "tuple", "mode"]),
                        _int | _text | st.binary(max_size=16), max_size=4)


@settings(max_examples=150, deadline=None)
@given(chain=st.lists(_proc_values, min_size=1, max_size=5), args=_args,
       res=_int, ip=st.none() | st.ip_addresses(), in_container=st.booleans())
def test_any_event_round_trips(chain, args, res, ip, in_container):
    container = Container(id="c0ffee000001", name="x", image="a/b:1", complete=True,
                          mounts=[Mount("/src", "/dst")]) if in_container else None
    parent = None
    procs = []
    for i, values in enumerate(reversed(chain)):
        p = Process(100 + i, ppid=parent.pid if parent else 0, **values,
                    container_id=container.id if container else "host", container=container)
        p.parent = parent
        procs.append(p)
        parent = p
    evt = Event("openat", ts=5, tid=parent.pid, pid=parent.pid, res=res, args=args, num=9)
    evt.proc, evt.container = parent, container
    evt.fd = (FdInfo(4, "ipv6" if ip.version == 6 else "ipv4", "", sip=ip, sport=80)
              if ip is not None else FdInfo(3, "file", "/x"))
    rec = json.loads(json.dumps(event_to_record(evt)))
    back = record_to_event(rec, 1, Decoder(short_form=False))  # as read after a header
    assert (back.type, back.res, back.args, back.ts, back.num) == \
        (evt.type, evt.res, evt.args, evt.ts, evt.num)
    _same_lineage(evt.proc, back.proc)
    assert (back.fd.sip, back.fd.sport, back.fd.name) == (evt.fd.sip, evt.fd.sport, evt.fd.name)
    assert back.container == evt.container
