"""The built-in subcommands of ``syswarden``: ``capture``, ``test-rules``, ``event-generator``.

Each module is a plugin like any other: its ``syswarden_commands`` hook returns a
:class:`~syswarden.core.protocols.Command`.  The plugin manager registers them from a list of
module paths (``BUILTIN_COMMANDS`` in ``core/plugins.py``) to read the command line, so ``core/``
names them but never imports them; a third-party plugin adds its own commands the same way
(``docs/plugins.md``).  They sit above ``core/`` beside ``plugins/``: they use the agent, the
capture format and the rules engine, and nothing in ``core/`` or ``plugins/`` uses them.
"""
