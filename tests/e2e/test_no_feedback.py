"""No feedback: what a program output runs is never judged, so an output cannot feed itself.

The program output here reads /etc/shadow with an untrusted program, exactly what the alert it
receives is about; were its syscalls judged, every alert would raise another, for ever.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from syswarden.testing import running_agent

pytestmark = [pytest.mark.root]


def test_a_program_output_that_does_what_it_alerts_on_raises_nothing(tmp_path):
    reader = tmp_path / "sw-untrusted-reader"
    shutil.copy2(shutil.which("cat"), reader)
    events = tmp_path / "events.json"
    program = f"cat > /dev/null; {reader} /etc/shadow > /dev/null"
    with running_agent("-o", "json_output=true", "-o", "stdout_output.enabled=false",
                       "-o", "file_output.enabled=true", "-o", f"file_output.filename={events}",
                       "-o", "program_output.enabled=true",
                       "-o", f"program_output.program={program}") as agent:
        subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
        agent.wait_for_line(str(events), r"Sensitive file")
        time.sleep(3)   # time for the program output to run, and for any alert it would raise
    alerts = [line for line in agent.lines(str(events)) if "Sensitive file" in line]
    assert len(alerts) == 1, alerts
    assert "events.from_agent=" in agent.stderr   # the output's own syscalls were seen, skipped
