"""The agent's own log (not alerts): stderr and, optionally, the local syslog.

Levels use Falco's names (emergency ... debug).  When ``log_syslog`` is on and no syslog socket
exists, one warning is written and the agent goes on.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

LEVELS = {
    "emergency": logging.CRITICAL, "alert": logging.CRITICAL, "critical": logging.CRITICAL,
    "error": logging.ERROR, "warning": logging.WARNING, "notice": logging.INFO,
    "info": logging.INFO, "debug": logging.DEBUG,
}
SYSLOG_SOCKETS = ("/dev/log", "/var/run/syslog", "/run/systemd/journal/syslog")

_handlers: list[logging.Handler] = []


def setup_logging(level: str = "info", stderr: bool = True, syslog: bool = False) -> None:
    """(Re)configure the ``syswarden`` logger; safe to call again on a reload."""
    root = logging.getLogger("syswarden")
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
    root.setLevel(LEVELS.get(str(level).lower(), logging.INFO))
    root.propagate = False
    if stderr:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        _handlers.append(handler)
    if syslog:
        address = next((s for s in SYSLOG_SOCKETS if os.path.exists(s)), None)
        if address is None:
            _handlers.append(logging.NullHandler())
            for h in _handlers:
                root.addHandler(h)
            root.warning("log_syslog: no syslog socket (%s); logging to stderr only",
                         ", ".join(SYSLOG_SOCKETS))
            return
        try:
            handler = logging.handlers.SysLogHandler(address=address)
        except OSError as exc:
            root.warning("log_syslog: cannot open %s (%s); logging to stderr only", address, exc)
        else:
            handler.setFormatter(logging.Formatter("syswarden[%(process)d]: %(message)s"))
            _handlers.append(handler)
    for handler in _handlers:
        root.addHandler(handler)
