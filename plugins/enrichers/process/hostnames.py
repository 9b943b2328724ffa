"""The host name of an IP address, for Falco's ``fd.*ip.name`` fields.

Falco compares ``fd.sip.name = NAME`` by resolving NAME (its DNS manager) and testing whether
the socket's address is one of NAME's.  A field reader here is given no comparison constant, so
the name is looked up the other way: the address's host name as the system's resolver gives it
(``/etc/hosts``, then a PTR record, as ``getent hosts ADDRESS``), which is the name a cluster's
DNS gives a Kubernetes service's address (``kubernetes.default.svc.cluster.local``).  A name
with several addresses and no PTR record pointing back (a CDN's) is not found this way.

Lookups run in one worker thread and are cached (``TTL`` seconds, failures too); the first
reader of an address waits for its answer at most ``WAIT`` seconds, then reads unknown until
it comes.  Nothing is looked up unless a rule reads one of these fields.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Any

TTL = 300.0
WAIT = 0.05
MAX_CACHED = 4096

_cache: dict[str, tuple[str | None, float]] = {}
_pending: dict[str, threading.Event] = {}
_queue: queue.Queue[str] = queue.Queue(maxsize=1024)
_lock = threading.Lock()
_worker: threading.Thread | None = None


def _lookup(addr: str) -> str | None:
    try:
        return socket.gethostbyaddr(addr)[0] or None
    except (OSError, UnicodeError):
        return None


def _work() -> None:
    while True:
        addr = _queue.get()
        name = _lookup(addr)
        with _lock:
            if len(_cache) >= MAX_CACHED:
                _cache.clear()
            _cache[addr] = (name, time.monotonic() + TTL)
            done = _pending.pop(addr, None)
        if done is not None:
            done.set()


def name_of(ip: Any) -> str | None:
    """The host name of ``ip`` (an address object or text), None when it has none or its
    lookup has not answered yet."""
    if ip is None:
        return None
    addr = str(ip)
    got = _cache.get(addr)
    if got is not None and got[1] > time.monotonic():
        return got[0]
    global _worker
    with _lock:
        done = _pending.get(addr)
        if done is None:
            done = _pending[addr] = threading.Event()
            try:
                _queue.put_nowait(addr)
            except queue.Full:
                _pending.pop(addr, None)
                return None
            if _worker is None:
                _worker = threading.Thread(target=_work, name="syswarden-hostnames",
                                           daemon=True)
                _worker.start()
    done.wait(WAIT)
    got = _cache.get(addr)
    return got[0] if got is not None else None
