"""The agent's own log: stderr, syslog when a socket exists, one warning when none does."""

from __future__ import annotations

import logging
import socket

from syswarden.core import log as swlog


def test_no_syslog_socket_gives_one_warning_and_logging_goes_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(swlog, "SYSLOG_SOCKETS", (str(tmp_path / "no-such-socket"),))
    swlog.setup_logging("info", stderr=True, syslog=True)
    logging.getLogger("syswarden.test").info("still logging")
    err = capsys.readouterr().err
    assert err.count("log_syslog: no syslog socket") == 1
    assert "still logging" in err


def test_log_lines_reach_a_real_syslog_socket(monkeypatch, tmp_path):
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        monkeypatch.setattr(swlog, "SYSLOG_SOCKETS", (path,))
        swlog.setup_logging("debug", stderr=False, syslog=True)
        logging.getLogger("syswarden.test").warning("hello syslog")
        data = server.recv(4096).decode()
    finally:
        server.close()
        swlog.setup_logging("info")
    assert "syswarden[" in data and "hello syslog" in data
    assert data.startswith("<12>")  # facility user (1) * 8 + severity warning (4)


def test_level_names_are_falcos():
    swlog.setup_logging("notice", stderr=False)
    assert logging.getLogger("syswarden").level == logging.INFO
    swlog.setup_logging("error", stderr=False)
    assert logging.getLogger("syswarden").level == logging.ERROR
    swlog.setup_logging("info")
