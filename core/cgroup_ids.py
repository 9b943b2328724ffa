"""Kernel cgroup ids -> their path and the container they name (every runtime: see
:mod:`syswarden.core.cgroups`).  The container enricher asks for the container, the process
table for the path (``thread.cgroups`` of a process gone before /proc could be read).

The eBPF source hands over, with every event, the kernel cgroup id of the task
(``bpf_get_current_cgroup_id``): on the unified (v2) hierarchy that id *is* the inode number of
the cgroup's directory, and the kernel opens a directory from it (``open_by_handle_at`` with a
kernfs handle).  :class:`CgroupResolver` turns an id into a path that way, with a walk of the
hierarchy as the fallback, and caches the answer: a process that lived a millisecond still gets
its container from state the kernel handed over, never from a late ``/proc`` read.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
import time
from collections import OrderedDict

from .cgroups import HOST_REF, ContainerRef, find_cgroup2_mount, parse_cgroup_path

log = logging.getLogger("syswarden.container")

# -- kernel cgroup id -> path -----------------------------------------------------------------

_FILEID_KERNFS = 0xFE


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 8)]


def _load_open_by_handle():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.open_by_handle_at
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_FileHandle), ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class CgroupResolver:
    """Kernel cgroup id -> cgroup path -> :class:`ContainerRef`, cached.

    ``resolve(cgroup_id)`` answers from the cache; on a miss it asks the kernel for the
    directory of that id (one ``open_by_handle_at``, needs CAP_DAC_READ_SEARCH), falling back
    to a walk of the v2 hierarchy (at most once per ``walk_interval`` seconds; a walk maps every
    cgroup that exists, so the ids of containers started since are found together).  An id the
    kernel no longer knows (the cgroup is gone) resolves to None and is remembered as unknown
    for ``negative_ttl`` seconds.
    """

    def __init__(self, root: str | None = None, max_entries: int = 65536,
                 walk_interval: float = 1.0, negative_ttl: float = 5.0) -> None:
        self.root = root if root is not None else find_cgroup2_mount()
        self.max_entries = max_entries
        self.walk_interval = walk_interval
        self.negative_ttl = negative_ttl
        self._refs: OrderedDict[int, ContainerRef] = OrderedDict()
        self._paths: dict[int, str] = {}
        self._unknown: dict[int, float] = {}
        self._last_walk = -1e9
        self._root_fd: int | None = None
        self._open_by_handle = _load_open_by_handle()
        self.lookups = 0     # misses resolved through the kernel or a walk
        self.walks = 0

    def close(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    # -- public ---------------------------------------------------------------------------

    def resolve(self, cgroup_id: int) -> ContainerRef | None:
        """The container of a cgroup id (HOST_REF for the host), or None when unknown."""
        ref = self._refs.get(cgroup_id)
        if ref is not None:
            return ref
        if not cgroup_id or self.root is None:
            return None
        seen = self._unknown.get(cgroup_id)
        if seen is not None and time.monotonic() - seen < self.negative_ttl:
            return None
        path = self.path_of(cgroup_id)
        if path is None:
            self._unknown[cgroup_id] = time.monotonic()
            if len(self._unknown) > self.max_entries:
                self._unknown.clear()
            return None
        self._unknown.pop(cgroup_id, None)
        ref = parse_cgroup_path(path) or HOST_REF
        self._remember(cgroup_id, ref)
        return ref

    def path_of(self, cgroup_id: int) -> str | None:
        """The path (relative to the hierarchy's root, ``/`` first) of a cgroup id."""
        path = self._paths.get(cgroup_id)
        if path is not None:
            return path
        self.lookups += 1
        path = self._open_by_id(cgroup_id)
        if path is None and time.monotonic() - self._last_walk >= self.walk_interval:
            self.walk()
            path = self._paths.get(cgroup_id)
        if path is not None:
            self._paths[cgroup_id] = path
            if len(self._paths) > self.max_entries:
                self._paths.clear()
        return path

    def walk(self) -> int:
        """Map every cgroup directory of the hierarchy by inode; return how many were seen."""
        self._last_walk = time.monotonic()
        self.walks += 1
        if self.root is None:
            return 0
        count = 0
        root = self.root.rstrip("/") or "/"
        for dirpath, _dirs, _files in os.walk(root):
            try:
                ino = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = dirpath[len(root):] or "/"
            self._paths[ino] = rel
            count += 1
        return count

    def paths(self) -> dict[int, str]:
        """Every cgroup id -> path known so far (a :meth:`walk` maps them all)."""
        return dict(self._paths)

    def id_of(self, path: str) -> int:
        """The kernel cgroup id of a cgroup path (relative to the v2 root): its inode number."""
        if self.root is None:
            raise FileNotFoundError("no cgroup v2 hierarchy is mounted")
        return os.stat(self.root.rstrip("/") + "/" + path.lstrip("/")).st_ino

    # -- internals ------------------------------------------------------------------------

    def _remember(self, cgroup_id: int, ref: ContainerRef) -> None:
        self._refs[cgroup_id] = ref
        if len(self._refs) > self.max_entries:
            self._refs.popitem(last=False)

    def _open_by_id(self, cgroup_id: int) -> str | None:
        fn = self._open_by_handle
        if fn is None or self.root is None:
            return None
        if self._root_fd is None:
            try:
                self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                self._open_by_handle = None
                return None
        handle = _FileHandle(8, _FILEID_KERNFS,
                             (ctypes.c_ubyte * 8)(*struct.pack("<Q", cgroup_id)))
        fd = fn(self._root_fd, ctypes.byref(handle), os.O_RDONLY | os.O_DIRECTORY)
        if fd < 0:
            err = ctypes.get_errno()
            if err in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                log.debug("open_by_handle_at unavailable (%s); walking %s instead",
                          os.strerror(err), self.root)
                self._open_by_handle = None
            return None
        try:
            full = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        finally:
            os.close(fd)
        root = self.root.rstrip("/")
        if full == root:
            return "/"
        if full.startswith(root + "/"):
            return full[len(root):]
        return None
