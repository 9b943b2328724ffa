"""Fixtures for the rule language tests: a small field registry and an event builder
(:func:`syswarden.testing.make_event`).

The unit tests of the language use fields declared here (Falco's names, readers over the real
event objects) so they do not depend on the enrichers' declarations; the tests of the compat
rule files use the real registry (:func:`syswarden.core.plugins.collect_fields`).
"""

from __future__ import annotations

import pytest
from syswarden.core.evt_fields import FIELDS as EVT_FIELDS
from syswarden.core.fields import ArgKind, Bound, FieldDef, FieldRegistry, FieldSet, FieldType
from syswarden.testing import make_event

F = FieldType
test_fields = FieldSet("test")


@test_fields.field("proc.name", F.STRING, "process name")
def _proc_name(e):
    return e.proc.comm if e.proc else None


@test_fields.field("proc.pname", F.STRING, "parent name")
def _proc_pname(e):
    return e.proc.parent.comm if e.proc and e.proc.parent else None


@test_fields.field("proc.cmdline", F.STRING, "command line")
def _proc_cmdline(e):
    return e.proc.cmdline if e.proc else None


@test_fields.field("proc.pid", F.INT64, "pid")
def _proc_pid(e):
    return e.proc.pid if e.proc else None


@test_fields.field("user.uid", F.UINT64, "uid")
def _user_uid(e):
    return e.proc.uid if e.proc else None


@test_fields.field("proc.is_exe_upper_layer", F.BOOL, "exe on the upper layer")
def _upper(e):
    return e.proc.is_exe_upper_layer if e.proc else None


@test_fields.field("proc.aname", F.STRING, "ancestor names", ArgKind.INDEX_OPTIONAL, "[n]")
def _proc_aname(arg):
    if arg is None:
        return Bound(lambda e: tuple(p.comm for p in e.proc.ancestors()) if e.proc else None,
                     True)

    def read(e):
        p = e.proc
        for _ in range(arg):
            p = p.parent if p is not None else None
        return p.comm if p is not None else None
    return Bound(read)


@test_fields.field("fd.name", F.STRING, "fd name")
def _fd_name(e):
    return e.fd.name if e.fd else None


@test_fields.field("fd.num", F.INT64, "fd number")
def _fd_num(e):
    return e.fd.num if e.fd else None


@test_fields.field("fd.sip", F.IPADDR, "server ip")
def _fd_sip(e):
    return e.fd.sip if e.fd else None


@test_fields.field("fd.snet", F.IPNET, "server ip (against a network)")
def _fd_snet(e):
    return e.fd.sip if e.fd else None


test_fields.defs.append(FieldDef(
    "fd.ip", F.IPADDR, "client or server ip (multi-valued)",
    lambda arg: Bound(lambda e: (e.fd.cip, e.fd.sip) if e.fd and e.fd.sip else None, True),
    provider="test"))


@test_fields.field("fd.sport", F.PORT, "server port")
def _fd_sport(e):
    return e.fd.sport if e.fd else None


@test_fields.field("container.id", F.STRING, "container id")
def _container_id(e):
    return e.container.id if e.container else "host"


@test_fields.field("container.name", F.STRING, "container name")
def _container_name(e):
    return e.container.name if e.container else "host"


@test_fields.field("container.image.repository", F.STRING, "image repository")
def _container_repo(e):
    return e.container.image_repository if e.container else None


@test_fields.field("container.mount.dest", F.STRING, "mount destinations",
                   ArgKind.INDEX_OR_KEY, "[index|glob]")
def _mount_dest(arg):
    if arg is None:
        return Bound(lambda e: tuple(m.dest for m in e.container.mounts)
                     if e.container else None, True)
    if isinstance(arg, int):
        def by_index(e):
            ms = e.container.mounts if e.container else []
            return ms[arg].dest if arg < len(ms) else None
        return Bound(by_index)
    import fnmatch

    def by_glob(e):
        for m in e.container.mounts if e.container else []:
            if fnmatch.fnmatchcase(m.dest, arg):
                return m.dest
        return None
    return Bound(by_glob)


@test_fields.field("proc.env", F.STRING, "environment", ArgKind.KEY_OPTIONAL, "[name]")
def _proc_env(arg):
    if arg is None:
        return Bound(lambda e: " ".join(e.proc.env) if e.proc else None)

    def read(e):
        for kv in e.proc.env if e.proc else []:
            k, _, v = kv.partition("=")
            if k == arg:
                return v
        return None
    return Bound(read)


@test_fields.field("proc.unknown_here", F.STRING, "always unknown")
def _unknown(e):
    return None


@pytest.fixture(scope="session")
def reg() -> FieldRegistry:
    return FieldRegistry(list(EVT_FIELDS) + list(test_fields.defs))


@pytest.fixture(scope="session")
def real_registry() -> FieldRegistry:
    from syswarden.core.plugins import collect_fields
    return collect_fields()


@pytest.fixture
def ev():
    """A realistic event: a process tree, an fd, optionally a container."""
    return make_event
