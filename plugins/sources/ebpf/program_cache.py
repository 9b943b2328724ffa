"""Where compiled programs are kept between starts (``ebpf.program_cache``), and when one may
be used.

A kept program (:mod:`.compiled`) is found by a key: the digest of everything the compile
depends on, i.e. the program's text (which holds the kernel's layouts and the rules'
prefilters), the hooks and the type of program each function is loaded as, the kernel
(release and build) and bcc (its version).  Another text, kernel or bcc is another key, so a
kept program is never used for another one: nothing is invalidated, a change only misses.

The directory is root's: the agent loads into the kernel what it reads there.  It is created
0700; it, every directory above it and each file are checked as :mod:`syswarden.core.safe_files`
checks the paths root writes to (no link planted on the way, no directory another user can
write), and a file another user could have written is refused (logged, then compiled).  The
agent opens the files; the loader helper reads and writes them through the descriptors it is
handed.  A new program is written to a file of its own and renamed into place once complete;
the :data:`KEEP` most recently written are kept, older ones removed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass

from syswarden.core import safe_files
from syswarden.core.errors import UnsafePathError

from . import compiled

log = logging.getLogger("syswarden.ebpf")

#: Kept programs at most: a rules change makes another program (a reload, a rules edit).
KEEP = 8
SUFFIX = ".bpf.json"


@dataclass
class NewEntry:
    """A file being written for ``key``: renamed into place by :meth:`ProgramCache.commit`."""
    key: str
    fd: int
    path: str


class ProgramCache:
    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)

    def key(self, text: str, hooks: list[tuple[str, str]]) -> str:
        uname = os.uname()
        ident = [compiled.FORMAT, text, [list(h) for h in hooks], uname.release,
                 uname.version, uname.machine, _bcc_version()]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key + SUFFIX)

    def open_kept(self, key: str) -> int | None:
        """The kept program's file, open for reading, or None (not kept, or refused: logged)."""
        try:
            return safe_files.open_private(self.path(key))
        except FileNotFoundError:
            return None
        except (UnsafePathError, OSError) as exc:
            log.warning("ebpf: a kept program is not used, the program is compiled: %s", exc)
            return None

    def open_new(self, key: str) -> NewEntry | None:
        """A file to write the program compiled now in, or None (the directory cannot hold
        it: logged, nothing is kept)."""
        tmp = os.path.join(self.directory, f".{key}.{os.getpid()}.tmp")
        try:
            fd = safe_files.open_file(tmp, 0o600, truncate=True, make_dirs=True,
                                      private_dir=True)
        except (UnsafePathError, OSError) as exc:
            log.warning("ebpf: the compiled program cannot be kept (ebpf.program_cache): %s",
                        exc)
            return None
        return NewEntry(key, fd, tmp)

    def commit(self, entry: NewEntry, written: bool) -> None:
        """Put a written program in place (else remove the file), then remove the oldest
        beyond :data:`KEEP`."""
        os.close(entry.fd)
        try:
            if written:
                os.replace(entry.path, self.path(entry.key))
            else:
                os.unlink(entry.path)
        except OSError as exc:
            log.warning("ebpf: the compiled program was not kept: %s", exc)
            return
        self._prune()

    def forget(self, key: str) -> None:
        """Remove a kept program the kernel refused (it is compiled again next time)."""
        try:
            os.unlink(self.path(key))
        except OSError:
            pass

    def _prune(self) -> None:
        """Keep the :data:`KEEP` newest programs; remove files an agent that died while
        writing left (an hour old)."""
        try:
            files = [(e, e.stat(follow_symlinks=False).st_mtime)
                     for e in os.scandir(self.directory) if e.is_file(follow_symlinks=False)]
            kept = sorted((f for f in files if f[0].name.endswith(SUFFIX)),
                          key=lambda f: f[1], reverse=True)
            stale = [f for f in files if f[0].name.endswith(".tmp")
                     and f[1] < time.time() - 3600]
            for entry, _mtime in kept[KEEP:] + stale:
                os.unlink(entry.path)
        except OSError as exc:
            log.debug("ebpf: kept programs not pruned: %s", exc)


def _bcc_version() -> str:
    """bcc's version, read without importing it (the agent never imports bcc)."""
    spec = importlib.util.find_spec("bcc")
    if spec is None or not spec.origin:
        return ""
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "version.py")) as f:
            return f.read(200)
    except OSError:
        return spec.origin
