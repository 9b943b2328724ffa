"""Hostile config files: each a located error (file:line, the key, what is allowed), exit 2.

Every input below used to end in a Python traceback (exit 1) or to be accepted.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from syswarden.core.config import load_config
from syswarden.core.errors import ConfigError
from syswarden.core.plugins import make_plugin_manager
from syswarden.testing import refused_at_start

SCHEMAS = make_plugin_manager({}).schemas()

# (name, file bytes, line, text the message must hold)
CASES = [
    ("non-UTF-8", b"log_level: info\nx: \"\xff\xfe\"\n", 2, "not UTF-8 text: byte 0xff"),
    ("5000-digit integer", b"outputs:\n  max_burst: " + b"9" * 5000 + b"\n", 2,
     "more than 4300 digits"),
    ("10000 nested brackets", b"plugins: " + b"[" * 10000 + b"]" * 10000 + b"\n", 1,
     "nesting"),
    ("deep block nesting", "".join(f"{' ' * i}k{i}:\n" for i in range(100)).encode() +
     b" " * 100 + b"v\n", 64, "nesting deeper than 64 levels"),
    ("recursive alias", b"plugins: &a [*a]\n", 1, "refers to a node that contains it"),
    ("duplicate key", b"log_level: info\njson_output: true\nlog_level: debug\n", 3,
     "duplicate key 'log_level' (first on line 1)"),
    ("duplicate nested key", b"outputs:\n  rate: 1\n  rate: 2\n", 3,
     "duplicate key 'rate' (first on line 2)"),
    ("impossible date", b"log_level: 2001-13-45\n", 1, "cannot read '2001-13-45'"),
    ("control character", b"log_level: \"\x01\"\n", 1, "control characters are not allowed"),
    ("IPv6 without bracket", b"syslog_output:\n  address: udp://[::1\n", 2,
     "syslog_output.address: 'udp://[::1': Invalid IPv6 URL"),
    ("port out of range", b"syslog_output:\n  address: udp://127.0.0.1:99999999\n", 2,
     "Port out of range"),
    ("port 0", b"syslog_output:\n  address: tcp://h:0\n", 2, "needs host:port"),
    ("NaN rate", b"outputs:\n  rate: .nan\n", 2, "outputs.rate must be a finite number, not nan"),
    ("infinite timeout", b"http_output:\n  timeout: .inf\n", 2,
     "http_output.timeout must be a finite number, not inf"),
    ("huge float", b"pipeline:\n  shutdown_grace: 1.0e+999\n", 2, "must be a finite number"),
    ("negative rate", b"stdout_output:\n  rate: -1\n", 2,
     "stdout_output.rate must be at least 0, not -1"),
    ("negative timeout", b"container:\n  api_timeout: -2.5\n", 2,
     "container.api_timeout must be between 0 and 3600, not -2.5"),
    ("zero retry delay", b"webhook_outputs:\n  x:\n    url: http://h\n    retry_initial: 0\n", 4,
     "webhook_outputs.x.retry_initial must be between 0.01 and 3600, not 0"),
    ("negative queue", b"pipeline:\n  output_queue: -5\n", 2,
     "pipeline.output_queue must be between 1 and 10000000, not -5"),
    ("huge queue", b"file_output:\n  queue_size: " + b"9" * 40 + b"\n", 2,
     "must be between 1 and 10000000, not a 40-digit integer"),
    ("path_max 3", b"ebpf:\n  path_max: 3\n", 2,
     "ebpf.path_max must be between 64 and 4096, not 3"),
    ("drop threshold above 1", b"syscall_event_drops:\n  threshold: 2\n", 2,
     "syscall_event_drops.threshold must be between 0 and 1, not 2"),
]


@pytest.mark.parametrize("name,content,line,text", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_config_is_a_located_error(tmp_path, name, content, line, text):
    path = tmp_path / "syswarden.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), (), SCHEMAS)
    loc = info.value.location
    assert (loc.file, loc.line) == (str(path), line), str(info.value)
    assert text in info.value.message
    assert len(str(info.value)) < 400                     # never the whole value echoed


def test_a_value_error_names_the_key(tmp_path):
    path = tmp_path / "syswarden.yaml"
    path.write_bytes(b"ebpf:\n  path_max: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), (), SCHEMAS)
    assert info.value.location.item == "ebpf.path_max"
    assert str(info.value).startswith(f"{path}:2:13 (ebpf.path_max): ")


def test_an_override_is_checked_like_the_file():
    with pytest.raises(ConfigError, match="ebpf.path_max must be between 64 and 4096, not 3"):
        load_config(None, ["ebpf.path_max=3"], SCHEMAS)
    with pytest.raises(ConfigError, match="outputs.rate must be a finite number"):
        load_config(None, ["outputs.rate=.inf"], SCHEMAS)


def test_small_aliases_still_work(tmp_path):
    path = tmp_path / "syswarden.yaml"
    path.write_text("webhook_outputs:\n"
                    "  a: &hook {url: 'http://127.0.0.1:9/a', timeout: 3, queue_file: /tmp/qa}\n"
                    "  b: {<<: *hook, url: 'http://127.0.0.1:9/b', queue_file: /tmp/qb}\n")
    config = load_config(str(path), (), SCHEMAS)
    assert config["webhook_outputs"]["b"]["timeout"] == 3
    assert config["webhook_outputs"]["b"]["url"].endswith("/b")


@pytest.mark.parametrize("name", ["non-UTF-8", "5000-digit integer", "10000 nested brackets",
                                  "duplicate key", "IPv6 without bracket",
                                  "port out of range", "NaN rate", "path_max 3"])
def test_the_cli_exits_2_with_the_location(tmp_path, name):
    content, line = next((c[1], c[2]) for c in CASES if c[0] == name)
    path = tmp_path / "syswarden.yaml"
    path.write_bytes(content)
    assert f"{path}:{line}:" in refused_at_start("-c", str(path))


# 9 ** 9 (387 million) strings from 9 lines: PyYAML expands it when the data is walked.
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))

BOMB_CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # 1 GiB: before, MemoryError
    from syswarden.core.errors import SyswardenError
    from syswarden.core.config import load_config
    from syswarden.core.plugins import make_plugin_manager
    from syswarden.core.rules.loader import Loader
    try:
        load_config(sys.argv[1], (), make_plugin_manager({}).schemas())
    except SyswardenError as exc:
        print("config:", exc)
    result = Loader().load_files([sys.argv[2]])
    print("rules:", *result.errors)
    print("peak KiB:", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_an_alias_bomb_is_refused_with_bounded_memory(tmp_path):
    config = tmp_path / "syswarden.yaml"
    config.write_text(BOMB)
    rules = tmp_path / "rules.yaml"
    rules.write_text("- list: bomb\n  items: [x]\n  more:\n" +
                     textwrap.indent(BOMB, "    "))
    assert len(BOMB) < 400
    out = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(config), str(rules)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"config: {config}:6:" in out.stdout
    assert f"rules: {rules}:9:" in out.stdout
    assert out.stdout.count("aliases expand to more than 100000 nodes") == 2
