"""The hostname alerts carry: FALCO_HOSTNAME when set (the DaemonSet gives it the node's name)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def _hostname(env: dict[str, str]) -> str:
    code = "from syswarden.core.alert import Alert, Priority; " \
           "print(Alert('r', Priority.NOTICE, 'x', 0).hostname)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_falco_hostname_names_the_node() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FALCO_HOSTNAME"}
    assert _hostname(env) == socket.gethostname()
    assert _hostname({**env, "FALCO_HOSTNAME": "node-7"}) == "node-7"
