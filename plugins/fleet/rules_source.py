"""Rules from the fleet: a JetStream key-value bucket holds the rules every agent runs.

One key (``rules_source.key``, default ``rules``) of the bucket (``rules_source.bucket``) holds
a bundle: one JSON document with every rules file, in load order (``files``: ``name`` and
``content``), their ``sha256``, who pushed it and when.  One put is one revision: the bucket's
revision number is the rules revision, the bucket's history (``rules_source.history``) is
``syswarden rules history``.  A bundle, not a key per file, so that an agent never loads half
of a push.

The agent keeps a mirror of the last bundle that loaded (``rules_source.dir``, one directory
per revision and a ``current`` link): the rules filter loads ``current`` (the
``syswarden_rules_files`` hook), so an agent that starts while NATS is away runs the rules it
ran last.  :class:`RulesWatcher` asks the bucket every ``poll_interval`` for a newer revision;
a new bundle is first loaded as ``-V`` would (every rule compiled); when it loads it is
mirrored and the agent reloads as on SIGHUP, when it does not the running rules stay and the
error is logged and carried by the heartbeat (``fleet status`` shows it).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import trio

from syswarden.core import safe_files
from syswarden.core.errors import ConfigError, RuleError
from syswarden.core.fields import FieldRegistry
from syswarden.core.protocols import PluginContext, Service
from syswarden.core.rules.engine import RuleEngine
from syswarden.plugins.outputs.nats.connection import NatsLink

log = logging.getLogger("syswarden.fleet.rules")

#: names a bundle's file may take (its mirror's file name)
SAFE_NAME = str.maketrans({c: "_" for c in "/\\\0"})


@dataclass
class Bundle:
    """One revision of the fleet's rules."""

    files: list[tuple[str, str]]            # (name, content), in load order
    pushed_by: str = ""
    pushed_at: str = ""
    revision: int = 0                       # the bucket's revision (0: not stored yet)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for name, content in self.files:
            h.update(name.encode() + b"\0" + content.encode() + b"\0")
        return h.hexdigest()

    def encode(self) -> bytes:
        return json.dumps({"files": [{"name": n, "content": c} for n, c in self.files],
                           "sha256": self.sha256, "pushed_by": self.pushed_by,
                           "pushed_at": self.pushed_at}).encode()

    @classmethod
    def decode(cls, data: bytes, revision: int) -> Bundle:
        """Raises ValueError for what is not a bundle."""
        try:
            doc = json.loads(data)
            files = [(str(f["name"]), str(f["content"])) for f in doc["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"revision {revision} is not a rules bundle: {exc}") from None
        return cls(files, str(doc.get("pushed_by", "")), str(doc.get("pushed_at", "")),
                   revision)

    @classmethod
    def from_paths(cls, paths: list[str]) -> Bundle:
        files = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                files.append((os.path.basename(path), f.read()))
        return cls(files, f"{getpass.getuser()}@{socket.gethostname()}",
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def write_files(bundle: Bundle, directory: str) -> list[str]:
    """The bundle's files in ``directory``, numbered in load order; their paths."""
    paths = []
    for i, (name, content) in enumerate(bundle.files):
        path = os.path.join(directory, f"{i:03d}-{name.translate(SAFE_NAME)}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        paths.append(path)
    return paths


def check_bundle(bundle: Bundle, fields: FieldRegistry) -> None:
    """Load every rule of ``bundle`` as ``-V`` does; raise the RuleError of the first fault."""
    with tempfile.TemporaryDirectory(prefix="syswarden-rules-") as tmp:
        RuleEngine.load(write_files(bundle, tmp), fields)


class Mirror:
    """The bundles that loaded, on disk: ``DIR/rev-N/`` and ``DIR/current`` -> the running one."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.current = os.path.join(directory, "current")

    def revision(self) -> int:
        """The revision ``current`` holds (0: none)."""
        try:
            return int(os.readlink(self.current).rsplit("-", 1)[1])
        except (OSError, ValueError, IndexError):
            return 0

    def sha256(self) -> str:
        try:
            with open(os.path.join(self.current, ".sha256"), encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return ""

    def install(self, bundle: Bundle) -> None:
        """Write ``bundle`` as ``rev-N`` and point ``current`` at it (a rename: atomic); keep
        the previous revision, remove older ones."""
        safe_files.make_dirs(self.dir)             # every step checked: no planted link
        rev = os.path.join(self.dir, f"rev-{bundle.revision}")
        if os.path.isdir(rev):
            shutil.rmtree(rev)
        os.mkdir(rev, 0o700)
        write_files(bundle, rev)
        with open(os.path.join(rev, ".sha256"), "w", encoding="utf-8") as f:
            f.write(bundle.sha256)
        previous = self.revision()
        tmp_link = self.current + ".new"
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(os.path.basename(rev), tmp_link)
        os.replace(tmp_link, self.current)
        for entry in os.listdir(self.dir):
            if entry.startswith("rev-") and entry not in (f"rev-{bundle.revision}",
                                                         f"rev-{previous}"):
                shutil.rmtree(os.path.join(self.dir, entry), ignore_errors=True)


@dataclass
class RulesState:
    """What the agent runs and what it refused: the heartbeat's ``rules``."""

    source: str = "files"
    revision: int = 0
    sha256: str = ""
    error: str = ""                 # the last refused revision's fault ("" when none)
    error_revision: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "revision": self.revision, "sha256": self.sha256,
                "error": self.error, "error_revision": self.error_revision}


async def open_bucket(link: NatsLink, section: dict[str, Any], create: bool) -> Any:
    """The rules bucket (created with ``history`` and ``replicas`` when ``create``)."""
    import nats.js.errors
    js = link.js
    try:
        return await js.key_value(section["bucket"])
    except nats.js.errors.BucketNotFoundError:
        if not create:
            raise ConfigError(f"rules_source.bucket: the bucket {section['bucket']!r} does "
                              f"not exist on {link.servers}",
                              hint="push rules first: syswarden rules push FILE...") from None
    return await js.create_key_value(bucket=section["bucket"], history=section["history"],
                                     replicas=section["replicas"])


async def fetch(link: NatsLink, section: dict[str, Any]) -> Bundle | None:
    """The bucket's latest bundle (None: nothing pushed yet)."""
    import nats.js.errors
    if link.nc is None:
        await link.connect()
    kv = await open_bucket(link, section, create=False)
    try:
        entry = await kv.get(section["key"])
    except nats.js.errors.KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return Bundle.decode(entry.value, entry.revision or 0)


class RulesSource:
    """The agent's side of ``rules_source: {kind: nats}``: the mirror, the first sync, the
    state the heartbeat reports."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.section = config["rules_source"]
        self.nats = config.get("nats") or {}
        self.mirror = Mirror(self.section["dir"])
        self.state = RulesState(source="nats", revision=self.mirror.revision(),
                                sha256=self.mirror.sha256())
        self.synced = False

    def first_sync(self, fields: FieldRegistry) -> None:
        """At start-up: take the bucket's latest bundle when it loads; keep the mirror's when
        NATS cannot be reached or the latest is broken.  Raises ConfigError when there are no
        rules at all."""
        self.synced = True
        link = NatsLink(self.nats, "rules")
        try:
            bundle = link.call_sync(fetch, link, self.section,
                                    timeout=float(self.nats.get("connect_timeout", 2.0)) *
                                    len(self.nats.get("servers") or [1]) + 10)
        except ConfigError as exc:
            if self.state.revision:
                log.warning("rules_source: %s; running the mirrored revision %d", exc,
                            self.state.revision)
                return
            raise
        except Exception as exc:
            if self.state.revision:
                log.warning("rules_source: NATS (%s) cannot be reached (%s); running the "
                            "mirrored revision %d", link.servers, exc, self.state.revision)
                return
            raise ConfigError(f"rules_source: NATS ({link.servers}) cannot be reached and no "
                              f"rules were mirrored in {self.mirror.dir} yet: {exc}") from None
        finally:
            link.stop()
        if bundle is None:
            raise ConfigError(f"rules_source: nothing was pushed to {self.section['bucket']}"
                              f".{self.section['key']} yet",
                              hint="syswarden rules push FILE...")
        if bundle.revision != self.state.revision:
            self.take(bundle, fields)
        if not self.state.revision:
            raise ConfigError(f"rules_source: revision {bundle.revision} does not load and no "
                              f"earlier one was mirrored: {self.state.error}")

    def take(self, bundle: Bundle, fields: FieldRegistry) -> bool:
        """Mirror ``bundle`` if it loads (True); else record why not (False)."""
        try:
            check_bundle(bundle, fields)
        except RuleError as exc:
            self.state.error, self.state.error_revision = str(exc), bundle.revision
            log.error("rules_source: revision %d (pushed by %s at %s) does not load, the "
                      "running rules (revision %d) stay: %s", bundle.revision,
                      bundle.pushed_by or "?", bundle.pushed_at or "?", self.state.revision,
                      exc)
            return False
        self.mirror.install(bundle)
        self.state.revision, self.state.sha256 = bundle.revision, bundle.sha256
        self.state.error, self.state.error_revision = "", 0
        return True

    def files(self) -> list[str]:
        return [self.mirror.current]


class RulesWatcher(Service):
    """Asks the bucket for a newer revision every ``poll_interval``; loads it as SIGHUP does."""

    name = "rules-watcher"

    def __init__(self, source: RulesSource, ctx: PluginContext, interval: float) -> None:
        self.source = source
        self.ctx = ctx
        self.interval = interval
        self.link = NatsLink(source.nats, "rules")
        self._failures = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._poll()
                await trio.sleep(self.interval)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.link.stop)

    async def _poll(self) -> None:
        state = self.source.state
        try:
            bundle = await self.link.call(fetch, self.link, self.source.section)
        except Exception as exc:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                log.warning("rules_source: cannot read %s (%s: %s)",
                            self.source.section["bucket"], type(exc).__name__, exc)
            return
        self._failures = 0
        if bundle is None or bundle.revision in (state.revision, state.error_revision):
            return
        log.info("rules_source: revision %d (pushed by %s at %s)", bundle.revision,
                 bundle.pushed_by or "?", bundle.pushed_at or "?")
        took = await trio.to_thread.run_sync(self.source.take, bundle, self.ctx.fields)
        if took and self.ctx.reload is not None and not await self.ctx.reload():
            state.error = "the agent's reload failed (see its log)"
            state.error_revision = bundle.revision
