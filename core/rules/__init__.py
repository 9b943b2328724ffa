"""Falco's rule language: rules files in, alerts out.

- :mod:`.lexer`, :mod:`.parser`, :mod:`.ast`: condition text to a syntax tree (grammar in
  :mod:`.parser`'s docstring), errors with the column and a caret;
- :mod:`.loader`: rules files (lists, macros, rules, exceptions, append/override), every
  problem located at file, line and item;
- :mod:`.operators`: the registry of operators, one declaration each, that the lexer, the
  parser, the compiler, code generation and exceptions read (docs/operators.md is generated
  from it by :mod:`.operators_doc`);
- :mod:`.compiler` (with :mod:`.resolved`, :mod:`.typesets`, :mod:`.codegen`): conditions
  bound to field readers, folded per event type and generated as Python code, once;
- :mod:`.engine`: the loaded rules, the event-type index and ``check(event)``;
- :mod:`.output`: ``%field`` output formats; :mod:`.validate`: the ``-V`` report.
"""
