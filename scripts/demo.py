"""``make demo``: the agent live, the event generator's actions, the alerts as they arrive.

Starts the agent with the default config and rules (alerts as text on this terminal, and as
JSON in a file for the summary), a container to run the container actions in, then every
action of ``syswarden event-generator`` one by one; at the end a summary: actions run, alerts
per rule, and any action whose rule did not fire.  Everything it starts is stopped and removed.

The kernel here has no module support, so the kernel-module action is followed through the
eBPF source's raw_syscalls fallback (``-o ebpf.raw_fallback=true``), which the demo turns on.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from syswarden.commands.event_generator import ACTIONS, run_actions

IMAGE = "syswarden-demo:latest"
CONTAINER_ACTIONS = {"terminal-shell-in-container", "package-manager-in-container"}


def build_image() -> None:
    """A busybox image built locally (no registry needed)."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as root:
        bin_dir = pathlib.Path(root, "bin")
        bin_dir.mkdir()
        shutil.copy2(shutil.which("busybox") or "/bin/busybox", bin_dir / "busybox")
        for applet in ("sh", "ls", "cat", "touch", "mkdir", "sleep", "rm", "cp", "mv", "ln",
                       "chmod", "rmdir"):
            (bin_dir / applet).symlink_to("busybox")
        for d in ("etc", "tmp", "usr", "proc", "dev", "sys", "var/log"):
            pathlib.Path(root, d).mkdir(parents=True, exist_ok=True)
        pathlib.Path(root, "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-c", 'CMD ["sleep", "3600"]', "-", IMAGE],
                       stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.wait()


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="syswarden-demo-")
    alerts_file = os.path.join(workdir, "alerts.json")
    build_image()
    box = f"syswarden-demo-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--network", "none", "--name", box, IMAGE],
                   check=True, stdout=subprocess.DEVNULL)
    agent = subprocess.Popen(
        [sys.executable, "-m", "syswarden.core.cli", "-o", "ebpf.raw_fallback=true",
         "-o", "file_output.enabled=true", "-o", f"file_output.filename={alerts_file}",
         "-o", "file_output.json_output=true", "-o", "pipeline.stats_interval=0"],
        stderr=subprocess.PIPE, text=True)
    try:
        for line in agent.stderr:
            if "syswarden ready" in line:
                print(f"== agent ready ({line.split('syswarden ready: ')[-1].strip()})")
                break
        else:
            print("the agent did not start", file=sys.stderr)
            return 1
        print("== running the event generator; alerts appear as they arrive\n")
        windows = {}
        for action in ACTIONS:
            print(f"-> {action.name}: {action.desc}", flush=True)
            start = time.time_ns()
            result = run_actions([action.name], box if action.name in CONTAINER_ACTIONS
                                 else None, report=lambda _line: None)[action.name]
            windows[action.name] = (start, time.time_ns(), result)
            time.sleep(0.8)
        time.sleep(3)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        subprocess.run(["docker", "rm", "-f", box], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    alerts = [json.loads(x) for x in pathlib.Path(alerts_file).read_text().splitlines()
              if x.strip()] if os.path.exists(alerts_file) else []
    fired = {a["rule"] for a in alerts}
    per_rule = collections.Counter(a["rule"] for a in alerts)
    print(f"\n== summary: {len(ACTIONS)} actions, {len(alerts)} alerts")
    for rule, count in per_rule.most_common():
        print(f"   {count:>4}  {rule}")
    missed = [a for a in ACTIONS if windows[a.name][2] == "ok" and a.rule not in fired]
    skipped = [(a.name, windows[a.name][2]) for a in ACTIONS
               if windows[a.name][2] != "ok"]
    for name, why in skipped:
        print(f"   not run: {name}: {why}")
    if missed:
        print("   MISSED: " + ", ".join(f"{a.name} (expected {a.rule})" for a in missed))
    else:
        print("   every action that ran was detected")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
