"""The syslog output against a real rsyslogd: unix socket, UDP, TCP; RFC 3164 and 5424."""

from __future__ import annotations

import socket

import pytest
import trio

from syswarden.core.alert import Priority
from syswarden.core.errors import ConfigError
from syswarden.plugins.outputs.syslog import SyslogOutput, parse_address
from syswarden.testing import base_config, make_alert


async def _send_and_read(rsyslog, drive, metrics, section, alerts):
    out = SyslogOutput(base_config(), section, metrics)
    driven = await drive(out)
    driven.offer(alerts)
    await driven.stop()
    marks = {f"seq={a.output_fields['seq']} " for a in alerts}
    with trio.fail_after(10):
        while True:
            got = [ln for ln in rsyslog.lines() if any(m in ln for m in marks)]
            if len(got) >= len(alerts):
                return got
            await trio.sleep(0.05)


@pytest.mark.parametrize("transport", ["unix", "udp", "tcp"])
@pytest.mark.parametrize("fmt", ["rfc3164", "rfc5424"])
async def test_every_alert_reaches_rsyslog(rsyslog, drive, metrics, transport, fmt):
    unix = rsyslog.socket5424 if fmt == "rfc5424" else rsyslog.socket
    address = {"unix": unix, "udp": f"udp://127.0.0.1:{rsyslog.udp_port}",
               "tcp": f"tcp://127.0.0.1:{rsyslog.tcp_port}"}[transport]
    alerts = [make_alert(priority=p) for p in (Priority.CRITICAL, Priority.WARNING,
                                               Priority.NOTICE, Priority.DEBUG)]
    got = await _send_and_read(rsyslog, drive, metrics,
                               {"address": address, "format": fmt, "facility": "local3"}, alerts)
    by_seq = {}
    for line in got:
        facility, severity, program, host, version, msg = line.split("|", 5)
        by_seq[msg.split("seq=")[1].split(" ")[0]] = (facility, severity, program, host, version,
                                                      msg)
    for alert in alerts:
        facility, severity, program, host, version, msg = by_seq[str(alert.output_fields["seq"])]
        assert facility == "local3" and host == socket.gethostname()
        assert severity == {Priority.CRITICAL: "crit", Priority.WARNING: "warning",
                            Priority.NOTICE: "notice", Priority.DEBUG: "debug"}[alert.priority]
        assert program == "syswarden"
        assert version == ("1" if fmt == "rfc5424" else "0")
        assert f"{alert.priority.label} {alert.output}" in msg
    assert metrics.get("outputs.syslog.sent") == len(alerts)


async def test_json_body_over_tcp(rsyslog, drive, metrics):
    alert = make_alert()
    got = await _send_and_read(rsyslog, drive, metrics,
                               {"address": f"tcp://127.0.0.1:{rsyslog.tcp_port}",
                                "json_output": True}, [alert])
    assert f'"uuid": "{alert.uuid}"' in got[0]


async def test_dead_socket_counted(tmp_path, drive, metrics):
    out = SyslogOutput(base_config(), {"address": str(tmp_path / "nobody.sock")}, metrics)
    driven = await drive(out)
    driven.offer([make_alert() for _ in range(3)])
    await driven.stop()
    assert metrics.get("outputs.syslog.failed") == 3


def test_addresses():
    assert parse_address("") == ("unix", "/dev/log")
    assert parse_address("/run/x.sock") == ("unix", "/run/x.sock")
    assert parse_address("unix:///run/x.sock") == ("unix", "/run/x.sock")
    assert parse_address("udp://10.0.0.1:514") == ("udp", ("10.0.0.1", 514))
    with pytest.raises(ConfigError, match="scheme"):
        parse_address("http://x:1")
    with pytest.raises(ConfigError, match="host:port"):
        parse_address("tcp://x")
