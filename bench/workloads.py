"""Real workloads for bench_workloads.py: PostgreSQL under pgbench, nginx under wrk, a C build.

Each is a context manager that sets itself up in its own temporary folder (a server listening
on 127.0.0.1 only, with its own config, data, pid and logs there) and takes it all down on
leaving, whatever happened; ``run()`` runs the workload once and returns its figures, each
``(value, better)`` where ``better`` is ``"higher"`` or ``"lower"``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Self

Figures = dict[str, tuple[float, str]]

#: Debian packages each workload needs (pgbench ships in postgresql-15, which postgresql pulls)
PACKAGES = {"postgres": ["postgresql"], "nginx": ["nginx", "wrk"],
            "nginx-conn": ["nginx", "wrk"], "build": ["build-essential"]}


def busy_s() -> float:
    """The CPU seconds this machine has spent busy since boot, all CPUs (user, nice, system,
    irq, softirq; not idle, I/O wait nor steal: what a hypervisor took from this guest is no
    work of the workload's).  Its difference over a run, divided by the operations done, is
    what one operation cost the whole machine (the server, the client, the kernel and any
    monitor together): a figure the noise of a shared host moves far less than a rate."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} is not listening on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Workload:
    name = ""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tmp = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        self.tmp = self._stack.enter_context(tempfile.TemporaryDirectory(
            prefix=f"swbench-{self.name}-"))
        os.chmod(self.tmp, 0o755)
        try:
            self.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def start(self) -> None:
        raise NotImplementedError

    def run(self) -> Figures:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


# -- PostgreSQL under pgbench -----------------------------------------------------------------


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit(f"{name} not found under /usr/lib/postgresql (apt-get install "
                         "postgresql)")
    return found[-1]


class Postgres(Workload):
    """Debian's PostgreSQL, initdb'd as the postgres user in a temporary folder, on a loopback
    port, ``synchronous_commit=off`` (a commit does not wait for the disk, whose noise would
    hide the CPU's); pgbench's TPC-B-like transactions from 8 clients on 2 threads: TPS and
    the p99 of the transactions' latency (from pgbench's per-transaction log)."""

    name = "postgres"

    def __init__(self, quick: bool, seconds: float) -> None:
        super().__init__(quick)
        self.seconds = seconds
        self.scale = 2 if quick else 20
        self.port = 0

    def _as_postgres(self, *cmd: str) -> str:
        res = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True,
                             text=True, check=False)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
        return res.stdout

    def start(self) -> None:
        pw = pwd.getpwnam("postgres")
        data, self.sock = os.path.join(self.tmp, "data"), os.path.join(self.tmp, "sock")
        for d in (data, self.sock):
            os.mkdir(d, 0o700)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self._as_postgres(pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                          "--no-sync")
        self.port = free_port()
        log = self._stack.enter_context(open(os.path.join(self.tmp, "pg.log"), "w"))  # noqa: SIM115
        server = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", pg_bin("postgres"), "-D", data,
             "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
             "-c", f"unix_socket_directories={self.sock}", "-c", "shared_buffers=256MB",
             "-c", "max_connections=50", "-c", "synchronous_commit=off"],
            stdout=subprocess.DEVNULL, stderr=log)
        self._stack.callback(stop, server, signal.SIGINT)       # fast shutdown
        wait_port(self.port, server, "postgres")
        time.sleep(0.5)                         # listening before it accepts logins
        self._as_postgres(pg_bin("pgbench"), "-i", "-q", "-s", str(self.scale),
                          *self._conn())

    def _conn(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "postgres"]

    def run(self) -> Figures:
        logs = os.path.join(self.tmp, "pgbench-log")
        shutil.rmtree(logs, ignore_errors=True)
        os.mkdir(logs)
        os.chown(logs, pwd.getpwnam("postgres").pw_uid, -1)
        busy = busy_s()
        out = self._as_postgres(pg_bin("pgbench"), "-c", "8", "-j", "2", "-T",
                                str(int(self.seconds)), "-n", "-l",
                                f"--log-prefix={logs}/tx", *self._conn())
        busy = busy_s() - busy
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        done = re.search(r"number of transactions actually processed: (\d+)", out)
        if not m or not done:
            raise SystemExit(f"pgbench said:\n{out}")
        lat: list[int] = []
        for path in glob.glob(f"{logs}/tx*"):
            with open(path) as f:
                lat.extend(int(line.split()[2]) for line in f if line.strip())
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] / 1000 if lat else float("nan")
        return {"pgbench TPS": (float(m.group(1)), "higher"),
                "pgbench p99 latency (ms)": (p99, "lower"),
                "pgbench machine CPU us/transaction": (busy * 1e6 / int(done.group(1)), "lower")}

    def describe(self) -> str:
        version = pg_bin("postgres").split("/")[4]
        return (f"PostgreSQL {version}, pgbench scale {self.scale}, 8 clients, 2 threads, "
                f"{self.seconds:.0f} s")


# -- nginx under wrk --------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
user www-data;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


class Nginx(Workload):
    """Debian's nginx, one worker, its own config, pid and logs (the access log on) in a
    temporary folder; wrk (1 thread, 16 connections) fetching a 612-byte file: requests/s."""

    name = "nginx"

    def __init__(self, quick: bool, seconds: float) -> None:
        super().__init__(quick)
        self.seconds = seconds
        self.port = 0

    def start(self) -> None:
        www = os.path.join(self.tmp, "www")
        os.mkdir(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<html><body>" + "syswarden bench " * 37 + "</body></html>\n")
        self.port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port))
        server = subprocess.Popen(["nginx", "-c", conf, "-p", self.tmp, "-g", "daemon off;"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._stack.callback(stop, server)
        wait_port(self.port, server, "nginx")

    def run(self) -> Figures:
        return self._wrk([], "nginx requests/s", "nginx machine CPU us/request")

    def _wrk(self, extra: list[str], figure: str, cpu_figure: str) -> Figures:
        busy = busy_s()
        out = subprocess.run(["wrk", "-t1", "-c16", f"-d{int(self.seconds)}s", *extra,
                              f"http://127.0.0.1:{self.port}/index.html"],
                             capture_output=True, text=True, check=True).stdout
        busy = busy_s() - busy
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        done = re.search(r"(\d+) requests in", out)
        if not m or not done or "Non-2xx" in out:
            raise SystemExit(f"wrk said:\n{out}")
        return {figure: (float(m.group(1)), "higher"),
                cpu_figure: (busy * 1e6 / int(done.group(1)), "lower")}

    def describe(self) -> str:
        return f"nginx, 1 worker, wrk -t1 -c16 for {self.seconds:.0f} s on a 612-byte file"


class NginxConnections(Nginx):
    """The same nginx, each request on a new connection (``Connection: close``, as ``ab``
    without ``-k``): a socket, a connect and an accept per request, where the keep-alive
    workload has none."""

    name = "nginx-conn"

    def run(self) -> Figures:
        return self._wrk(["-H", "Connection: close"], "nginx new connections/s",
                         "nginx machine CPU us/connection")

    def describe(self) -> str:
        return (f"nginx, 1 worker, wrk -t1 -c16 -H 'Connection: close' for "
                f"{self.seconds:.0f} s: a new connection per request")


# -- a C build --------------------------------------------------------------------------------

C_UNIT = """#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
static int table_{i}[64];
int unit_{i}(const char *s) {{
    int h = {i};
    for (size_t k = 0; k < strlen(s); k++) h = h * 31 + s[k] + table_{i}[k % 64];
    char buf[64]; snprintf(buf, sizeof buf, "%d", h);
    return (int)strtol(buf, NULL, 10) ^ COMMON_SEED;
}}
"""

MAKEFILE = """CFLAGS = -O1
SRCS = $(wildcard u*.c) main.c
prog: $(SRCS:.c=.o)
\t$(CC) -o $@ $^
%.o: %.c common.h
\t$(CC) $(CFLAGS) -c -o $@ $<
clean:
\trm -f *.o prog
"""


class CBuild(Workload):
    """A C build of generated files (``make -j2``: a compiler, assembler, and their opens and
    writes per file, then a link), cleaned between runs: seconds."""

    name = "build"

    def __init__(self, quick: bool, files: int) -> None:
        super().__init__(quick)
        self.files = files

    def start(self) -> None:
        with open(os.path.join(self.tmp, "common.h"), "w") as f:
            f.write("#define COMMON_SEED 0x5eed\n")
        for i in range(self.files):
            with open(os.path.join(self.tmp, f"u{i:04d}.c"), "w") as f:
                f.write(C_UNIT.format(i=i))
        with open(os.path.join(self.tmp, "main.c"), "w") as f:
            f.write("".join(f"int unit_{i}(const char *);\n" for i in range(self.files)))
            f.write("int main(int c, char **v) { int h = 0;\n")
            f.write("".join(f"h ^= unit_{i}(v[0]);\n" for i in range(self.files)))
            f.write("return h == 42; }\n")
        with open(os.path.join(self.tmp, "Makefile"), "w") as f:
            f.write(MAKEFILE)

    def run(self) -> Figures:
        subprocess.run(["make", "-s", "-C", self.tmp, "clean"], check=True)
        t0, busy = time.perf_counter(), busy_s()
        subprocess.run(["make", "-s", "-j2", "-C", self.tmp], check=True)
        return {f"make -j2, {self.files} files (s)": (time.perf_counter() - t0, "lower"),
                "make machine CPU (s)": (busy_s() - busy, "lower")}

    def describe(self) -> str:
        return f"C build of {self.files} generated files with make -j2, gcc -O1"
