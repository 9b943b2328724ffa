"""The container cache's bounded waits: how long an event's batch waits for a lookup."""

from __future__ import annotations

import pytest
import trio

from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.cache import ContainerCache
from syswarden.core.cgroups import ContainerRef

REF = ContainerRef("0123456789ab", "0123456789ab" * 5 + "0123", "docker")


async def test_a_lookup_the_daemon_announced_is_waited_for_from_when_an_event_needs_it(
        autojump_clock):
    """Docker's ``create`` starts a lookup; the container's first process is judged later (a
    loaded machine): its batch still waits up to lookup_wait for the answer."""
    cache = ContainerCache(Metrics(), lookup_wait=0.2)
    pend = cache.request(REF, force=True, background=True)
    await trio.sleep(1.0)                               # the lookup is slow, the event late
    now = trio.current_time()
    assert cache.needed(pend, now)                      # worth waiting for: from now on
    assert pend.deadline == now + 0.2
    assert cache.needed(pend, now + 0.1)
    assert not cache.needed(pend, now + 0.3)            # waited for once, not again


async def test_a_lookup_an_event_asked_for_waits_from_that_event(autojump_clock):
    cache = ContainerCache(Metrics(), lookup_wait=0.2)
    pend = cache.request(REF)
    await trio.sleep(1.0)
    assert not cache.needed(pend, trio.current_time())  # its wait is over


async def test_a_batch_waits_until_the_lookup_ends_or_its_deadline(autojump_clock):
    cache = ContainerCache(Metrics(), lookup_wait=0.2)
    pend = cache.request(REF, background=True)
    cache.needed(pend, trio.current_time())
    start = trio.current_time()
    await cache.wait([pend])                            # nobody answers: the deadline ends it
    assert trio.current_time() - start == pytest.approx(0.2)
    again = cache.request(ContainerRef("ba9876543210", "", "docker"), background=True)
    cache.needed(again, trio.current_time())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.wait, [again])
        await trio.sleep(0.05)
        cache.finish("ba9876543210")                    # answered: the wait ends at once
    assert trio.current_time() - start == pytest.approx(0.25)
