"""``syswarden test-rules TEST.yaml...``: run rule test files (their format:
:mod:`syswarden.core.ruletest`, and ``docs/rules.md``).

The command prints PASS/FAIL per case, and for a failure what was expected and what came; it
returns 0 when every case passed, 1 when one failed, 2 when a test file or its rules cannot be
loaded (the error names the file and line).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from syswarden.core.errors import SyswardenError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Command
from syswarden.core.ruletest import Runner, load_test_file

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def run_file(runner: Runner, path: str, out: TextIO) -> tuple[int, int, bool]:
    """Run one test file; returns (passed, failed, loaded)."""
    try:
        test = load_test_file(path, runner.config)
    except SyswardenError as exc:
        located = exc.location is not None and exc.location.file
        print(f"ERROR {exc}" if located else f"ERROR {path}: {exc}", file=out)
        return 0, 0, False
    try:
        engine = runner.engine(test)
    except SyswardenError as exc:
        print(f"ERROR {path}: its rules cannot be loaded: {exc}", file=out)
        return 0, 0, False
    print(path, file=out)
    passed = failed = 0
    for case in test.cases:
        result = runner.run_case(engine, case)
        if result.passed:
            passed += 1
            print(f"  PASS  {case.name}", file=out)
            continue
        failed += 1
        print(f"  FAIL  {case.name}  ({case.location.file}:{case.location.line})", file=out)
        expected = ", ".join(str(e) for e in case.expected) or "silence"
        print(f"        expected: {expected}", file=out)
        got = "; ".join(f"{a.rule} ({a.priority.label})" for a in result.alerts) or "silence"
        print(f"        got:      {got}", file=out)
        for problem in result.problems:
            print(f"        - {problem}", file=out)
    return passed, failed, True


def main(paths: list[str], config: dict[str, Any], out: TextIO | None = None) -> int:
    """Run every test file; print PASS/FAIL per case and a summary; return the exit code."""
    out = out or sys.stdout
    runner = Runner(config)
    passed = failed = errors = 0
    for path in paths:
        p, f, loaded = run_file(runner, path, out)
        passed, failed, errors = passed + p, failed + f, errors + (not loaded)
    summary = f"{passed} passed, {failed} failed"
    if errors:
        summary += f", {errors} test file(s) could not be loaded"
    print(summary, file=out)
    if errors:
        return EXIT_ERROR
    return EXIT_FAILED if failed else EXIT_OK


class RuleTestCommand(Command):
    name = "test-rules"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="TEST.yaml")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        return main(args.files, config)


@hookimpl
def syswarden_commands() -> list[Command]:
    return [RuleTestCommand()]
