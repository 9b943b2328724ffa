"""Users and groups: uid -> user.name, gid -> group.name, from the right passwd database.

A process on the host is looked up in the host's /etc/passwd and /etc/group; a process in a
container (another mount namespace) in the container's own files, read through
``/proc/PID/root/etc/passwd``.  Databases are parsed once per root and cached for a while
(``ttl`` seconds), so a user added later is found after the cache expires.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple


class UserEntry(NamedTuple):
    name: str
    uid: int
    gid: int
    home: str
    shell: str


class _Db(NamedTuple):
    users: dict[int, UserEntry]
    groups: dict[int, str]
    loaded: float


_TTL = 60.0
_cache: dict[str, _Db] = {}
_ns_root: dict[int, str] = {}   # mount-namespace inode -> root prefix used for it
_HOST_MNTNS: int | None = None


def _parse_passwd(text: str) -> dict[int, UserEntry]:
    out: dict[int, UserEntry] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or line.startswith("#"):
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        out.setdefault(uid, UserEntry(parts[0], uid, gid, parts[5], parts[6]))
    return out


def _parse_group(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            out.setdefault(int(parts[2]), parts[0])
        except ValueError:
            continue
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def database(root: str = "") -> _Db:
    """The passwd/group database under ``root`` ("" for the host), cached for ``_TTL``."""
    now = time.monotonic()
    db = _cache.get(root)
    if db is None or now - db.loaded > _TTL:
        db = _Db(_parse_passwd(_read(f"{root}/etc/passwd")),
                 _parse_group(_read(f"{root}/etc/group")), now)
        if len(_cache) > 256:
            _cache.clear()
        _cache[root] = db
    return db


def _mntns(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def root_of(p: Any) -> str:
    """The root prefix whose /etc files describe a process: "" on the host."""
    global _HOST_MNTNS
    if _HOST_MNTNS is None:
        _HOST_MNTNS = _mntns(1) or _mntns("self") or 0    # pid 1's, else the agent's own
    # by its mount namespace, not its container id: a `docker exec`'s process still has its
    # parent's (runc, on the host) when its exec is decoded
    ns = _mntns(p.pid)
    if ns is None or ns == _HOST_MNTNS:
        return ""
    got = _ns_root.get(ns)
    if got is None:
        got = f"/proc/{p.pid}/root"
        if not os.path.exists(f"{got}/etc"):
            got = ""
        if len(_ns_root) > 1024:
            _ns_root.clear()
        _ns_root[ns] = got
    elif got and not os.path.exists(got):
        # the process whose root we used is gone: use this one's
        got = f"/proc/{p.pid}/root"
        _ns_root[ns] = got
    return got


def lookup_user(p: Any, uid: int) -> UserEntry | None:
    return database(root_of(p)).users.get(uid)


#: What Falco's user.name and group.name read for an id its database has no entry for
#: (libsinsp's threadinfo: "root" for 0, which a container image without /etc/passwd still
#: runs as).
def _no_entry(xid: int) -> str:
    return "root" if xid == 0 else "<NA>"


def user_name(p: Any, uid: int | None) -> str | None:
    """Falco's user.name: the name, or its placeholder when the uid has no entry."""
    return user_name_in(root_of(p), uid) if uid is not None else None


def user_name_in(root: str, uid: int | None) -> str | None:
    """:func:`user_name` from the database under ``root`` (:func:`root_of`)."""
    if uid is None:
        return None
    u = database(root).users.get(uid)
    return u.name if u is not None else _no_entry(uid)


def group_name(p: Any, gid: int | None) -> str | None:
    return group_name_in(root_of(p), gid) if gid is not None else None


def group_name_in(root: str, gid: int | None) -> str | None:
    if gid is None:
        return None
    name = database(root).groups.get(gid)
    return name if name is not None else _no_entry(gid)


def login_name(uid: int | None) -> str | None:
    """The login user's name, from the host database (the audit uid is a host uid)."""
    if uid is None or uid < 0 or uid >= 0xFFFFFFFF:
        return None
    u = database("").users.get(uid)
    return u.name if u is not None else _no_entry(uid)
