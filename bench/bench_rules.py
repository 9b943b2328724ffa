"""Rule engine throughput: events per second through real rule sets, on one core.

Builds 200,000+ realistic mixed events in memory (file opens for reading and writing, execs,
connects and accepts, renames and unlinks, closes; on the host and in containers, with a
process tree, fds and container metadata attached the way the enrichers attach them) and runs
them through:

  (a) syswarden's default rules (rules/default_rules.yaml), if present;
  (b) Falco's three rule files together (stable + incubating + sandbox, from ../shared/compat,
      or $SYSWARDEN_SHARED/compat);

each with the event-type index on and off; then the cost per event with the first 10 rules
against all of them.  Each figure is the best of three runs.  Prints figures; asserts nothing.

    .venv/bin/python bench/bench_rules.py [--events N]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import sys
import time

from syswarden.core.config import default_rules_path
from syswarden.core.event import Container, Event, FdInfo, Mount, Process
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine, load_rules

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import falco_rules_paths

FALCO_FILES = falco_rules_paths()   # $SYSWARDEN_SHARED, else ../shared beside the repository


def registry():
    reg = collect_fields()
    if "proc.name" not in reg:  # the process plugin not registered yet: take its declarations
        from syswarden.plugins.enrichers.process import FIELDS
        reg.add_all(FIELDS)
    return reg


def make_processes():
    init = Process(1, comm="systemd", exe="/usr/lib/systemd/systemd",
                   exepath="/usr/lib/systemd/systemd", uid=0, gid=0, user="root", group="root",
                   container_id="host")
    sshd = Process(800, comm="sshd", exe="/usr/sbin/sshd", exepath="/usr/sbin/sshd", parent=init,
                   ppid=1, uid=0, user="root", container_id="host", args=["-D"])
    bash = Process(1200, comm="bash", exe="/bin/bash", exepath="/usr/bin/bash", parent=sshd,
                   ppid=800, uid=1000, user="alice", loginuid=1000, tty=34816, container_id="host")
    shim = Process(900, comm="containerd-shim", exe="/usr/bin/containerd-shim-runc-v2",
                   parent=init, ppid=1, uid=0, user="root", container_id="host")
    web = Container("3ad7b26ded6d", full_id="3ad7b26ded6d" * 5 + "abcd", name="web",
                    image="nginx:1.25", image_repository="nginx", image_tag="1.25",
                    privileged=False, complete=True,
                    mounts=[Mount("/srv/www", "/usr/share/nginx/html", "ro", False)])
    db = Container("9f1c2e3d4b5a", full_id="9f1c2e3d4b5a" * 5 + "abcd", name="db",
                   image="postgres:16", image_repository="postgres", image_tag="16",
                   privileged=False, complete=True)
    nginx = Process(2000, comm="nginx", exe="/usr/sbin/nginx", exepath="/usr/sbin/nginx",
                    parent=shim, ppid=900, uid=0, user="root", container_id=web.id,
                    container=web, args=["-g", "daemon off;"])
    pg = Process(2100, comm="postgres", exe="/usr/lib/postgresql/16/bin/postgres",
                 exepath="/usr/lib/postgresql/16/bin/postgres", parent=shim, ppid=900, uid=999,
                 user="postgres", container_id=db.id, container=db)
    host_cmds = [Process(3000 + i, comm=c, exe=f"/usr/bin/{c}", exepath=f"/usr/bin/{c}",
                         parent=bash, ppid=1200, uid=1000, user="alice", tty=34816,
                         container_id="host", args=a)
                 for i, (c, a) in enumerate([("ls", ["-la"]), ("cat", ["/etc/hosts"]),
                                             ("python3", ["app.py"]), ("git", ["status"]),
                                             ("vim", ["notes.txt"]), ("curl", ["example.org"])])]
    ctr_cmds = [Process(4000 + i, comm=c, exe=f"/bin/{c}", exepath=f"/bin/{c}", parent=nginx,
                        ppid=2000, uid=0, user="root", container_id=web.id, container=web,
                        args=a)
                for i, (c, a) in enumerate([("sh", ["-c", "date"]), ("cat", ["/etc/passwd"]),
                                            ("nginx", ["-s", "reload"])])]
    return {"all": [bash, sshd, nginx, pg] + host_cmds + ctr_cmds,
            "net": [nginx, pg, sshd] + [p for p in host_cmds
                                        if p.comm in ("curl", "python3", "git")],
            "exec": [bash] * 8 + host_cmds + ctr_cmds[1:] + ctr_cmds[:1]}


PATHS_READ = ["/etc/hosts", "/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libc.so.6",
              "/proc/self/status", "/etc/passwd", "/usr/share/zoneinfo/UTC", "/etc/nsswitch.conf",
              "/var/lib/postgresql/data/base/1/1259", "/usr/share/nginx/html/index.html"]
PATHS_WRITE = ["/tmp/app.log", "/var/log/nginx/access.log", "/home/alice/notes.txt",
               "/var/lib/postgresql/data/pg_wal/0001", "/tmp/.X11-unix/x", "/run/user/1000/x"]
O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_CLOEXEC = 0, 1, 0o100, 0o1000, 0o2000, 0o2000000


def make_events(n: int, seed: int = 7) -> list[Event]:
    rnd = random.Random(seed)
    procs = make_processes()
    events = []
    ts = 1_700_000_000_000_000_000
    for i in range(n):
        ts += 1000
        r = rnd.random()
        kind = "net" if 0.55 <= r < 0.70 or 0.83 <= r < 0.88 else "exec" if 0.40 <= r < 0.55 \
            else "all"
        p = rnd.choice(procs[kind])
        if r < 0.40:
            write = rnd.random() < 0.3
            path = rnd.choice(PATHS_WRITE if write else PATHS_READ)
            flags = (O_WRONLY | O_CREAT | O_APPEND if write else O_RDONLY) | O_CLOEXEC
            e = Event("openat", ts, p.pid, p.pid, 5,
                      {"fd": 5, "dirfd": -100, "name": path, "flags": flags, "mode": 0o644})
            e.fd = FdInfo(5, "file", path)
        elif r < 0.55:
            e = Event("execve", ts, p.pid, p.pid, 0,
                      {"res": 0, "exe": p.exe, "args": p.args, "filename": p.exe})
        elif r < 0.65:
            e = Event("connect", ts, p.pid, p.pid, 0,
                      {"res": 0, "fd": 7, "tuple": "10.0.0.5:40000->93.184.216.34:443"})
            e.fd = FdInfo(7, "ipv4", "10.0.0.5:40000->93.184.216.34:443",
                          sip=ipaddress.ip_address("93.184.216.34"), sport=443,
                          cip=ipaddress.ip_address("10.0.0.5"), cport=40000, l4proto="tcp",
                          sockfamily="ip", is_server=False)
        elif r < 0.70:
            e = Event("accept4", ts, p.pid, p.pid, 8,
                      {"fd": 8, "tuple": "172.17.0.1:51000->172.17.0.2:80"})
            e.fd = FdInfo(8, "ipv4", "172.17.0.1:51000->172.17.0.2:80",
                          sip=ipaddress.ip_address("172.17.0.2"), sport=80,
                          cip=ipaddress.ip_address("172.17.0.1"), cport=51000, l4proto="tcp",
                          sockfamily="ip", is_server=True)
        elif r < 0.78:
            e = Event("renameat2", ts, p.pid, p.pid, 0,
                      {"res": 0, "olddirfd": -100, "oldpath": "/tmp/app.log.tmp",
                       "newdirfd": -100, "newpath": "/tmp/app.log", "flags": 0})
        elif r < 0.83:
            e = Event("unlinkat", ts, p.pid, p.pid, 0,
                      {"res": 0, "dirfd": -100, "name": "/tmp/app.log.1", "flags": 0})
        elif r < 0.88:
            e = Event("socket", ts, p.pid, p.pid, 9, {"fd": 9, "domain": 2, "type": 1, "proto": 0})
        else:
            e = Event("close", ts, p.pid, p.pid, 0, {"res": 0, "fd": 5})
        e.num = i
        e.proc = p
        e.container = p.container
        events.append(e)
    return events


def run(engine: RuleEngine, events: list[Event], clock=time.perf_counter
        ) -> tuple[float, int]:
    """(seconds by ``clock``, alerts) for one pass over ``events``."""
    check = engine.check
    alerts = 0
    t0 = clock()
    for e in events:
        alerts += len(check(e))
    return clock() - t0, alerts


def report(label: str, engine: RuleEngine, events: list[Event], rounds: int = 3) -> float:
    """Best of ``rounds`` runs (the machine is shared: the best run is the engine's cost)."""
    run(engine, events[:5000])  # warm up
    secs, alerts = min(run(engine, events) for _ in range(rounds))
    rate = len(events) / secs
    print(f"{label:<52} {rate:>10,.0f} events/s  {secs / len(events) * 1e6:6.2f} us/event  "
          f"{alerts} alerts  ({len(engine.active_rules())} rules)")
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    fields = registry()
    t0 = time.perf_counter()
    events = make_events(args.events)
    print(f"{len(events):,} events built in {time.perf_counter() - t0:.1f}s; python "
          f"{sys.version.split()[0]}")

    default = default_rules_path()
    if os.path.exists(default):
        for index in (True, False):
            eng = RuleEngine.load([default], fields, use_index=index)
            report(f"(a) default rules, index {'on' if index else 'off'}", eng, events)
    else:
        print(f"(a) default rules: skipped, {default} does not exist yet")

    if not all(os.path.exists(f) for f in FALCO_FILES):
        print(f"(b) Falco rules: skipped, not found under {os.path.dirname(FALCO_FILES[0])} "
              "(SYSWARDEN_SHARED=DIR points at the shared folder)")
        return 0
    t0 = time.perf_counter()
    result, rules, _ = load_rules(FALCO_FILES, fields)
    if result.errors:
        print(f"(b) Falco rules do not load: {result.errors[0]}")
        return 1
    print(f"Falco's three files: {len(rules)} rules compiled in "
          f"{time.perf_counter() - t0:.2f}s")
    for index in (True, False):
        eng = RuleEngine(rules, use_index=index)
        report(f"(b) Falco stable+incubating+sandbox, index {'on' if index else 'off'}",
               eng, events)
    eng_all = RuleEngine(rules, rule_matching="all")
    report("(b) same, rule_matching=all, index on", eng_all, events)

    enabled = [r for r in rules if r.enabled]
    few = RuleEngine(enabled[:10])
    many = RuleEngine(enabled)
    r10 = report("(c) first 10 enabled Falco rules, index on", few, events)
    rall = report(f"(c) all {len(enabled)} enabled Falco rules, index on", many, events)
    print(f"cost per event: {1e6 / r10:.2f} us with 10 rules, {1e6 / rall:.2f} us with "
          f"{len(enabled)} ({rall / r10 * 100:.0f}% of the 10-rule rate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
