"""``syswarden --dump-ebpf``: the eBPF program the loaded rules need, as this machine would
load it (bcc's tools print theirs with ``--ebpf``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from syswarden.core.cli import EXIT_OK
from syswarden.core.protocols import Flag

if TYPE_CHECKING:
    from syswarden.core.agent import Agent


class DumpEbpf(Flag):
    flag = "--dump-ebpf"
    help = "print the eBPF program the loaded rules need and exit"

    def run(self, args: argparse.Namespace, agent: Agent) -> int:
        from .program import render_program
        from .source import resolved_config

        agent.build(["filters"])
        ebpf = resolved_config(dict(agent.config.get("ebpf") or {}))     # what would run here
        prefilter = agent.open_prefilter() if ebpf.get("open_prefilter", True) else None
        sock = agent.socket_prefilter() if ebpf.get("socket_prefilter", True) else None
        print(render_program(agent.event_types(), ebpf, open_prefilter=prefilter,
                             socket_prefilter=sock))
        return EXIT_OK
