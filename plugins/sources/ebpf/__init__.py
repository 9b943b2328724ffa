"""The live eBPF source plugin (bcc: fexit programs or tracepoints).  See ``docs/ebpf.md``.

Config: the ``ebpf`` section (ring sizes, string bounds) and Falco's top-level
``syscall_event_drops`` section::

    ebpf:
      enabled: true
      evt_ring_pages: 2048     # syscall ring, 4 KiB pages (a power of two): 8 MiB
      proc_ring_pages: 1024    # process lifecycle ring: 4 MiB
      path_max: 1024           # bytes kept of a path or string argument
      argv_max: 4096           # bytes kept of an exec's argv
      max_args: 64             # argv entries kept
      pending_max: 65536       # slots for syscalls in progress (enter arguments kept)
      wakeup_every: 256        # records per CPU between two reader wake-ups
      poll_ms: 10              # the reader also reads the rings this often
      raw_fallback: false      # syscalls without a tracepoint through raw tracepoints
      args_from: auto          # syscall arguments: regs (one hook per syscall) or enter (two)
      attach: auto             # fentry (fexit programs) where the kernel allows, else tracepoint
      open_prefilter: true     # opens no loaded rule can match stay in the kernel
      socket_prefilter: true   # so do socket syscalls on families no loaded rule can match
      program_cache: /var/cache/syswarden/ebpf   # compiled programs kept between starts
    syscall_event_drops:
      threshold: 0.1           # share of events dropped in a second that triggers the actions
      actions: [log, alert]
      rate: 0.03333            # actions per second at most (token bucket) ...
      max_burst: 1             # ... with this burst
      simulate_drops: false
"""

from __future__ import annotations

from typing import Any

from syswarden.core.config import MAX_QUEUE, Key, Section
from syswarden.core.hookspecs import hookimpl

from .program import ATTACH_MODES, DEFAULTS
from .record import SNAPLEN_MAX

SECTION = "ebpf"
DROPS = "syscall_event_drops"
DROP_ACTIONS = ("log", "alert", "exit", "ignore")


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {
        SECTION: Section({
            "enabled": Key(bool, True, "capture live syscalls with eBPF"),
            "evt_ring_pages": Key(int, DEFAULTS["evt_ring_pages"], "size of the syscall ring "
                                  "buffer in 4 KiB pages (rounded up to a power of two)", min=1,
                                  max=65536),
            "proc_ring_pages": Key(int, DEFAULTS["proc_ring_pages"], "size of the process "
                                   "lifecycle ring buffer in 4 KiB pages (power of two)", min=1,
                                   max=65536),
            "path_max": Key(int, DEFAULTS["path_max"], "bytes kept of one path or string "
                            "argument (rounded up to a power of two)", min=64, max=4096),
            "argv_max": Key(int, DEFAULTS["argv_max"], "bytes kept of an exec's argv "
                            "(rounded up to a power of two)", min=256, max=4096),
            "max_args": Key(int, DEFAULTS["max_args"], "argv entries kept at most", min=1,
                            max=256),
            "snaplen": Key(int, DEFAULTS["snaplen"], "bytes kept of the data a receive "
                           "(recvfrom, recvmsg) filled, Falco's evt.buffer (Falco's snaplen)",
                           min=0, max=SNAPLEN_MAX),
            "pending_max": Key(int, DEFAULTS["pending_max"], "slots for the enter arguments of "
                               "syscalls in progress, by thread id (a power of two); two "
                               "threads sharing a slot at once lose one event (counted)",
                               min=64, max=1 << 20),
            "wakeup_every": Key(int, DEFAULTS["wakeup_every"], "records (per CPU) between two "
                                "forced wake-ups of the reader by the kernel (it also wakes "
                                "the reader with the first record after it caught up)",
                                min=1, max=65536),
            "poll_ms": Key(int, DEFAULTS["poll_ms"], "milliseconds the reader lets records "
                           "gather after a read that emptied the rings, the longest a record "
                           "waits while records keep coming", min=1, max=10_000),
            "raw_fallback": Key(bool, False, "follow the needed syscalls this kernel has "
                                "neither a tracepoint nor a function for (init_module & co. "
                                "without module support, where they fail with ENOSYS) "
                                "through raw tracepoint programs on sys_enter/sys_exit, which "
                                "every syscall of every process runs (measured: nginx 1.27x "
                                "its CPU per request); off: they are logged and not followed"),
            "args_from": Key(str, DEFAULTS["args_from"], "where an exit handler finds the "
                             "syscall's arguments: regs (the registers saved on entry; x86_64 "
                             "with BTF, kernel 5.15+: one hook per syscall, its exit), enter "
                             "(stored by an enter tracepoint: two tracepoints per syscall; not "
                             "with fexit programs), auto (regs when the kernel accepts it, else "
                             "enter)", choices=("auto", "regs", "enter")),
            "attach": Key(str, DEFAULTS["attach"], "how syscalls are followed: fentry (fexit "
                          "programs on the syscalls' kernel functions: a syscall no rule needs "
                          "costs nothing; x86_64, BTF, a kernel that allows them), tracepoint "
                          "(syscall tracepoints: every syscall of every process pays ~45 ns), "
                          "auto (fentry when the kernel runs it, else tracepoint; logged)",
                          choices=ATTACH_MODES),
            "open_prefilter": Key(bool, True, "keep in the kernel the opens no loaded rule can "
                                  "match (a condition on the flags, the path, the process "
                                  "name and the container derived from the rules; counted as "
                                  "ebpf.opens_filtered); false sends every open"),
            "socket_prefilter": Key(bool, True, "keep in the kernel the socket syscalls "
                                    "(sendto, connect, accept...) on a socket class (UNIX, "
                                    "TCP, other IP, other) no loaded rule can match for that "
                                    "syscall, the process name and the container "
                                    "(derived from the rules; counted as "
                                    "ebpf.sockets_filtered); false sends every family"),
            "program_cache": Key(str, DEFAULTS["program_cache"], "directory (root's, created "
                                 "0700) where the compiled program is kept between starts: a "
                                 "start with the same rules, kernel and bcc loads it instead "
                                 "of compiling (about 1.5 s less); empty: compiled at every "
                                 "start"),
        }, doc="the live eBPF source: ring sizes and capture bounds"),
        DROPS: Section({
            "threshold": Key(float, 0.1, "share of events dropped in one second above which "
                             "the actions run", min=0, max=1),
            "actions": Key(list, ["log", "alert"], "what to do: log, alert, exit, ignore",
                           items=str),
            "rate": Key(float, 0.03333, "actions per second at most (token bucket rate)",
                        min=0),
            "max_burst": Key(int, 1, "actions in a burst at most", min=1, max=MAX_QUEUE),
            "simulate_drops": Key(bool, False, "act as if events were dropped (testing)"),
        }, doc="Falco's syscall_event_drops: what to do when the kernel drops events"),
    }


@hookimpl
def syswarden_validate_config(config: dict[str, Any]) -> list[str] | None:
    errors = []
    drops = config.get(DROPS) or {}
    for action in drops.get("actions") or []:
        if str(action).lower() not in DROP_ACTIONS:
            errors.append(f"{DROPS}.actions: unknown action {action!r} "
                          f"(one of {', '.join(DROP_ACTIONS)})")
    return errors or None


@hookimpl
def syswarden_make_sources(ctx: Any):
    if ctx.replay_file:
        return None
    section = ctx.section(SECTION)
    if not section.get("enabled", True):
        return None
    from .source import EbpfSource, check_environment

    check_environment()
    cfg = dict(section)
    cfg["syscall_event_drops"] = ctx.section(DROPS)
    return EbpfSource(cfg, ctx.event_types, ctx.agent_pid, ctx.metrics,
                      alert=ctx.emit_alert, open_prefilter=ctx.open_prefilter,
                      socket_prefilter=ctx.socket_prefilter,
                      # read once attached: the process enricher is built after the source
                      process_names=lambda: ctx.process_names() if ctx.process_names else [])


@hookimpl
def syswarden_commands() -> list:
    from .dump import DumpEbpf

    return [DumpEbpf()]
