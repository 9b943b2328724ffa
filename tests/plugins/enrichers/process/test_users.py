"""Users and groups: the host's databases, or a process's own through /proc/PID/root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

import pytest

from syswarden.core.event import Process
from syswarden.plugins.enrichers.process import users


def test_host_users_and_groups():
    me = Process(os.getpid())
    assert users.user_name(me, 0) == "root"
    assert users.group_name(me, 0) == "root"
    # an id without an entry: libsinsp's placeholder, "root" for 0 (an image without passwd)
    assert users.user_name(me, 4242424) == "<NA>"
    assert users.group_name(me, 4242424) == "<NA>"
    assert users.user_name(me, None) is None
    entry = users.lookup_user(me, 0)
    assert entry.home == pwd.getpwuid(0).pw_dir and entry.shell == pwd.getpwuid(0).pw_shell
    assert users.login_name(0) == "root"
    assert users.login_name(0xFFFFFFFF) is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare (a private mount namespace)")
def test_a_process_in_another_mount_namespace_uses_its_own_passwd(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nappuser:x:4321:4321::/app:/bin/false\n")
    group = tmp_path / "group"
    group.write_text("root:x:0:\nappgroup:x:4321:\n")
    script = (f"mount --bind {passwd} /etc/passwd && mount --bind {group} /etc/group "
              "&& echo ready && exec sleep 10")
    child = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        p = Process(child.pid, container_id="0123456789ab")
        assert users.root_of(p) == f"/proc/{child.pid}/root"
        assert users.user_name(p, 4321) == "appuser"
        assert users.group_name(p, 4321) == "appgroup"
        assert users.lookup_user(p, 4321).home == "/app"
        host = Process(os.getpid())
        assert users.user_name(host, 4321) != "appuser"  # the host's file is untouched
    finally:
        child.kill()
        child.wait()
