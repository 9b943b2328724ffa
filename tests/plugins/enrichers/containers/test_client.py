"""The Docker Engine API client against the real daemon, and against a socket that is not there."""

from __future__ import annotations

import pytest
import trio

from syswarden.plugins.enrichers.containers.engines.docker import DockerClient, DockerUnavailable
from tests.helpers.docker import in_thread, unique_name

pytestmark = pytest.mark.docker




async def test_ping_inspect_list(containers) -> None:
    c = await in_thread(containers.run, "alpine:latest")
    async with DockerClient() as client:
        assert (await client.ping()).startswith("1.")
        doc = await client.inspect(c.id)
        assert doc["Id"] == c.id and doc["Name"] == "/" + c.name
        assert (await client.inspect(c.short_id))["Id"] == c.id
        assert await client.inspect("0" * 64) is None
        assert c.id in await client.list_ids()


async def test_event_stream_sees_create_and_start(containers) -> None:
    name = unique_name("evt")
    seen: list[str] = []
    async with DockerClient() as client:
        async with trio.open_nursery() as nursery:
            async def follow() -> None:
                async for doc in client.events():
                    if (doc.get("Actor") or {}).get("Attributes", {}).get("name") == name:
                        seen.append(doc["Action"])
                        if doc["Action"] == "start":
                            return
            nursery.start_soon(follow)
            await trio.sleep(0.2)           # let the stream open before the container exists
            with trio.fail_after(60):
                await in_thread(containers.run, "alpine:latest", name=name)
    assert seen[:2] == ["create", "start"]


@pytest.mark.parametrize("path", ["/nonexistent/docker.sock", "/etc/hostname"])
async def test_unreachable_socket_is_one_error(path: str) -> None:
    async with DockerClient(path, timeout=1.0) as client:
        with pytest.raises(DockerUnavailable, match=path):
            await client.ping()
        with pytest.raises(DockerUnavailable):
            await client.inspect("abc")
        with pytest.raises(DockerUnavailable):
            async for _ in client.events():
                pass
