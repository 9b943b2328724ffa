"""A webhook output in its own process, for the crash test: it is killed with SIGKILL.

``python spool_child.py QUEUE_FILE URL FIRST COUNT``: runs the output behind an OutputRunner,
offers alerts FIRST..FIRST+COUNT-1 (uuid ``crash-<i>``), prints ``offered``, then runs until
killed, delivering what it can.
"""

from __future__ import annotations

import sys
import time

import trio

from syswarden.core.alert import Alert, Priority
from syswarden.core.metrics import Metrics
from syswarden.core.outputs import OutputRunner
from syswarden.plugins.outputs.webhook import WebhookOutput, webhook_section


async def main(queue_file: str, url: str, first: int, count: int) -> None:
    config = {"json_output": True, "priority": "debug", "outputs": {"rate": 0, "max_burst": 1},
              "pipeline": {"output_queue": 10000, "shutdown_grace": 5.0}}
    section = webhook_section(True).defaults()
    section.update(name="crash", url=url, queue_file=queue_file, retry_initial=0.1,
                   retry_max=0.5, max_in_flight=1)           # in order: old ones first
    out = WebhookOutput(config, section, Metrics())
    runner = OutputRunner.for_output(out, config, Metrics())
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        for i in range(first, first + count):
            runner.offer(Alert("Crash test", Priority.WARNING, f"alert {i}", time.time_ns(),
                               {"seq": i}, uuid=f"crash-{i}"))
        print("offered", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
