"""syswarden: a runtime security agent for Linux hosts and containers.

Kernel system-call events captured with eBPF are enriched with process and container context,
judged by Falco-compatible rules, and turned into alerts on stdout, files, syslog, programs and
webhooks.  The repository root is this package: ``core/`` is what every plugin shares,
``plugins/`` holds the built-in sources, enrichers, filters and outputs, ``commands/`` the
subcommands, ``rules/`` the default ruleset.
"""

__version__ = "0.1.0"
