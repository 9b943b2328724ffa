"""Where the sched tracepoints the program reads keep their fields, from the kernel's own
format files (``/sys/kernel/tracing/events/sched/*/format``).

Their layouts change between kernels: 6.1's ``sched_process_fork`` carries both comms inline
(``char[16]``: the child's pid at offset 44), later kernels as ``__data_loc`` strings (at 20);
``sched_process_exit`` has ``group_dead`` only from 6.16.  The program reads each field at the
offset rendered from here (:data:`FIELDS` -> ``#define TP_<NAME> offset``); a field the
kernel does not have is not defined, and the program falls back (see ``current_group_dead``).
"""

from __future__ import annotations

import re

TRACEFS = "/sys/kernel/tracing"

#: C macro -> (tracepoint, field) the program reads.
FIELDS = {
    "TP_FORK_CHILD_PID": ("sched/sched_process_fork", "child_pid"),
    "TP_EXEC_FILENAME": ("sched/sched_process_exec", "filename"),
    "TP_EXEC_OLD_PID": ("sched/sched_process_exec", "old_pid"),
    "TP_EXIT_GROUP_DEAD": ("sched/sched_process_exit", "group_dead"),
}

#: The offsets assumed where the format files cannot be read (rendering without a kernel, a
#: tracefs not mounted): 6.16's.
DEFAULT = {"TP_FORK_CHILD_PID": 20, "TP_EXEC_FILENAME": 8, "TP_EXEC_OLD_PID": 16,
           "TP_EXIT_GROUP_DEAD": 32}

_FIELD = re.compile(r"field:[^;]*?(\w+)(\[\d*\])?;\s*offset:(\d+);")


def fields_of(format_text: str) -> dict[str, int]:
    """Field name -> offset, from a tracepoint's format file."""
    return {m.group(1): int(m.group(3)) for m in _FIELD.finditer(format_text)}


def offsets(root: str = TRACEFS) -> dict[str, int] | None:
    """The offsets of :data:`FIELDS` in the running kernel's tracepoints (a field it lacks is
    left out); None if the format files cannot be read (the renderer then assumes
    :data:`DEFAULT`, and the source says so)."""
    out: dict[str, int] = {}
    formats: dict[str, dict[str, int]] = {}
    for macro, (event, name) in FIELDS.items():
        if event not in formats:
            try:
                with open(f"{root}/events/{event}/format") as f:
                    formats[event] = fields_of(f.read())
            except OSError:
                return None
        if name in formats[event]:
            out[macro] = formats[event][name]
    return out
