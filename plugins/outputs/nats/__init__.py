"""The ``nats`` output plugin: alerts into a NATS JetStream stream (see :mod:`.output`).

It declares the ``nats`` section (the connection, shared with the fleet plugin's rules source
and heartbeat: :mod:`.connection`) and ``nats_output``.  See docs/fleet.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syswarden.core.config import MAX_QUEUE, Key, Section
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import build_if_enabled, output_schema
from syswarden.core.safe_files import mode_key

from .connection import NATS_SECTION, duration_key, seconds

if TYPE_CHECKING:
    from .output import NatsOutput

__all__ = ["NatsOutput"]


def __getattr__(name: str) -> Any:
    """``NatsOutput``, imported when first asked for: its module brings asyncio and
    SQLite, which an agent without the nats output does not need to start."""
    if name == "NatsOutput":
        from .output import NatsOutput  # noqa: PLC0415
        return NatsOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    out = {"nats": NATS_SECTION}
    out.update(output_schema(
        "nats_output", "alerts into a NATS JetStream stream (docs/fleet.md)",
        Key(bool, False, "publish alerts to the stream"),
        stream=Key(str, "SYSWARDEN_ALERTS", "the JetStream stream"),
        subject_prefix=Key(str, "syswarden", "alerts go to PREFIX.alerts.HOSTNAME.PRIORITY"),
        create_stream=Key(bool, True, "create the stream when it does not exist"),
        replicas=Key(int, 3, "replicas of a stream this output creates", min=1, max=5),
        max_age=duration_key("30d", "how long a created stream keeps alerts; 0: for ever"),
        duplicate_window=duration_key("2m", "a created stream's de-duplication window"),
        max_in_flight=Key(int, 256, "publishes awaiting their ack at once; 1: strictly in "
                          "order", min=1, max=65536),
        retry_max=Key(float, 5.0, "longest wait between two attempts while NATS fails, "
                      "seconds", min=0.1, max=3600),
        queue_file=Key(str, "", "the on-disk spool (default "
                                "/var/lib/syswarden/nats-alerts.sqlite3)"),
        queue_mode=mode_key("permissions of the spool and SQLite's side files"),
        queue_max=Key(int, 1_000_000, "alerts kept in the spool; beyond, the oldest are "
                      "dropped", min=1, max=10 * MAX_QUEUE)))
    return out


def _build(config: dict[str, Any], section: dict[str, Any], metrics: Any) -> NatsOutput:
    from .output import NatsOutput  # noqa: PLC0415

    section = dict(section, max_age=seconds(section["max_age"]),
                   duplicate_window=seconds(section["duplicate_window"]))
    return NatsOutput(config, section, metrics)


@hookimpl
def syswarden_make_outputs(ctx: Any) -> NatsOutput | None:
    return build_if_enabled(ctx, "nats_output", _build)
