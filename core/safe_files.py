"""Files root writes at a configured path: opened so another user cannot redirect the writes.

The agent is root; the alerts file, the webhook queue and a capture hold the command lines and
file names of the whole host.  A user who can write in a directory on the way could plant a
symbolic link there (root would append to ``/etc/shadow``), a hard link to a root file, or a
FIFO (root would block on it).  So :func:`open_file`:

* walks the path from ``/`` one directory at a time (``openat`` with ``O_NOFOLLOW``), resolving
  symbolic links itself: every directory must belong to root or to us, and one others can write
  (group-writable with a group other than root's or ours counts) must be sticky, so that nobody
  else can replace what is in it; every symbolic link on the way must belong to root or to us;
* opens the file itself with ``O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY`` in the checked
  directory: a symbolic link at the file's own name is always refused;
* checks the opened file (``fstat``): a regular file, owned by root or us, one link only;
* creates what is missing with the mode asked for (files 0600, directories 0700 by default),
  set with ``fchmod`` so the umask does not change it; an existing file is given that mode too.

Everything refused raises :class:`~syswarden.core.errors.UnsafePathError` naming the path, what
is wrong and what to do; other failures (no such directory, disk full) stay ``OSError``.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from typing import Any

from .config import Key
from .errors import ConfigError, Location, UnsafePathError

FILE_MODE = 0o600
DIR_MODE = 0o700
#: the widest mode a file of alerts may have: nobody but its owner may write it
WIDEST_FILE_MODE = 0o644
MAX_SYMLINKS = 40  # as the kernel's path walk

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_HINT_PLACE = "use a path in a directory only root can write, e.g. /var/log/syswarden"


# -- modes in the config ---------------------------------------------------------------------------

def parse_mode(value: Any) -> int:
    """A file mode from the config: ``0600`` (YAML reads it as octal), ``"0600"``, ``"0o600"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if text and all(c in "01234567" for c in text):
            return int(text, 8)
    raise ValueError(f"not a file mode: {value!r}")


def mode_problem(value: Any) -> str | None:
    """What is wrong with a configured file mode, or None (a config :class:`Key` ``check``)."""
    try:
        mode = parse_mode(value)
    except ValueError:
        mode = -1
    if 0 <= mode and not mode & ~WIDEST_FILE_MODE:
        return None
    octal = f" ({value:#o} in octal)" if isinstance(value, int) and mode >= 0 else ""
    return (f"must be an octal file mode such as 0600 or 0640, at most 0644: nobody but the "
            f"owner may write, no execute or special bits{octal}")


def mode_key(doc: str) -> Key:
    """The config key of a file's mode (default 0600), validated by :func:`mode_problem`."""
    return Key((str, int), f"{FILE_MODE:04o}", f"{doc} (octal, at most {WIDEST_FILE_MODE:04o})",
               check=mode_problem)


def configured_mode(value: Any, key: str) -> int:
    """A configured mode (None: 0600); a bad one is a :class:`ConfigError` naming ``key``."""
    if value is None:
        return FILE_MODE
    if problem := mode_problem(value):
        raise ConfigError(f"{key} {problem}, not {value!r}")
    return parse_mode(value)


def dir_mode_for(mode: int) -> int:
    """The mode of a directory created to hold files of ``mode``: search where they are read."""
    return mode | ((mode & 0o444) >> 2)


# -- opening ------------------------------------------------------------------------------------

def open_file(path: str, mode: int = FILE_MODE, *, truncate: bool = False, create: bool = True,
              make_dirs: bool = False, dir_mode: int = DIR_MODE, private_dir: bool = False) -> int:
    """Open ``path`` for writing (appending unless ``truncate``); a file descriptor.

    ``create``: create the file if missing (else ``FileNotFoundError``).  ``make_dirs``: create
    missing directories with ``dir_mode``.  The file gets ``mode``.  ``private_dir``: refuse a
    file's directory others can write even if sticky (for a file that another program, such as
    SQLite, creates more files beside by their names).
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    dfd = _open_dir(parent, dir_mode if make_dirs else None)
    try:
        if private_dir and _others_write(os.fstat(dfd)):
            _refuse_entry(dfd, name, path)         # a planted link or FIFO: say that first
            raise _refused(parent, "the directory is writable by others: files created beside "
                           "this one by name could be planted first", f"chmod go-w {parent}, or "
                           f"{_HINT_PLACE}")
        fd = _open_in(dfd, name, path, mode, truncate, create)
    finally:
        os.close(dfd)
    try:
        st = _check_file(fd, path)
        os.set_blocking(fd, True)
        if truncate:
            os.ftruncate(fd, 0)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: str) -> int:
    """Open ``path`` for reading what only root (or we) could have written there: its
    directories are checked as for writing, and neither its own directory nor the file may be
    writable by others (not even a sticky directory: another user's file planted first would be
    read).  A file descriptor; ``FileNotFoundError`` when it is missing."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    dfd = _open_dir(parent, None)
    try:
        if _others_write(os.fstat(dfd)):
            raise _refused(parent, "the directory is writable by others: what is read here "
                           "could be theirs", f"chmod go-w {parent}, or {_HINT_PLACE}")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                         | os.O_NOCTTY, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _refuse_entry(dfd, name, path)
            raise
    finally:
        os.close(dfd)
    try:
        if _others_write(_check_file(fd, path)):
            raise _refused(path, "the file is writable by others", f"chmod go-w {path}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dirs(path: str, mode: int = DIR_MODE) -> None:
    """Create the directory ``path`` and missing parents with ``mode``, checking every step."""
    os.close(_open_dir(os.path.abspath(path), mode))


def _open_dir(path: str, create_mode: int | None) -> int:
    """The directory at absolute ``path``: every directory and symbolic link on the way checked."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        _check_dir(fd, "/")
        todo = [p for p in reversed(path.split("/")) if p]
        where = "/"
        links = 0
        while todo:
            name = todo.pop()
            step = os.path.normpath(os.path.join(where, name))
            if name == ".":
                continue
            created = False
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                try:
                    os.mkdir(name, create_mode, dir_fd=fd)
                    created = True
                except FileExistsError:
                    pass
            else:
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    target = _follow(fd, name, step, st, links)
                    if target.startswith("/"):
                        os.close(fd)
                        fd = os.open("/", _DIR_FLAGS)
                        where = "/"
                    todo.extend(p for p in reversed(target.split("/")) if p)
                    continue
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:       # replaced by a link since the stat above
                    raise _refused(step, "a symbolic link appeared here while it was checked",
                                   _HINT_PLACE) from None
                raise
            os.close(fd)
            fd = nfd
            where = step
            _check_dir(fd, where)
            if created:
                os.fchmod(fd, create_mode)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _follow(dfd: int, name: str, step: str, st: os.stat_result, links: int) -> str:
    """The target of the symbolic link ``name``, if a link root may follow."""
    if st.st_uid not in _trusted_uids():
        raise _refused(step, f"is a symbolic link owned by {_who(st.st_uid)}: that user chooses "
                       "where root's writes go", f"remove it (find out who planted it), or "
                       f"{_HINT_PLACE}")
    if links > MAX_SYMLINKS:
        raise _refused(step, f"more than {MAX_SYMLINKS} symbolic links on the way",
                       "point the path at the directory itself")
    return os.readlink(name, dir_fd=dfd)


def _open_in(dfd: int, name: str, path: str, mode: int, truncate: bool, create: bool) -> int:
    flags = _FILE_FLAGS | (0 if truncate else os.O_APPEND)
    for _ in range(3):
        try:
            return os.open(name, flags, dir_fd=dfd)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
                _refuse_entry(dfd, name, path)
            raise
        try:
            return os.open(name, flags | os.O_CREAT | os.O_EXCL, mode, dir_fd=dfd)
        except FileExistsError:
            continue                    # created meanwhile: opened and checked as existing
    raise _refused(path, "keeps appearing and disappearing while it is opened", _HINT_PLACE)


def _refuse_entry(dfd: int, name: str, path: str) -> None:
    """Raise the refusal that fits what is at ``name`` (a link, a FIFO...) if it is not a file."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _refused(path, f"is a symbolic link (owned by {_who(st.st_uid)}, to "
                       f"{os.readlink(name, dir_fd=dfd)!r}): root never writes through one here",
                       f"remove it (find out who planted it), or {_HINT_PLACE}; point the "
                       "config at the real file if the link is yours")
    if not stat.S_ISREG(st.st_mode):
        raise _refused(path, f"is {_kind(st.st_mode)}, not a regular file",
                       "remove it (find out who made it), or choose another path")


def _check_file(fd: int, path: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise _refused(path, f"is {_kind(st.st_mode)}, not a regular file",
                       "remove it (find out who made it), or choose another path")
    if st.st_uid not in _trusted_uids():
        raise _refused(path, f"belongs to {_who(st.st_uid)}, not to root",
                       f"remove it (find out who created it), or {_HINT_PLACE}")
    if st.st_nlink > 1:
        raise _refused(path, f"has {st.st_nlink} hard links: another name of this file may "
                       "be someone else's file", f"remove this name, or {_HINT_PLACE}")
    return st


def _check_dir(fd: int, where: str) -> None:
    st = os.fstat(fd)
    if st.st_uid not in _trusted_uids():
        raise _refused(where, f"the directory belongs to {_who(st.st_uid)}, who can replace "
                       "anything in it", f"chown root {where}, or {_HINT_PLACE}")
    if _others_write(st) and not st.st_mode & stat.S_ISVTX:
        raise _refused(where, "the directory is writable by others and not sticky: anyone can "
                       "replace what is in it", f"chmod go-w {where}, or {_HINT_PLACE}")


def _others_write(st: os.stat_result) -> bool:
    """Writable by a user other than root or us (a group other than root's or ours)."""
    return bool(st.st_mode & stat.S_IWOTH or (
        st.st_mode & stat.S_IWGRP and st.st_gid not in (0, os.getegid())))


# -- messages -----------------------------------------------------------------------------------

def _refused(path: str, what: str, hint: str) -> UnsafePathError:
    return UnsafePathError(f"refusing to write here: {what}", Location(path), hint=hint)


def _trusted_uids() -> tuple[int, int]:
    return 0, os.geteuid()


def _who(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return kind
    return "not a regular file"
