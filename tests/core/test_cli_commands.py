"""Commands added by plugins (``syswarden_commands``): the example of docs/plugins.md, installed
as a third-party distribution, adds a subcommand and a flag; the built-in commands come the same
way; names taken twice are refused; ``core/`` imports no command and no plugin."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import textwrap

import pytest

from syswarden.core.cli import installed_commands
from syswarden.testing import SYSWARDEN as CLI
from tests.helpers.paths import REPO

DOC = REPO / "docs" / "plugins.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [block] = [b for b in blocks if "def syswarden_commands" in b]
    return block


def install(site: pathlib.Path, module: str, source: str, dist: str = "sw-cmd-example") -> None:
    """A real installed distribution: the module and its dist-info with the entry point."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[syswarden]\n{module} = {module}\n")
    (info / "RECORD").write_text("")


def run(site: pathlib.Path | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def site(tmp_path) -> pathlib.Path:
    site = tmp_path / "site"
    install(site, "field_tools", example_source())
    return site


def test_the_documented_subcommand_runs(site):
    out = run(site, "fields-like", "proc.pname")
    assert out.returncode == 0, out.stderr
    assert "proc.pname" in out.stdout.split()
    assert all("proc.pname" in line for line in out.stdout.splitlines())
    missing = run(site, "fields-like", "no.such.field")
    assert missing.returncode == 1 and missing.stdout == ""


def test_the_documented_subcommand_has_its_help_and_the_common_options(site):
    out = run(site, "fields-like", "--help")
    assert out.returncode == 0
    assert out.stdout.startswith("usage: syswarden fields-like [-h] [-c FILE] [-o KEY=VALUE]")
    assert "list the fields whose name contains WORD" in out.stdout
    bad = run(site, "fields-like", "-o", "json_output=perhaps", "x")
    assert bad.returncode == 2 and "json_output must be a boolean" in bad.stderr


def test_the_documented_flag_runs_instead_of_the_agent(site, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: Two syscalls\n  desc: d\n  condition: evt.type in (open, openat)\n"
                     "  output: x\n  priority: INFO\n")
    out = run(site, "-r", str(rules), "--count-syscalls")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert "syswarden ready" not in out.stderr


def test_help_lists_the_added_subcommand_and_flag(site):
    out = run(site, "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "Subcommands: capture, test-rules, event-generator, rules, fleet, fields-like" in text
    assert "--count-syscalls print how many syscalls the loaded rules need and exit" in text


def test_a_plugin_named_in_the_config_adds_no_command(tmp_path):
    module = tmp_path / "field_tools.py"
    module.write_text(example_source())
    config = tmp_path / "config.yaml"
    config.write_text(f"plugins: [{module}]\n")
    out = run(None, "-c", str(config), "fields-like", "proc.name")
    assert out.returncode == 2 and "unrecognized arguments: fields-like" in out.stderr


BAD_PLUGINS = {
    "a command name taken": (
        "class C(Command):\n    name = 'capture'\n",
        "C()", "the command 'capture' is declared by two plugins (capture and bad_cmds)"),
    "a flag taken": (
        "class F(Flag):\n    flag = '--dry-run'\n",
        "F()", "plugin 'bad_cmds': the flag --dry-run is already taken"),
    "another plugin's flag": (
        "class F(Flag):\n    flag = '--dump-ebpf'\n",
        "F()", "plugin 'bad_cmds': the flag --dump-ebpf is already taken"),
    "a flag without dashes": (
        "class F(Flag):\n    flag = 'shout'\n",
        "F()", "plugin 'bad_cmds': the flag 'shout' must start with --"),
    "not a command": ("", "object()", "syswarden_commands returned <object object"),
}


@pytest.mark.parametrize("case", BAD_PLUGINS, ids=list(BAD_PLUGINS))
def test_a_broken_command_plugin_is_a_plugin_error(tmp_path, case):
    body, returned, message = BAD_PLUGINS[case]
    source = textwrap.dedent("""\
        from syswarden.core.hookspecs import hookimpl
        from syswarden.core.protocols import Command, Flag

        {body}

        @hookimpl
        def syswarden_commands():
            return [{returned}]
    """).format(body=body, returned=returned)
    site = tmp_path / "site"
    install(site, "bad_cmds", source, dist="sw-bad-cmds")
    out = run(site, "--version")
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_the_built_in_commands_come_through_the_hook():
    commands = installed_commands()
    assert list(commands.subcommands)[:3] == ["capture", "test-rules", "event-generator"]
    assert [(plugin, flag.flag) for plugin, flag in commands.flags] == [("ebpf", "--dump-ebpf")]


def test_dump_ebpf_prints_the_program_the_rules_need(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: Opens\n  desc: d\n  condition: evt.type = openat\n"
                     "  output: x\n  priority: INFO\n")
    out = run(None, "-r", str(rules), "--dump-ebpf")
    assert out.returncode == 0, out.stderr
    assert "syswarden's BPF program" in out.stdout and "openat" in out.stdout
    assert "syswarden ready" not in out.stderr


def test_core_imports_no_command_and_no_plugin():
    """``core/`` names the built-in plugins and commands by module path; it never imports them."""
    offenders = []
    for path in sorted((REPO / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                dots = "." * node.level
                names = [dots + (node.module or "")]
            for name in names:
                if name.startswith(("syswarden.plugins", "syswarden.commands", "..plugins",
                                    "..commands", "...plugins", "...commands")):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []
