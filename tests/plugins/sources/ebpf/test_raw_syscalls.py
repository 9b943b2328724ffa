"""Syscalls without their own tracepoint (init_module, finit_module: this kernel has no module
support) are followed by default through raw tracepoint programs on sys_enter/sys_exit, so
Falco's "Linux Kernel Module Injection Detected" fires on an attempt, with Falco's rules as they
are, as it does under Falco (which sees every syscall through raw_syscalls)."""

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
