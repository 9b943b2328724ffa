"""Syscalls without their own tracepoint (init_module, finit_module: this kernel has no module
support) are followed, with ``ebpf.raw_fallback`` on (off by default: a program every syscall
runs), through raw tracepoint programs on sys_enter/sys_exit, so Falco's "Linux Kernel Module
Injection Detected" fires on an attempt, with Falco's rules as they are, as it does under Falco
(which sees every syscall through raw_syscalls)."""

from __future__ import annotations

import json
import os
import time

import pytest

from syswarden.testing import running_agent
from tests.helpers.docker import containers, docker, docker_images, dockerd  # noqa: F401
from tests.helpers.ebpf import needs_root
from tests.helpers.paths import COMPAT

pytestmark = [needs_root, pytest.mark.root, pytest.mark.docker]

RULE = "Linux Kernel Module Injection Detected"


@pytest.mark.skipif(os.path.isdir("/sys/kernel/tracing/events/syscalls/sys_exit_init_module"),
                    reason="this kernel has init_module's own tracepoint")
def test_kernel_module_injection_fires_on_an_init_module_attempt(tmp_path, containers):  # noqa: F811
    box = containers.run("alpine:latest", "sleep", "60", extra=("--cap-add", "SYS_MODULE"))
    alerts = tmp_path / "alerts.json"
    with running_agent("-r", str(COMPAT / "falco-rules" / "falco_rules.yaml"),
                       "-o", "ebpf.raw_fallback=true",
                       "-o", "json_output=true", "-o", "file_output.enabled=true",
                       "-o", f"file_output.filename={alerts}",
                       "-o", "stdout_output.enabled=false"):
        # busybox's insmod tries finit_module(2), then, refused here (ENOSYS), reads the file
        # and tries init_module(2)
        docker("exec", box.id, "busybox", "insmod", "/bin/busybox", check=False)
        deadline = time.monotonic() + 20
        got: dict[str, dict] = {}
        while time.monotonic() < deadline and len(got) < 2:
            time.sleep(0.3)
            lines = alerts.read_text().splitlines() if alerts.exists() else []
            got = {a["output_fields"]["evt.type"]: a["output_fields"]
                   for a in map(json.loads, lines) if a["rule"] == RULE}
    assert set(got) == {"finit_module", "init_module"}, got
    for fields in got.values():
        assert fields["evt.res"] == "ENOSYS" and fields["proc.name"] == "busybox"
        assert fields["user.name"] == "root" and fields["proc.args"] == "insmod /bin/busybox"


# -- the two raw paths, read from the kernel directly ------------------------------------------

def test_a_syscall_the_kernel_is_built_without_costs_no_exit_program():
    """Built without it (``not_built``), the kernel's entry is sys_ni_syscall: the result is
    -ENOSYS, so the enter program sends the record and no program runs at every syscall's
    exit; a syscall merely without a tracepoint keeps the exit program."""
    from syswarden.plugins.sources.ebpf import program as P
    cfg = {"attach": "tracepoint", "args_from": "regs", "raw_fallback": True,
           "no_tracepoint": ["finit_module"]}
    stub = dict(P.tracepoints({"openat", "finit_module"}, {**cfg, "not_built": ["finit_module"]}))
    assert stub["raw_tp:sys_enter"] == "sw_raw_enter" and "raw_tp:sys_exit" not in stub
    text = P.render_program({"openat", "finit_module"}, {**cfg, "not_built": ["finit_module"]})
    body = text[text.index("int sw_raw_enter("):]
    assert "int sw_raw_exit(" not in text
    assert body.index("if (!(nr == NR_FINIT_MODULE))") < body.index("e.ret = -38;") \
        < body.index("return do_exit_finit_module(&e);")
    built = dict(P.tracepoints({"openat", "finit_module"}, {**cfg, "not_built": []}))
    assert built["raw_tp:sys_exit"] == "sw_raw_exit" and "raw_tp:sys_enter" not in built


@pytest.mark.parametrize("path", ["enter", "exit"])
def test_both_raw_paths_send_the_attempt_live(path):
    """finit_module(2) attempted, followed without a tracepoint of its own: from the enter
    program (the kernel is built without it, as this one) or from the exit program (told it
    is built): one event of the caller, its fd argument and -ENOSYS."""
    from syswarden.plugins.sources.ebpf.source import EbpfSource
    from tests.helpers.ebpf import events_of, finit_module_attempt
    if path == "enter" and os.path.exists("/proc/modules"):
        pytest.skip("this kernel is built with module support")
    src = EbpfSource({"attach": "tracepoint", "raw_fallback": True,
                      "no_tracepoint": ["finit_module"],
                      "not_built": ["finit_module"] if path == "enter" else []},
                     {"openat", "finit_module"}, os.getpid())
    pids: list[int] = []

    def attempt() -> None:
        assert ("raw_tp:sys_exit" in src.attached) == (path == "exit")
        pids.append(finit_module_attempt())

    events = events_of(src, attempt)
    got = [e for e in events if e.type == "finit_module" and e.pid == pids[0]]
    assert len(got) == 1 and isinstance(got[0].args["fd"], int)
    if not os.path.exists("/proc/modules"):
        assert got[0].res == -38
    else:
        assert got[0].res < 0


def test_by_default_the_attempts_are_not_followed_and_it_is_said(caplog):
    """``ebpf.raw_fallback`` is off by default: no program runs at every syscall, and the
    start says which needed syscalls are not followed and how to follow them."""
    import logging

    from syswarden.plugins.sources.ebpf.source import EbpfSource
    if os.path.exists("/proc/modules"):
        pytest.skip("this kernel is built with module support")
    src = EbpfSource({}, {"openat", "finit_module"}, os.getpid())
    with caplog.at_level(logging.WARNING, "syswarden.ebpf"):
        src.load()
    try:
        assert not [tp for tp in src.attached if tp.startswith("raw_tp:")]
    finally:
        src.close()
    said = [r.getMessage() for r in caplog.records if "finit_module" in r.getMessage()]
    assert said and "ENOSYS" in said[0] and "ebpf.raw_fallback: true" in said[0]
