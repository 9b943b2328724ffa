"""The event generator's actions for Falco's own rule files (stable, incubating, sandbox): one
module per kind of behaviour, each action naming the Falco rules it must trigger.

``FALCO_ACTIONS`` is every such action, in the order the generator runs them; ``UNREACHABLE``
names each Falco rule no action can trigger on a machine like the project's test machines, and
why (``docs/falco-rules.md`` is generated from both: ``python -m syswarden.commands.actions
--write``).  ``AWAITING`` names the rules an action triggers whose alert syswarden does not raise
yet, with the missing piece (``RACES``: those it raises now and then, by a race).
"""

from __future__ import annotations

from typing import Callable

from . import containers, files, network, processes, syscalls
from .base import FalcoAction, perform_each

FALCO_ACTIONS: tuple[FalcoAction, ...] = (
    *files.ACTIONS, *processes.ACTIONS, *syscalls.ACTIONS, *network.ACTIONS,
    *containers.ACTIONS)

NO_PRIVILEGED = ("no privileged containers: runc cannot start a --privileged container where "
                 "CAP_SYS_RESOURCE is not in the capability bounding set")
UNREACHABLE: dict[str, str] = {
    "Debugfs Launched in Privileged Container": NO_PRIVILEGED,
    "Mount Launched in Privileged Container": NO_PRIVILEGED,
    "Launch Privileged Container": NO_PRIVILEGED,
    "Contact cloud metadata service from container":
        "never fires with Falco's default rule_matching (first): Contact EC2 Instance Metadata "
        "Service From Container, before it in the same file, has the same condition and takes "
        "its every event",
    "Network Connection outside Local Subnet":
        "no Kubernetes namespaces, and Falco's list namespace_scope_network_only_subnet is "
        "empty: the rule fires only once a user names namespaces",
    "Detect outbound connections to common miner pool ports":
        "no outbound network: the miner pools' names resolve to no address here",
    "Container Run as Root User":
        "never fires with Falco's default rule_matching (first): Launch Sensitive Mount "
        "Container, before it in the same file, takes every container start (a "
        "container.mount.dest[...] that extracts nothing makes its `not ... in (<NA>, N/A)` "
        "true)",
    "Launch Disallowed Container":
        "never fires as Falco ships it: its macro allowed_containers is `container.id "
        "exists`, true for every container, meant to be overridden by the user",
}

#: rules an action triggers that syswarden does not raise yet: the piece they wait for
AWAITING: dict[str, str] = {}


#: of ``AWAITING``, the rules whose alert depends on a race today (not a strict xfail)
RACES: set[str] = set()


def by_name() -> dict[str, FalcoAction]:
    return {a.name: a for a in FALCO_ACTIONS}


def rule_actions() -> dict[str, list[FalcoAction]]:
    """Each Falco rule an action triggers -> those actions."""
    out: dict[str, list[FalcoAction]] = {}
    for action in FALCO_ACTIONS:
        for rule in action.rules:
            out.setdefault(rule, []).append(action)
    return out


def run_falco_actions(names: list[str], container: str | None = None,
                      report: Callable[[str], None] = print,
                      before: Callable[[FalcoAction], None] | None = None,
                      after: Callable[[FalcoAction, str], None] | None = None
                      ) -> dict[str, str]:
    """Run the named Falco actions (all when empty), in order; return name -> "ok" |
    "skipped: why" | "failed: why".  ``before`` and ``after`` are called around each."""
    actions = by_name()
    unknown = [n for n in names if n not in actions]
    if unknown:
        raise KeyError(", ".join(unknown))
    chosen = [actions[n] for n in names] if names else list(FALCO_ACTIONS)
    return perform_each(chosen, container, lambda action, run: action.perform(run),
                        lambda action: "; ".join(action.rules), report, before, after)
