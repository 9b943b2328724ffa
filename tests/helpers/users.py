"""Another user on the machine, for tests of what root must not be tricked into.

``as_nobody(fn, *args)`` runs ``fn`` in a forked child that dropped to uid/gid 65534 (nobody),
so the links, FIFOs and files it makes are really the unprivileged user's.  ``shared_dir()``
is a fresh world-writable sticky directory under /tmp (mode 1777, like /tmp itself) that nobody
can reach, removed afterwards.  ``root_secret(path)`` writes a root file of mode 0600, the kind
of file a planted link points at.

Use: ``from tests.helpers.users import as_nobody, shared_dir``; the fixture ``shared`` is
``shared_dir()`` for one test (import ``shared_fixture``).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

NOBODY = 65534
SECRET = b"root:$6$only-root-may-read-this\n"


def as_nobody(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` as nobody in a forked child; its exception fails the caller."""
    pid = os.fork()
    if pid == 0:                                   # the child: never returns into pytest
        code = 0
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn(*args)
        except BaseException:  # noqa: BLE001 (the child must never return into pytest)
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"{fn.__name__} failed as nobody"


@contextlib.contextmanager
def shared_dir() -> Iterator[pathlib.Path]:
    """A fresh directory like /tmp: root's, mode 1777."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="sw-shared-", dir="/tmp"))
    try:
        os.chmod(path, 0o1777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="shared")
def shared_fixture() -> Iterator[pathlib.Path]:
    """:func:`shared_dir` as a fixture (import it into the test module)."""
    with shared_dir() as path:
        yield path


def root_secret(path: pathlib.Path, mode: int = 0o600) -> pathlib.Path:
    """A root file holding :data:`SECRET`, of ``mode``."""
    path.write_bytes(SECRET)
    os.chmod(path, mode)
    return path


def unchanged(path: pathlib.Path, mode: int = 0o600) -> bool:
    """The secret is still what :func:`root_secret` wrote, with its mode."""
    st = path.stat()
    return path.read_bytes() == SECRET and st.st_mode & 0o7777 == mode and st.st_uid == 0
