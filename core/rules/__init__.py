"""Falco's rule language: rules files in, alerts out.

- :mod:`.lexer`, :mod:`.parser`, :mod:`.ast`: condition text to a syntax tree (grammar in
  :mod:`.parser`'s docstring), errors with the column and a caret;
- :mod:`.loader`: rules files (lists, macros, rules, exceptions, append/override), every
  problem located at file, line and item;
- :mod:`.compiler` (with :mod:`.resolved`, :mod:`.operators`, :mod:`.typesets`,
  :mod:`.codegen`): conditions bound to field readers, folded per event type and generated as
  Python code, once;
- :mod:`.engine`: the loaded rules, the event-type index and ``check(event)``;
- :mod:`.output`: ``%field`` output formats; :mod:`.validate`: the ``-V`` report.
"""
