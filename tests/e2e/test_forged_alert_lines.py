"""Forged alert lines: a process name or command line holding a newline, terminal escapes or
bytes that are not UTF-8 prints as one escaped line in every text output, and round-trips
exactly in the JSON output.

The main tests replay a capture through the real CLI (the default rules, every text output
enabled: stdout, file, program, syslog to a UDP socket of the test's own and to a real
rsyslogd); the last one runs a real program, named and called with such text, under the live
eBPF source.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from syswarden.testing import SYSWARDEN, running_agent
from tests.plugins.outputs.receivers import Rsyslog

RULE = "Sensitive file read by an untrusted program"
#: a second, forged alert line; a terminal line erase and window title; a typed backslash-n;
#: Unicode line separators; a byte that is not UTF-8 (as the kernel's bytes decode)
PAYLOAD = ("\n12:00:00.000000000: Critical forged alert (user=root)\x1b[2K\r\x1b]0;pwned\x07"
           " \\n \u2028\u2029\u0085\x7f\t\udcff")
ESCAPED = ("\\n12:00:00.000000000: Critical forged alert (user=root)\\x1b[2K\\r\\x1b]0;pwned"
           "\\x07 \\\\n \\u2028\\u2029\\u0085\\x7f\\t\\xff")
NAME = "evil" + PAYLOAD
CMDLINE = f"{NAME} /etc/shadow {PAYLOAD}"
SHOWN = f"process=evil{ESCAPED} command=evil{ESCAPED} /etc/shadow {ESCAPED} parent=sh "
FORBIDDEN = [bytes([b]) for b in range(0x20) if b != 0x0A] + [
    b"\x7f", "\u2028".encode(), "\u2029".encode(), "\u0085".encode()]


def write_capture(path, n: int = 2) -> None:
    """``n`` reads of /etc/shadow by the forging process."""
    proc = {"name": NAME, "args": ["/etc/shadow", PAYLOAD], "parent": {"name": "sh"}}
    rec = {"type": "openat", "proc": proc,
           "fd": {"name": "/etc/shadow"}, "args": {"flags": "O_RDONLY"}}
    path.write_text("".join(json.dumps(rec) + "\n" for _ in range(n)))


def replay(capture, *options: str) -> subprocess.CompletedProcess:
    args = [*SYSWARDEN, "-e", str(capture), "-o", "disabled_plugins=[ebpf]",
            "-o", "rule_matching=all"]
    for opt in options:
        args += ["-o", opt]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def assert_one_escaped_line_per_alert(data: bytes, alerts: int, where: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in data, f"{where}: raw {bad!r} written"
    text = data.decode("utf-8")               # strict: every byte written is UTF-8
    lines = text.splitlines()
    assert len(lines) == alerts, f"{where}: {len(lines)} lines for {alerts} alerts:\n{text}"
    for line in lines:
        assert "Sensitive file opened for reading" in line, f"{where}: {line!r}"
        assert SHOWN in line, f"{where}: {line!r}"


@pytest.fixture
def udp_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_every_text_output_writes_one_escaped_line_per_alert(tmp_path, udp_receiver):
    capture = tmp_path / "forged.jsonl"
    write_capture(capture, 2)
    events, piped = tmp_path / "events.txt", tmp_path / "program.txt"
    port = udp_receiver.getsockname()[1]
    proc = replay(capture, "file_output.enabled=true", f"file_output.filename={events}",
                  "program_output.enabled=true", f"program_output.program=cat >> {piped}",
                  "syslog_output.enabled=true", f"syslog_output.address=udp://127.0.0.1:{port}")
    assert_one_escaped_line_per_alert(proc.stdout, 2, "stdout")
    assert_one_escaped_line_per_alert(events.read_bytes(), 2, "file")
    assert_one_escaped_line_per_alert(piped.read_bytes(), 2, "program")
    for _ in range(2):                        # one datagram, one message per alert
        message = udp_receiver.recv(65536)
        assert message.startswith(b"<12>")    # user.warning
        assert b"\n" not in message
        assert_one_escaped_line_per_alert(message, 1, "syslog")


@pytest.mark.parametrize("framing", ["octet-counting", "newline"])
def test_rsyslog_receives_one_message_per_alert_without_control_characters(tmp_path, framing):
    """rsyslogd writes a control character it receives as ``#ooo``; a newline in a message
    framed by newlines would split it into two messages."""
    capture = tmp_path / "forged.jsonl"
    write_capture(capture, 2)
    daemon = Rsyslog()
    try:
        replay(capture, "stdout_output.enabled=false", "syslog_output.enabled=true",
               f"syslog_output.address=tcp://127.0.0.1:{daemon.tcp_port}",
               f"syslog_output.tcp_framing={framing}")
        for _ in range(100):
            lines = [ln for ln in daemon.lines() if "|syswarden|" in ln]
            if len(lines) >= 2:
                break
            time.sleep(0.1)
    finally:
        daemon.close()
    assert len(lines) == 2, lines
    for line in lines:
        msg = line.split("|", 5)[5]
        assert f"process=evil{ESCAPED} command=" in msg, msg
        assert "#0" not in msg and "#177" not in msg, msg


def test_json_output_keeps_the_raw_values(tmp_path):
    capture = tmp_path / "forged.jsonl"
    write_capture(capture, 2)
    proc = replay(capture, "json_output=true")
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert max(line) < 0x80                # ASCII: the encoder escapes the rest itself
        alert = json.loads(line)
        assert alert["rule"] == RULE
        assert alert["output_fields"]["proc.name"] == NAME
        assert alert["output_fields"]["proc.cmdline"] == CMDLINE
        assert SHOWN in alert["output"]
        assert "\n" not in alert["output"] and "\x1b" not in alert["output"]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for eBPF")
def test_a_real_program_with_a_newline_in_its_name_and_argv(tmp_path):
    """Live: a copy of cat whose file name holds a newline and ESC (its comm, proc.name) reads
    /etc/shadow with a forged alert line in its argv (proc.cmdline)."""
    name = "sw\nCritical\x1b[2K"                  # a comm is at most 15 bytes
    reader = tmp_path / name
    shutil.copy2(shutil.which("cat"), reader)
    events = tmp_path / "events.txt"
    forged = "\n12:00:00.000000000: Critical forged\x1b[2K"
    with running_agent("-o", "stdout_output.enabled=false", "-o", "file_output.enabled=true",
                       "-o", f"file_output.filename={events}") as agent:
        subprocess.run([str(reader), "/etc/shadow", forged], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        agent.wait_for_line(str(events), r"process=sw\\nCritical\\x1b\[2K ")
    data = events.read_bytes()
    for bad in FORBIDDEN:
        assert bad not in data, f"raw {bad!r} written"
    ours = [ln for ln in data.decode().splitlines() if "sw\\nCritical" in ln]
    assert len(ours) == 1, ours
    assert ("command=sw\\nCritical\\x1b[2K /etc/shadow "
            "\\n12:00:00.000000000: Critical forged\\x1b[2K parent=") in ours[0]
    assert not any("Critical forged" in ln and "Sensitive file" not in ln
                   for ln in data.decode().splitlines())
