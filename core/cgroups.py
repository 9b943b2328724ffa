"""Where the cgroup v2 hierarchy is: shared by the process table (a process's cgroup id) and the
container enricher (a cgroup id's path).  On a hybrid host it is ``/sys/fs/cgroup/unified``.
"""

from __future__ import annotations

import functools


def find_cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the unified (v2) hierarchy is mounted: ``/sys/fs/cgroup`` or, on a hybrid host,
    ``/sys/fs/cgroup/unified``; None when it is not mounted."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    fields = left.split()
                    if len(fields) > 4 and fields[3] == "/":
                        return fields[4].replace("\\040", " ")
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=1)
def cgroup2_root() -> str | None:
    """:func:`find_cgroup2_mount` of this process, read once."""
    return find_cgroup2_mount()
