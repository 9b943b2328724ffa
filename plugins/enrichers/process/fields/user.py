"""Falco's ``user.*`` and ``group.*`` fields: who the process runs as.

Names are resolved by the process table (:mod:`..users`, from the container's own files in a
container); the home directory and the shell are looked up when a rule asks for them.
"""

from __future__ import annotations

from typing import Any

from syswarden.core.fields import Field

from .. import users
from .common import C, I, U, own


def _user_entry(p: Any) -> Any:
    # the user database of a live process of this machine (never a replayed one's)
    if p is None or p.uid is None or not p.live:
        return None
    return users.lookup_user(p, p.uid)


def _user_homedir(e):
    p = e.proc
    u = _user_entry(p)
    if u is not None:
        return u.home
    return None if p is None or p.uid is None or not p.live else \
        ("/root" if p.uid == 0 else "<NA>")      # libsinsp's placeholder, as for the name


def _user_shell(e):
    p = e.proc
    u = _user_entry(p)
    if u is not None:
        return u.shell
    return None if p is None or p.uid is None or not p.live else "<NA>"


def _user_loginuid(e):
    p = e.proc
    if p is None or p.loginuid is None:
        return None
    return -1 if p.loginuid >= 0xFFFFFFFF or p.loginuid < 0 else p.loginuid


FIELDS = (
    Field("user.uid", U, "User ID.", own("uid")),
    Field("user.name", C, "User name (from the container's own /etc/passwd in a container).",
          own("user")),
    Field("user.homedir", C, "Home directory of the user.", _user_homedir),
    Field("user.shell", C, "The user's shell.", _user_shell),
    Field("user.loginuid", I, "Audit user id (auid); -1 when unset.", _user_loginuid),
    Field("user.loginname", C, "Audit user name (auid).", own("loginname")),
    Field("group.gid", U, "Group ID.", own("gid")),
    Field("group.name", C, "Group name.", own("group")),
)
