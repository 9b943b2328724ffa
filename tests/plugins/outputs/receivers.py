"""Real receivers the output tests talk to, all on 127.0.0.1, all stopped after the test.

:class:`HttpReceiver` is a plain HTTP/1.1 server written with trio for the faults a webhook
must survive: 500s, 429 with Retry-After, hangs, connections closed without an answer, slow
answers, and being down then up on the same port.  The others are the real daemons:
rsyslogd with its own config (a private unix socket, UDP and TCP, written to a file),
prometheus-alertmanager, and Redmine (WEBrick) with its REST API on.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import trio


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers by ``mode``: ``ok``, ``fail`` (500), ``busy`` (429 + Retry-After: 1),
    ``reject`` (400 with a body), ``hang``, ``close`` (drop the connection unanswered), or
    ``slow`` (answer after ``delay`` seconds).  ``fail_first`` answers 500 that many times first.
    Every request that got a 2xx is in ``delivered``; every request at all in ``seen``;
    ``max_concurrent`` is the most requests it was answering at once."""

    mode: str = "ok"
    delay: float = 0.0
    fail_first: int = 0
    port: int = 0                        # 0: the kernel picks one at the first start; kept
    delivered: list[Received] = field(default_factory=list)
    seen: list[Received] = field(default_factory=list)
    got: trio.Event = field(default_factory=trio.Event)
    tls: ssl.SSLContext | None = None            # serve HTTPS with this server context
    answer: bytes = b'{"ok": true}'               # the body of a 200
    max_concurrent: int = 0
    _answering: int = 0
    _scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen until :meth:`down` (or the test ends)."""
        with trio.CancelScope() as scope:
            self._scope = scope
            if self.tls is not None:
                listeners = await trio.open_ssl_over_tcp_listeners(
                    self.port, self.tls, host="127.0.0.1", https_compatible=True)
            else:
                listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            tcp = listeners[0].transport_listener if self.tls is not None else listeners[0]
            self.port = tcp.socket.getsockname()[1]          # down then up: the same port
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle, listeners)
                task_status.started()
        self._scope = None

    def down(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def up(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.serve)

    async def wait_for(self, n: int, timeout: float = 60.0) -> None:
        with trio.fail_after(timeout):
            while len(self.delivered) < n:
                self.got = trio.Event()
                await self.got.wait()

    def uuids(self) -> list[str]:
        return [r.headers.get("x-syswarden-alert-id", "") for r in self.delivered]

    async def _handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                req = Received(method, path, headers, body)
                self.seen.append(req)
                self._answering += 1
                self.max_concurrent = max(self.max_concurrent, self._answering)
                try:
                    status, extra, answer = await self._answer()
                    if status is None:
                        return                      # close without answering
                    if 200 <= status < 300:
                        self.delivered.append(req)
                        self.got.set()
                    text = (f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\n"
                            f"Content-Type: application/json\r\n{extra}\r\n").encode() + answer
                    await stream.send_all(text)
                finally:
                    self._answering -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return                              # includes a failed TLS handshake

    async def _answer(self) -> tuple[int | None, str, bytes]:
        if self.fail_first > 0:
            self.fail_first -= 1
            return 500, "", b'{"error": "not yet"}'
        if self.mode == "fail":
            return 500, "", b'{"error": "down for maintenance"}'
        if self.mode == "busy":
            return 429, "Retry-After: 1\r\n", b'{"error": "slow down"}'
        if self.mode == "reject":
            return 400, "", b'{"error": "bad alert format"}'
        if self.mode == "hang":
            await trio.sleep_forever()
        if self.mode == "close":
            return None, "", b""
        if self.mode == "slow":
            await trio.sleep(self.delay)
        return 200, "", self.answer


# ---------------------------------------------------------------------------------------------
# Real daemons (synchronous: session- and module-scoped fixtures start them once)
# ---------------------------------------------------------------------------------------------


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s: {last}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group (the daemon is its leader), wait until every member is gone,
    SIGKILL what lingers."""
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(0.1)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Rsyslog:
    """rsyslogd -n with a private config: unix socket, UDP and TCP inputs, one output file."""

    TEMPLATE = ("%syslogfacility-text%|%syslogseverity-text%|%programname%|%hostname%|"
                "%protocol-version%|%msg%\\n")

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sw-rsyslog-")
        self.socket = os.path.join(self.dir, "log.sock")
        # RFC 5424 on a unix socket: imuxsock's special (3164, no hostname) parser must be off
        self.socket5424 = os.path.join(self.dir, "log5424.sock")
        self.file = os.path.join(self.dir, "messages")
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port()
        self.conf = os.path.join(self.dir, "rsyslog.conf")
        with open(self.conf, "w") as fh:
            fh.write(f"""
global(workDirectory="{self.dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{self.socket}" RateLimit.Interval="0")
input(type="imuxsock" Socket="{self.socket5424}" RateLimit.Interval="0"
      UseSpecialParser="off" ParseHostname="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")
template(name="probe" type="string" string="{self.TEMPLATE}")
*.* action(type="omfile" file="{self.file}" template="probe")
""")
        subprocess.run(["rsyslogd", "-N1", "-f", self.conf], check=True, capture_output=True)
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", self.conf, "-i", os.path.join(self.dir, "pid")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"),
            start_new_session=True)
        deadline = time.monotonic() + 15
        while not self._ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("rsyslogd did not start")
            time.sleep(0.1)

    def _ready(self) -> bool:
        if not (os.path.exists(self.socket) and os.path.exists(self.socket5424)):
            return False
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
        except OSError:
            return False
        return True

    def lines(self) -> list[str]:
        try:
            with open(self.file, encoding="utf-8", errors="replace") as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Alertmanager:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sw-am-")
        self.port = free_port()
        conf = os.path.join(self.dir, "am.yml")
        with open(conf, "w") as fh:
            fh.write("route:\n  receiver: blackhole\n  group_wait: 0s\n"
                     "receivers:\n  - name: blackhole\n")
        self.proc = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={conf}",
             f"--storage.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"),
            start_new_session=True)
        try:
            wait_http(f"{self.url}/-/ready", 30, self.proc)
        except RuntimeError:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:
            return json.load(r)

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


REDMINE = "/usr/share/redmine"
REDMINE_SETUP = """
Setting.rest_api_enabled = "1"
u = User.find_by_login("admin"); u.must_change_passwd = false; u.save!
p = Project.create!(name: "%(name)s", identifier: "%(ident)s", is_public: true,
  enabled_module_names: %%w[issue_tracking], tracker_ids: Tracker.pluck(:id))
puts "KEY=" + u.api_key
"""


class Redmine:
    """Debian's Redmine on WEBrick, REST API on, a fresh project per test session."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sw-redmine-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.project = f"sw-{uuid.uuid4().hex[:10]}"
        as_www = ["runuser", "-u", "www-data", "--"]
        with open(os.path.join(REDMINE, "Gemfile.local"), "a+") as fh:
            fh.seek(0)
            if "webrick" not in fh.read():
                fh.write('gem "webrick"\n')
        subprocess.run(as_www + ["bundle", "install", "--local", "--quiet"], cwd=REDMINE,
                       check=True, capture_output=True, env=self._env())
        subprocess.run(["install", "-d", "-o", "www-data", "-g", "www-data",
                        os.path.join(REDMINE, "tmp")], check=True)
        script = REDMINE_SETUP % {"name": self.project, "ident": self.project}
        out = subprocess.run(as_www + ["bundle", "exec", "rails", "runner", "-e", "production",
                                       script], cwd=REDMINE, check=True, capture_output=True,
                             text=True, env=self._env())
        self.api_key = [ln for ln in out.stdout.splitlines() if ln.startswith("KEY=")][0][4:]
        self.proc = subprocess.Popen(
            as_www + ["bundle", "exec", "rails", "server", "-e", "production", "-b", "127.0.0.1",
                      "-p", str(self.port), "-P", os.path.join(self.dir, "server.pid")],
            cwd=REDMINE, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "log"), "w"), env=self._env(),
            start_new_session=True)
        try:
            wait_http(f"{self.url}/", 90, self.proc)
        except RuntimeError:
            self.close()
            raise

    def _env(self) -> dict[str, str]:
        return {**os.environ, "HOME": self.dir}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> dict:
        req = urllib.request.Request(self.url + path, headers={"X-Redmine-API-Key": self.api_key})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def issues(self) -> list[dict]:
        return self.get(f"/issues.json?project_id={self.project}&status_id=*&limit=100")["issues"]

    def close(self) -> None:
        stop(self.proc, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_certs(directory: str) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=syswarden test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        with open(os.path.join(directory, f"{name}.ext"), "w") as fh:
            fh.write(ext + "\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {k: os.path.join(directory, f) for k, f in (
        ("ca", "ca.pem"), ("server_cert", "server.pem"), ("server_key", "server.key"),
        ("client_cert", "client.pem"), ("client_key", "client.key"))}
