"""The agent's figures, as Prometheus reads them (``/metrics``) and as Falco's metrics snapshot
(``metrics.output_rule``, ``metrics.output_file``) writes them.

Every figure is computed, when asked, from what exists: the counters and gauges of
:class:`~syswarden.core.metrics.Metrics`, the agent's queues, ``/proc/self``.  Nothing is
counted a second time.  One :class:`Figure` carries both names: its Prometheus family (Falco's
name wherever the concept is Falco's, ``syswarden_`` otherwise) and its key in the snapshot's
``output_fields`` (Falco's ``falco.*``/``scap.*`` keys, ``syswarden.*`` otherwise).

The families are declared once, in :data:`FAMILIES` (their Prometheus HELP text);
docs/operations.md lists them (``tests/core/test_webserver.py`` checks it does).  Every other
counter is ``syswarden_<name>_total`` (dots as underscores), every other numeric gauge
``syswarden_<name>``.

The ``metrics`` section's switches choose the groups: ``rules_counters_enabled`` (the rule
matches), ``resource_utilization_enabled`` (CPU, memory), ``kernel_event_counters_enabled``
(events and kernel drops), ``state_counters_enabled`` (process table, containers).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .alert import HOSTNAME

if TYPE_CHECKING:
    from .agent import Agent

#: Falco's group switches (``metrics.<group>_enabled``) and what is always there
ALWAYS, RULES, RESOURCES, KERNEL, STATE = (None, "rules_counters", "resource_utilization",
                                           "kernel_event_counters", "state_counters")

#: snapshot keys shown even at 0, as Falco's (the events and drops at a glance)
ALWAYS_SHOWN = frozenset({"scap.n_evts", "scap.n_drops", "falco.outputs_queue_num_drops"})

#: Every named family: its HELP text.  Falco's names (https://falco.org/docs/metrics/,
#: falcosecurity/falco ``userspace/falco/falco_metrics.cpp``) where the concept is Falco's.
FAMILIES: dict[str, str] = {
    "falcosecurity_falco_version_info": "the agent's version (label version)",
    "falcosecurity_falco_sha256_rules_files_info": "each rules file loaded (file_name, sha256)",
    "falcosecurity_falco_sha256_config_files_info": "the config file (file_name, sha256)",
    "falcosecurity_falco_kernel_release_info": "uname -r (kernel_release)",
    "falcosecurity_evt_hostname_info": "the alerts' hostname (hostname)",
    "falcosecurity_scap_engine_name_info": "each event source (engine_name: its name)",
    "falcosecurity_falco_start_timestamp_nanoseconds": "when the agent started",
    "falcosecurity_falco_duration_seconds_total": "seconds since the agent started",
    "falcosecurity_falco_host_num_cpus_total": "CPUs online",
    "falcosecurity_falco_outputs_queue_num_drops_total":
        "alerts dropped by the outputs' queues (outputs.<name>.dropped, summed)",
    "falcosecurity_falco_rules_matches_total":
        "alerts per rule (alerts.rule.<rule>; rule_name, priority as a number, source, "
        "tag_<tag>)",
    "falcosecurity_falco_cpu_usage_ratio": "the agent's CPU time over its life, in CPUs",
    "falcosecurity_falco_memory_rss_bytes": "the agent's resident memory",
    "falcosecurity_falco_memory_vsz_bytes": "the agent's virtual memory",
    "falcosecurity_falco_memory_pss_bytes": "the agent's proportional set size",
    "falcosecurity_scap_n_evts_total": "events the sources delivered (events.in)",
    "falcosecurity_scap_n_drops_total": "events the kernel side lost (drops.kernel.*, summed)",
    "falcosecurity_scap_n_drops_buffer_total":
        "events lost per ring category (drops.kernel.<drop>; dir=exit)",
    "falcosecurity_scap_n_drops_full_threadtable_total":
        "processes evicted from a full process table (drops.process.evicted)",
    "falcosecurity_scap_n_threads_total":
        "threads in the process table (state.processes and state.threads)",
    "falcosecurity_scap_n_fds_total": "fds in the process table's fd tables (state.fds)",
    "falcosecurity_scap_n_containers_total": "containers known (enrich.container.containers)",
    "syswarden_alerts_total": "alerts raised, internal ones included (alerts.total)",
    "syswarden_stage_queue_depth":
        "what waits before a stage: batches before enrich and filter, alerts in an output's "
        "queue (stage)",
    "syswarden_stage_event_age_seconds":
        "how old the newest event of the last batch was when the stage took it (enrich) or had "
        "judged it (filter): from the kernel to the rules, where the time goes (stage)",
    "syswarden_output_alerts_total":
        "every outputs.<output>.<outcome> counter: queued, suppressed, dropped, sent, "
        "failed, retries, expired.dropped... (output, outcome)",
    "syswarden_output_backlog": "an output's gauges: spooled, held (output, state)",
    "syswarden_container_lookups_total": "container metadata lookups (runtime)",
    "syswarden_container_lookup_failures_total": "container metadata lookups failed (runtime)",
    "syswarden_rule_eval_seconds_total":
        "seconds the filter stage spent judging the events it timed, the last of each batch, "
        "their alerts' formatting and queueing to the outputs included "
        "(rules.eval_ns.<type>; evt_type)",
    "syswarden_rule_eval_events_total":
        "the events the filter stage timed (rules.eval_events.<type>; evt_type): seconds over "
        "events is the rule engine's mean time per event of that type",
    "syswarden_drops_total": "every other drops.<where>.<reason> counter (where, reason)",
}
OTHER_HELP = "a syswarden counter or gauge of the same name, dots as underscores"


@dataclass(frozen=True)
class Figure:
    """One value: its Prometheus family and labels, its snapshot key (None: not in the
    snapshot) and value there (default: the value)."""

    family: str
    kind: str                       # "counter" or "gauge"
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    shown: Any = None
    group: str | None = ALWAYS

    @property
    def field_value(self) -> Any:
        return self.value if self.shown is None else self.shown


def version() -> str:
    try:
        return importlib.metadata.version("syswarden")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


_DIGESTS: dict[str, tuple[int, int, str]] = {}      # path -> (mtime_ns, size, sha256)


def _sha256(path: str) -> str | None:
    """The file's sha256, read again only when its size or modification time changed (a rule
    edit before a SIGHUP reload shows at the next scrape, as Falco's after its reload)."""
    try:
        st = os.stat(path)
        known = _DIGESTS.get(path)
        if known is None or known[:2] != (st.st_mtime_ns, st.st_size):
            with open(path, "rb") as fh:
                known = (st.st_mtime_ns, st.st_size, hashlib.file_digest(fh, "sha256").hexdigest())
            _DIGESTS[path] = known
        return known[2]
    except OSError:
        return None


def _files(paths: Iterable[str]) -> Iterator[str]:
    """The files of ``paths``, a directory's ``*.yaml``/``*.yml`` in name order."""
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith((".yaml", ".yml")):
                    yield os.path.join(path, name)
        else:
            yield path


def _proc_status() -> dict[str, int]:
    """VmRSS, VmSize (kB) from /proc/self/status, Pss (kB) from smaps_rollup."""
    out: dict[str, int] = {}
    for path, keys in (("/proc/self/status", ("VmRSS", "VmSize")),
                       ("/proc/self/smaps_rollup", ("Pss",))):
        try:
            with open(path) as fh:
                for line in fh:
                    name, _, rest = line.partition(":")
                    if name in keys:
                        out[name] = int(rest.split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def _snake(text: str) -> str:
    """A Prometheus name part: every character outside [a-zA-Z0-9_] as ``_``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


class Figures:
    """The figures of one agent (:meth:`collect`), with what is fixed computed once."""

    def __init__(self, agent: "Agent", switches: dict[str, Any] | None = None) -> None:
        self.agent = agent
        self.switches = switches or {}
        self.started_ns = time.time_ns()
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()
        self.kernel_release = os.uname().release
        rules = agent.config.get("rules_file") or []
        if not rules:
            from .config import default_rules_path
            rules = [default_rules_path()]
        self.rules_paths = list(rules)
        cfg = agent.config.get("_config_file")
        self.config_paths = [cfg] if cfg else []

    def enabled(self, group: str | None) -> bool:
        return group is None or bool(self.switches.get(f"{group}_enabled", True))

    def collect(self) -> list[Figure]:
        return [f for f in self._all() if self.enabled(f.group)]

    def _all(self) -> Iterator[Figure]:
        agent = self.agent
        snap = agent.metrics.snapshot()
        counters = {k: v for k, v in snap.items() if isinstance(v, int)
                    and not isinstance(v, bool)}
        used: set[str] = set()

        def take(name: str) -> int:
            used.add(name)
            return int(counters.get(name, 0))

        yield Figure("falcosecurity_falco_version_info", "gauge", 1, {"version": version()},
                     "falco.version", version())
        for kind, paths in (("rules", self.rules_paths), ("config", self.config_paths)):
            for path in _files(paths):
                digest = _sha256(path)
                if digest is None:
                    continue
                stem = os.path.splitext(os.path.basename(path))[0]
                yield Figure(f"falcosecurity_falco_sha256_{kind}_files_info", "gauge", 1,
                             {"file_name": os.path.basename(path), "sha256": digest},
                             f"falco.sha256_{kind}_file.{stem}", digest)
        yield Figure("falcosecurity_falco_kernel_release_info", "gauge", 1,
                     {"kernel_release": self.kernel_release}, "falco.kernel_release",
                     self.kernel_release)
        yield Figure("falcosecurity_evt_hostname_info", "gauge", 1, {"hostname": HOSTNAME},
                     "evt.hostname", HOSTNAME)
        for source in agent.sources:
            yield Figure("falcosecurity_scap_engine_name_info", "gauge", 1,
                         {"engine_name": source.name, "evt_source": "syscall"},
                         "scap.engine_name", source.name)
        yield Figure("falcosecurity_falco_start_timestamp_nanoseconds", "gauge",
                     self.started_ns, key="falco.start_ts")
        yield Figure("falcosecurity_falco_duration_seconds_total", "counter",
                     int(time.monotonic() - self._wall0), key="falco.duration_sec")
        yield Figure("falcosecurity_falco_host_num_cpus_total", "gauge", os.cpu_count() or 1,
                     key="falco.host_num_cpus")
        names = [r.name for r in agent.runners]
        yield Figure("falcosecurity_falco_outputs_queue_num_drops_total", "counter",
                     sum(counters.get(f"outputs.{n}.dropped", 0) for n in names),
                     key="falco.outputs_queue_num_drops")

        # rules
        yield Figure("syswarden_alerts_total", "counter", take("alerts.total"),
                     key="falco.rules.matches_total", group=RULES)
        for name, value in counters.items():
            if not name.startswith("alerts.rule."):
                continue
            used.add(name)
            rule = name[len("alerts.rule."):]
            priority, source, tags = agent.metrics.rules.get(rule, (6, "syscall", ()))
            labels = {"rule_name": rule, "priority": str(priority), "source": source}
            labels.update({f"tag_{_snake(t)}": "true" for t in tags})
            yield Figure("falcosecurity_falco_rules_matches_total", "counter", value, labels,
                         f"falco.rules.{_snake(rule)}", group=RULES)

        # resources
        cpu = (time.process_time() - self._cpu0) / max(1e-9, time.monotonic() - self._wall0)
        yield Figure("falcosecurity_falco_cpu_usage_ratio", "gauge", round(cpu, 4),
                     key="falco.cpu_usage_perc", shown=round(cpu * 100, 1), group=RESOURCES)
        mb = bool(self.switches.get("convert_memory_to_mb", True))
        status = _proc_status()
        for proc_key, part in (("VmRSS", "rss"), ("VmSize", "vsz"), ("Pss", "pss")):
            kb = status.get(proc_key)
            if kb is not None:
                yield Figure(f"falcosecurity_falco_memory_{part}_bytes", "gauge", kb * 1024,
                             key=f"falco.memory_{part}_{'mb' if mb else 'kb'}",
                             shown=round(kb / 1024, 1) if mb else kb, group=RESOURCES)

        # kernel events and drops
        yield Figure("falcosecurity_scap_n_evts_total", "counter", take("events.in"),
                     key="scap.n_evts", group=KERNEL)
        kernel = {k[len("drops.kernel."):]: v for k, v in counters.items()
                  if k.startswith("drops.kernel.")}
        used.update(f"drops.kernel.{k}" for k in kernel)
        yield Figure("falcosecurity_scap_n_drops_total", "counter", sum(kernel.values()),
                     key="scap.n_drops", group=KERNEL)
        for category in sorted(kernel):
            yield Figure("falcosecurity_scap_n_drops_buffer_total", "counter",
                         kernel.get(category, 0), {"dir": "exit", "drop": category},
                         f"scap.n_drops_buffer_{category}_exit", group=KERNEL)

        # state: process table, containers
        yield Figure("falcosecurity_scap_n_drops_full_threadtable_total", "counter",
                     take("drops.process.evicted"), key="scap.n_drops_full_threadtable",
                     group=STATE)
        processes, threads, fds = (snap.get(f"state.{k}") for k in ("processes", "threads", "fds"))
        if isinstance(processes, int) and isinstance(threads, int) and isinstance(fds, int):
            used.update(("state.processes", "state.threads", "state.fds"))
            yield Figure("falcosecurity_scap_n_threads_total", "gauge", processes + threads,
                         key="scap.n_threads", group=STATE)
            yield Figure("falcosecurity_scap_n_fds_total", "gauge", fds, key="scap.n_fds",
                         group=STATE)
        containers = snap.get("enrich.container.containers")
        if isinstance(containers, int):
            used.add("enrich.container.containers")
            yield Figure("falcosecurity_scap_n_containers_total", "gauge", containers,
                         key="scap.n_containers", group=STATE)

        # syswarden's own
        inputs = agent.stage_inputs
        for stage in ("enrich", "filter"):
            if stage in inputs:
                yield Figure("syswarden_stage_queue_depth", "gauge",
                             inputs[stage].statistics().current_buffer_used, {"stage": stage},
                             f"syswarden.stage.{stage}.queue_depth")
        for stage in ("enrich", "filter"):
            age = snap.get(f"latency.{stage}")
            if isinstance(age, int):
                used.add(f"latency.{stage}")
                yield Figure("syswarden_stage_event_age_seconds", "gauge", age / 1e9,
                             {"stage": stage}, f"syswarden.stage.{stage}.event_age_s")
        for runner in agent.runners:
            yield Figure("syswarden_stage_queue_depth", "gauge", runner.pending(),
                         {"stage": f"output {runner.name}"},
                         f"syswarden.outputs.{runner.name}.queue_depth")
        for name, value in list(snap.items()):
            out = next((n for n in names if name.startswith(f"outputs.{n}.")), None)
            if out is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            used.add(name)
            what = name[len(f"outputs.{out}."):]
            if name in counters:
                yield Figure("syswarden_output_alerts_total", "counter", value,
                             {"output": out, "outcome": what}, f"syswarden.{name}")
            else:
                yield Figure("syswarden_output_backlog", "gauge", value,
                             {"output": out, "state": what}, f"syswarden.{name}")
        for what, family in (("lookups", "syswarden_container_lookups_total"),
                             ("lookup_failures", "syswarden_container_lookup_failures_total")):
            key = f"enrich.container.{what}"
            yield Figure(family, "counter", take(key), {}, f"syswarden.{key}")
        for name, value in counters.items():
            if name.startswith("rules.eval_events."):
                used.add(name)
                evt_type = name[len("rules.eval_events."):]
                yield Figure("syswarden_rule_eval_events_total", "counter", value,
                             {"evt_type": evt_type}, f"syswarden.{name}")
                yield Figure("syswarden_rule_eval_seconds_total", "counter",
                             take(f"rules.eval_ns.{evt_type}") / 1e9, {"evt_type": evt_type},
                             f"syswarden.rules.eval_seconds.{evt_type}")
        for name, value in counters.items():
            if name in used:
                continue
            if name.startswith("drops."):
                where, _, reason = name[len("drops."):].partition(".")
                yield Figure("syswarden_drops_total", "counter", value,
                             {"where": where, "reason": reason or where}, f"syswarden.{name}")
            else:
                yield Figure(f"syswarden_{_snake(name)}_total", "counter", value,
                             key=f"syswarden.{name}")
        for name, value in snap.items():
            if name in used or name in counters or isinstance(value, bool) \
                    or not isinstance(value, (int, float)):
                continue
            yield Figure(f"syswarden_{_snake(name)}", "gauge", value, key=f"syswarden.{name}")

    def snapshot_fields(self) -> dict[str, Any]:
        """Falco's metrics snapshot ``output_fields``: each figure under its key (counters at 0
        only with ``include_empty_values``, as Falco's)."""
        fields: dict[str, Any] = {"evt.source": "syscall", "evt.time": time.time_ns()}
        empty = bool(self.switches.get("include_empty_values", False))
        for fig in self.collect():
            if fig.key is not None and (empty or fig.value or fig.kind == "gauge"
                                        or fig.key in ALWAYS_SHOWN):
                fields[fig.key] = fig.field_value
        return dict(sorted(fields.items()))


class FiguresCollector(Collector):
    """:class:`Figures` for prometheus_client's registry: families made at each scrape."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for fig in self.figures.collect():
            metric = families.get(fig.family)
            if metric is None:
                base = fig.family[:-len("_total")] if fig.kind == "counter" else fig.family
                metric = families[fig.family] = Metric(base, FAMILIES.get(fig.family, OTHER_HELP),
                                                       fig.kind)
            sample = metric.name + "_total" if fig.kind == "counter" else metric.name
            metric.add_sample(sample, fig.labels, fig.value)
        yield from families.values()
