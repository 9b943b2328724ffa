"""Fixtures for the rule language tests: a small field registry and an event builder
(:func:`syswarden.testing.make_event`).

The unit tests of the language use fields declared here (Falco's names, readers over the real
event objects) so they do not depend on the enrichers' declarations; the tests of the compat
rule files use the real registry (:func:`syswarden.core.plugins.collect_fields`).
"""

from __future__ import annotations

import pytest
from syswarden.core.evt_fields import FIELDS as EVT_FIELDS
from syswarden.core.fields import ArgKind, Bound, Field, FieldRegistry, FieldType, define
from syswarden.testing import make_event

F = FieldType


def _proc_name(e):
    return e.proc.comm if e.proc else None


def _proc_pname(e):
    return e.proc.parent.comm if e.proc and e.proc.parent else None


def _proc_cmdline(e):
    return e.proc.cmdline if e.proc else None


def _proc_pid(e):
    return e.proc.pid if e.proc else None


def _user_uid(e):
    return e.proc.uid if e.proc else None


def _upper(e):
    return e.proc.is_exe_upper_layer if e.proc else None


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


def _fd_name(e):
    return e.fd.name if e.fd else None


def _fd_num(e):
    return e.fd.num if e.fd else None


def _fd_sip(e):
    return e.fd.sip if e.fd else None


def _fd_snet(e):
    return e.fd.sip if e.fd else None


def _fd_ip(e):
    return (e.fd.cip, e.fd.sip) if e.fd and e.fd.sip else None


def _fd_sport(e):
    return e.fd.sport if e.fd else None


def _container_id(e):
    return e.container.id if e.container else "host"


def _container_name(e):
    return e.container.name if e.container else "host"


def _container_repo(e):
    return e.container.image_repository if e.container else None


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


def _unknown(e):
    return None


TEST_FIELDS = define("test", (
    Field("proc.name", F.STRING, "process name", _proc_name),
    Field("proc.pname", F.STRING, "parent name", _proc_pname),
    Field("proc.cmdline", F.STRING, "command line", _proc_cmdline),
    Field("proc.pid", F.INT64, "pid", _proc_pid),
    Field("user.uid", F.UINT64, "uid", _user_uid),
    Field("proc.is_exe_upper_layer", F.BOOL, "exe on the upper layer", _upper),
    Field("proc.aname", F.STRING, "ancestor names", _proc_aname, ArgKind.INDEX_OPTIONAL, "[n]"),
    Field("fd.name", F.STRING, "fd name", _fd_name),
    Field("fd.num", F.INT64, "fd number", _fd_num),
    Field("fd.sip", F.IPADDR, "server ip", _fd_sip),
    Field("fd.snet", F.IPNET, "server ip (against a network)", _fd_snet),
    Field("fd.ip", F.IPADDR, "client or server ip (multi-valued)", _fd_ip, many=True),
    Field("fd.sport", F.PORT, "server port", _fd_sport),
    Field("container.id", F.STRING, "container id", _container_id),
    Field("container.name", F.STRING, "container name", _container_name),
    Field("container.image.repository", F.STRING, "image repository", _container_repo),
    Field("container.mount.dest", F.STRING, "mount destinations", _mount_dest,
          ArgKind.INDEX_OR_KEY, "[index|glob]"),
    Field("proc.env", F.STRING, "environment", _proc_env, ArgKind.KEY_OPTIONAL, "[name]"),
    Field("proc.unknown_here", F.STRING, "always unknown", _unknown),
))


@pytest.fixture(scope="session")
def reg() -> FieldRegistry:
    return FieldRegistry(list(EVT_FIELDS) + list(TEST_FIELDS))


@pytest.fixture(scope="session")
def real_registry() -> FieldRegistry:
    from syswarden.core.plugins import collect_fields
    return collect_fields()


@pytest.fixture
def ev():
    """A realistic event: a process tree, an fd, optionally a container."""
    return make_event
