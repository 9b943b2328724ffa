"""What the gRPC engines (containerd, CRI) share: a channel on a unix socket, calls run in a
thread (grpcio's blocking API; its asyncio API needs asyncio, the agent runs trio), errors
turned into :class:`~..engine.EngineUnavailable`, and the OCI runtime spec read as Falco reads
it.

A unary call is bounded by the engine's ``timeout``; a stream is read one message per thread
hop and cancelled when the trio task is.  ``NOT_FOUND`` is an answer (None),
``UNIMPLEMENTED`` is :class:`Unimplemented` (the runtime serves no such method: an older one,
or a feature it has off), every other failure means the runtime cannot be asked now.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

import grpc
import trio

from syswarden.core.event import Mount

from ..engine import EngineUnavailable


class Unimplemented(EngineUnavailable):
    """The runtime does not serve this method."""


def _failure(socket: str, exc: grpc.RpcError) -> EngineUnavailable:
    unimplemented = exc.code() == grpc.StatusCode.UNIMPLEMENTED if hasattr(exc, "code") \
        else False
    return (Unimplemented if unimplemented else EngineUnavailable)(f"{socket}: {describe(exc)}")


class GrpcLink:
    """A gRPC channel to ``unix://socket`` and calls on it from trio."""

    def __init__(self, socket: str, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            f"unix://{socket}",
            options=[("grpc.max_receive_message_length", 16 << 20),
                     ("grpc.enable_retries", 0)])

    def close(self) -> None:
        self.channel.close()

    async def call(self, method: Callable[..., Any], request: Any,
                   metadata: tuple[tuple[str, str], ...] | None = None,
                   not_found: bool = False) -> Any:
        """``method(request)`` in a thread; None for NOT_FOUND when ``not_found``."""
        def run() -> Any:
            return method(request, timeout=self.timeout, metadata=metadata)
        try:
            return await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        except grpc.RpcError as exc:
            if not_found and exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _failure(self.socket, exc) from None

    async def stream(self, method: Callable[..., Any], request: Any,
                     metadata: tuple[tuple[str, str], ...] | None = None
                     ) -> AsyncIterator[Any]:
        """The messages of a server stream until it ends; EngineUnavailable when it breaks."""
        call = method(request, metadata=metadata)
        done = object()

        def next_message() -> Any:
            return next(call, done)
        try:
            while True:
                try:
                    msg = await trio.to_thread.run_sync(next_message, abandon_on_cancel=True)
                except grpc.RpcError as exc:
                    raise _failure(self.socket, exc) from None
                if msg is done:
                    return
                yield msg
        finally:
            call.cancel()


def describe(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else ""
    name = code.name if code is not None else "error"
    return f"{name}: {details}" if details else name


# -- the OCI runtime spec ---------------------------------------------------------------------


def spec_facts(spec: dict[str, Any]) -> dict[str, Any]:
    """What Falco's containerd engine reads in an OCI spec: every mount (mode from a ``mode=``
    option, read-write unless ``ro``, the propagation of the root filesystem), the user's uid,
    host namespaces (a namespace the spec does not list is the host's), privileged (as
    containerd's ``WithPrivileged`` leaves a spec: no masked or read-only paths, no SELinux
    label, no AppArmor profile or ``unconfined``, no seccomp, sysfs and cgroup mounted
    read-write)."""
    linux = spec.get("linux") or {}
    process = spec.get("process") or {}
    propagation = str(linux.get("rootfsPropagation") or "")
    mounts = []
    for m in spec.get("mounts") or []:
        if not isinstance(m, dict):
            continue
        options = [str(o) for o in m.get("options") or []]
        mode = next((o[5:] for o in options if o.startswith("mode=")), "")
        mounts.append(Mount(source=str(m.get("source") or ""),
                            dest=str(m.get("destination") or ""), mode=mode,
                            rw="ro" not in options, propagation=propagation))
    namespaces = {str(n.get("type")) for n in linux.get("namespaces") or []
                  if isinstance(n, dict)}
    user = process.get("user") or {}
    return {
        "mounts": mounts,
        "user": str(user.get("uid", 0)),
        "host_pid": "pid" not in namespaces,
        "host_network": "network" not in namespaces,
        "host_ipc": "ipc" not in namespaces,
        "privileged": _privileged(spec, linux, process),
    }


def _privileged(spec: dict[str, Any], linux: dict[str, Any], process: dict[str, Any]) -> bool:
    if not linux or not process:
        return False
    if linux.get("maskedPaths") is not None or linux.get("readonlyPaths") is not None \
            or process.get("selinuxLabel") or linux.get("seccomp") is not None \
            or process.get("apparmorProfile") not in (None, "", "unconfined"):
        return False
    return not any(m.get("type") in ("sysfs", "cgroup") and "ro" in (m.get("options") or [])
                   for m in spec.get("mounts") or [] if isinstance(m, dict))


def json_or_empty(text: str | bytes | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
