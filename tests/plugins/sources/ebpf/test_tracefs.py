"""The sched tracepoints' layouts, read from the kernel's format files."""

from __future__ import annotations

import os

import pytest

from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf import tracefs

#: sched_process_fork's format on Debian 12's kernel (6.1): the comms inline.
FORK_6_1 = """name: sched_process_fork
ID: 315
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;

print fmt: "comm=%s pid=%d child_comm=%s child_pid=%d", REC->parent_comm, ...
"""


def test_inline_and_data_loc_fields_are_both_read():
    got = tracefs.fields_of(FORK_6_1)
    assert got["child_pid"] == 44 and got["parent_comm"] == 8 and got["child_comm"] == 28
    later = FORK_6_1.replace("char parent_comm[16];\toffset:8;\tsize:16",
                             "__data_loc char[] parent_comm;\toffset:8;\tsize:4")
    assert tracefs.fields_of(later)["parent_comm"] == 8


def test_the_offsets_are_rendered_and_a_missing_field_is_left_undefined(tmp_path):
    for event, text in (("sched_process_fork", FORK_6_1),
                        ("sched_process_exec", "\tfield:__data_loc char[] filename;\toffset:8;"
                         "\tsize:4;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\n"
                         "\tfield:pid_t old_pid;\toffset:16;\tsize:4;\n"),
                        ("sched_process_exit", "\tfield:char comm[16];\toffset:8;\tsize:16;\n"
                         "\tfield:pid_t pid;\toffset:24;\tsize:4;\n")):
        os.makedirs(tmp_path / "events" / "sched" / event)
        (tmp_path / "events" / "sched" / event / "format").write_text(text)
    got = tracefs.offsets(str(tmp_path))
    assert got == {"TP_FORK_CHILD_PID": 44, "TP_EXEC_FILENAME": 8, "TP_EXEC_OLD_PID": 16}
    text = P.render_program(set(), {"tp": got})
    assert "#define TP_FORK_CHILD_PID 44" in text
    assert "#define TP_EXIT_GROUP_DEAD" not in text     # the program counts live threads
    assert tracefs.offsets(str(tmp_path / "nothing")) is None
    assert "#define TP_FORK_CHILD_PID 20" in P.render_program(set(), {"tp": None})


@pytest.mark.skipif(not os.path.exists(f"{tracefs.TRACEFS}/events/sched"), reason="no tracefs")
def test_the_running_kernel_has_every_field_but_perhaps_group_dead():
    got = tracefs.offsets()
    assert got is not None
    assert {"TP_FORK_CHILD_PID", "TP_EXEC_FILENAME", "TP_EXEC_OLD_PID"} <= set(got)
