"""Falco's falco.yaml keys with Falco's semantics: every release config loads, each key that
selects or shapes something changes what the agent does."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess

import pytest

from syswarden.core.alert import Alert, Priority
from syswarden.core.config import load_config, parse_override, rules_paths
from syswarden.core.errors import ConfigError, SourceError
from syswarden.core.outputs import AlertFormatter, OutputRunner, ThreadedWriter
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.output import OutputOptions, compile_output
from syswarden.core.rules.selection import apply_selection
from syswarden.plugins.sources.ebpf.source import DropMonitor
from syswarden.testing import (SYSWARDEN, ListSource, make_agent, make_event,
                               refused_at_start)

HERE = pathlib.Path(__file__).parent
RELEASES = sorted((HERE / "falco_configs").glob("falco-*.yaml"))
SCHEMAS = make_plugin_manager({}).schemas()


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load(path: str, *overrides: str) -> dict:
    return load_config(path, overrides, SCHEMAS)


# -- every release config ----------------------------------------------------------------------


def test_the_release_configs_are_those_of_falco_0_37_to_0_44():
    assert [p.stem for p in RELEASES] == [
        "falco-0.37.1", "falco-0.38.2", "falco-0.39.2", "falco-0.40.0", "falco-0.41.3",
        "falco-0.42.1", "falco-0.43.1", "falco-0.44.1"]


@pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.stem)
def test_every_falco_release_config_loads_with_falcos_meaning(path, caplog):
    caplog.set_level(logging.WARNING)
    config = load(str(path))
    assert config["rules_files"][0] == "/etc/falco/falco_rules.yaml"
    assert config["engine"]["kind"] in ("kmod", "modern_ebpf")
    assert config["_replay_file"] is None
    assert config["stdout_output"]["enabled"] is True
    assert config["syscall_event_drops"]["actions"] == ["log", "alert"]
    # load_plugins: [] in every release: no Falco plugin is loaded, none is refused
    assert config["_falco_plugins"] == []
    # the only warnings are the keys without meaning here, each saying what happens instead
    for record in caplog.records:
        assert "has no meaning in syswarden; ignored: " in record.getMessage()


def test_the_0_44_config_of_the_compat_files_loads_unmodified(compat):
    config = load(str(compat / "falco-config" / "falco.yaml"))
    assert config["append_output"] == [{"suggested_output": True}]
    assert config["rules_files"] == ["/etc/falco/falco_rules.yaml",
                                     "/etc/falco/falco_rules.local.yaml", "/etc/falco/rules.d"]
    assert config["config_files"] == ["/etc/falco/config.d"]


@pytest.mark.skipif(not os.environ.get("SYSWARDEN_FALCO_GIT"),
                    reason="SYSWARDEN_FALCO_GIT (a clone of falcosecurity/falco) not set")
@pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.stem)
def test_the_original_release_configs_match_the_stored_ones(path, tmp_path):
    tag = path.stem.removeprefix("falco-")
    text = subprocess.run(["git", "-C", os.environ["SYSWARDEN_FALCO_GIT"], "show",
                           f"{tag}:falco.yaml"], capture_output=True, text=True, check=True).stdout
    original = load(write(tmp_path, "falco.yaml", text))
    stored = load(str(path))
    for key in ("_config_file", "_config_files", "_rules_locations"):
        original.pop(key), stored.pop(key)
    assert original == stored


def test_the_dry_run_loads_the_0_44_config_with_falcos_rules(compat):
    out = subprocess.run([*SYSWARDEN, "-c", str(compat / "falco-config" / "falco.yaml"),
                          "-r", str(compat / "falco-rules" / "falco_rules.yaml"), "--dry-run",
                          "-e", "/dev/null"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "dry run ok: sources=replay" in out.stdout


# -- rules_files -------------------------------------------------------------------------------


def test_rules_files_and_the_singular_rules_file(tmp_path):
    assert load(write(tmp_path, "a.yaml", "rules_files: [x.yaml]\n"))["rules_file"] == ["x.yaml"]
    assert load(write(tmp_path, "b.yaml", "rules_file: x.yaml\n"))["rules_files"] == ["x.yaml"]
    with pytest.raises(ConfigError, match="both rules_files and rules_file are set") as info:
        load(write(tmp_path, "c.yaml", "rules_files: [x.yaml]\nrules_file: [y.yaml]\n"))
    assert info.value.location.line == 2


def test_a_rules_directory_is_its_yaml_files_in_name_order(tmp_path):
    d = tmp_path / "rules.d"
    d.mkdir()
    for name, rule in (("20-b.yaml", "B"), ("10-a.yml", "A"), ("30-c.txt", "C")):
        (d / name).write_text(f"- rule: {rule}\n  desc: d\n  condition: evt.type = openat\n"
                              f"  output: o\n  priority: INFO\n")
    config = load(write(tmp_path, "falco.yaml", f"rules_files: [{d}]\n"))
    engine = RuleEngine.load(rules_paths(config), make_plugin_manager({}).fields())
    assert [r.name for r in engine.rules()] == ["A", "B"]


def test_a_missing_rules_directory_is_located(tmp_path):
    path = write(tmp_path, "falco.yaml", "json_output: false\nrules_files:\n  - /nope/rules.d\n")
    with pytest.raises(ConfigError) as info:
        rules_paths(load(path))
    assert info.value.location.file == path and info.value.location.line == 3
    assert "'/nope/rules.d' does not exist" in str(info.value)


# -- config_files ------------------------------------------------------------------------------


def test_config_files_merge_with_falcos_strategies(tmp_path):
    d = tmp_path / "config.d"
    write(d, "20-override.yaml", "stdout_output: {enabled: false}\n")
    write(d, "10-append.yaml", "rules: [{disable: {tag: b}}]\nlog_level: debug\n")
    write(tmp_path, "addonly.yaml", "log_level: error\njson_output: true\nrules: []\n")
    write(tmp_path, "override.yaml", "rules: [{enable: {tag: c}}]\n")
    main = write(tmp_path, "falco.yaml",
                 f"config_files:\n  - {d}\n  - path: {tmp_path}/addonly.yaml\n"
                 f"    strategy: add-only\n  - /does/not/exist\n"
                 "rules: [{disable: {tag: a}}]\nstdout_output: {enabled: true}\n")
    config = load(main)
    assert config["rules"] == [{"disable": {"tag": "a"}}, {"disable": {"tag": "b"}}]  # append
    assert config["stdout_output"]["enabled"] is False         # a mapping is replaced
    assert config["log_level"] == "debug" and config["json_output"] is True        # add-only
    assert config["_config_files"][1:] == [f"{d}/10-append.yaml", f"{d}/20-override.yaml",
                                           f"{tmp_path}/addonly.yaml"]
    over = load(main, f"config_files=[{{path: {tmp_path}/override.yaml, strategy: override}}]")
    assert over["rules"] == [{"enable": {"tag": "c"}}]


def test_a_bad_value_in_an_included_config_file_names_that_file(tmp_path):
    extra = write(tmp_path, "extra.yaml", "json_output: true\nrules:\n  - enable: {}\n")
    main = write(tmp_path, "falco.yaml", f"config_files: [{extra}]\n")
    with pytest.raises(ConfigError, match="enable needs a rule") as info:
        load(main)
    assert (info.value.location.file, info.value.location.line) == (extra, 3)
    main = write(tmp_path, "falco3.yaml", f"config_files: [{extra}]\nrules:\n"
                 "  - disable: {tag: a}\n  - enable: {tag: 3}\n")
    with pytest.raises(ConfigError, match=r"rules\[1\].enable.tag must be") as info:
        load(main)
    assert (info.value.location.file, info.value.location.line) == (main, 4)
    nested = write(tmp_path, "nested.yaml", "config_files: [x]\n")
    with pytest.raises(ConfigError, match="may not be set in an included"):
        load(write(tmp_path, "main2.yaml", f"config_files: [{nested}]\n"))


# -- -o ----------------------------------------------------------------------------------------


def test_overrides_take_list_indices_yaml_values_and_unknown_falco_keys(tmp_path, caplog):
    path = write(tmp_path, "falco.yaml", "append_output:\n  - suggested_output: true\n")
    config = load(path, "append_output[0].match.source=syscall",
                  "append_output[1]={extra_output: 'cpu=%evt.cpu'}",
                  "rules=[{disable: {rule: 'Read *'}}]", "webserver.enabled=false",
                  "grpc.enabled=false")
    assert config["append_output"] == [{"suggested_output": True, "match": {"source": "syscall"}},
                                       {"extra_output": "cpu=%evt.cpu"}]
    assert config["rules"] == [{"disable": {"rule": "Read *"}}]
    assert config["webserver"]["enabled"] is False
    assert "'grpc' has no meaning in syswarden" in caplog.text
    assert parse_override("a.b[2].c=x") == (["a", "b", 2, "c"], "x")
    assert parse_override(r"labels.kubernetes\.io/role=a=b") == (
        ["labels", "kubernetes.io/role"], "a=b")
    appended = load(path, "append_output[]={extra_output: x}")
    assert appended["append_output"][1] == {"extra_output": "x"}


@pytest.mark.parametrize("override, message", [
    ("append_output[3].extra_output=x", "index 3 is past the end of a list of 1"),
    ("append_output.x=1", "append_output is a list, not a mapping"),
    ("append_output[0].match.sorce=syscall", "unknown config key 'append_output[0].match.sorce'"),
    ("rules[0]={enable: {}}", "rules[0]: enable needs a rule"),
    ("engine.kind=kmode", "engine.kind must be one of"),
    ("a[x]=1", "is not a key or key[index]"),
    ("a..b=1", "an empty key"),
    (r"a\q=1", "is not an escape"),
])
def test_a_bad_override_path_or_value_is_one_error_naming_the_override(tmp_path, override,
                                                                       message):
    path = write(tmp_path, "falco.yaml", "append_output:\n  - suggested_output: true\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) \
            as info:
        load(path, override)
    assert info.value.location.file == "-o"


# -- bad input at start-up: one located error, exit 2 -----------------------------------------


@pytest.mark.parametrize("text, line, message", [
    ("rules:\n  - disable: {tag: a}\n  - enable: {rule: 3}\n", 3, "rules[1].enable.rule must be"),
    ("append_output:\n  - match: {tags: net}\n", 2, "append_output[0].match.tags must be a list"),
    ("append_output:\n  - extra_fields: [{a: '%proc.name', b: x}]\n", 2, "one {name: format}"),
    ("config_files:\n  - path: x\n    strategy: merge\n", 3, "must be one of append, override"),
    ("append_output:\n  - suggested_output: true\n  - extra_fields: [proc.nam]\n", 3,
     "append_output: unknown field 'proc.nam'"),
    ("base_syscalls:\n  custom_set: [clone, opne]\n", 2, "unknown syscall 'opne'"),
    ("engine:\n  kind: replay\n", 2, "capture_file is empty"),
    ("load_plugins: [k8saudit]\n", 1, "cannot load plugin 'k8saudit'"),
    ("outputs_queue:\n  capacity: -1\n", 2, "outputs_queue.capacity must be between"),
    ("output_timeout: soon\n", 1, "output_timeout must be an integer"),
    ("buffer_format_base64: 2\n", 1, "buffer_format_base64 must be a boolean"),
    ("json_include_message_property: yes please\n", 1, "must be a boolean"),
    ("watch_config_files: []\n", 1, "watch_config_files must be a boolean"),
    ("syscall_event_drops:\n  actions: [log, explode]\n", None, "unknown action 'explode'"),
    ("webserverr:\n  enabled: true\n", 1, "unknown config key 'webserverr'"),
    ("rules_files: [/nope/rules.d]\n", 1, "'/nope/rules.d' does not exist"),
])
def test_bad_falco_keys_are_refused_at_start_with_their_place(tmp_path, text, line, message):
    path = write(tmp_path, "falco.yaml", text)
    err = refused_at_start("-c", path)
    assert message in err
    if line is not None:
        assert f"{path}:{line}" in err
    assert "ready" not in err


def test_a_bad_override_path_is_refused_at_start():
    err = refused_at_start("-o", "append_output[4].extra_output=x")
    assert "-o (append_output[4].extra_output=x)" in err and "past the end" in err


# -- rules: ------------------------------------------------------------------------------------


class R:
    def __init__(self, name: str, tags: list[str], enabled: bool = True) -> None:
        self.name, self.tags, self.enabled = name, tags, enabled


def test_rules_selection_applies_names_with_wildcards_and_tags_in_order():
    rules = [R("Read sensitive file", ["filesystem"]), R("Write below etc", ["filesystem"]),
             R("Outbound connection", ["network"], enabled=False), R("Read? x", [])]
    apply_selection(rules, [{"disable": {"rule": "*"}}, {"enable": {"tag": "network"}},
                            {"enable": {"rule": "Read *"}}, {"disable": {"rule": "Read? x"}}])
    assert [r.enabled for r in rules] == [True, False, True, False]


RULES = """
- rule: Net thing
  desc: d
  condition: evt.type = connect
  output: net %proc.name
  priority: WARNING
  tags: [network, mitre]
- rule: File thing
  desc: d
  condition: evt.type = openat
  output: file %fd.name
  priority: WARNING
  tags: [filesystem]
"""


def engine_of(tmp_path, config_text: str, *overrides: str) -> RuleEngine:
    rules = write(tmp_path, "rules.yaml", RULES)
    config = load(write(tmp_path, "falco.yaml", f"rules_files: [{rules}]\n{config_text}"),
                  *overrides)
    return RuleEngine.load(rules_paths(config), make_plugin_manager({}).fields(),
                           selection=config["rules"], output=OutputOptions.from_config(config))


def test_a_rule_disabled_by_tag_does_not_fire(tmp_path):
    event = make_event("openat", name="/etc/shadow")
    assert [a.rule for a in engine_of(tmp_path, "").check(event)] == ["File thing"]
    engine = engine_of(tmp_path, "rules:\n  - disable: {tag: filesystem}\n")
    assert engine.check(event) == []
    assert [r.name for r in engine.active_rules()] == ["Net thing"]


# -- append_output -----------------------------------------------------------------------------


def test_append_output_matches_by_source_tags_and_rule(tmp_path):
    engine = engine_of(tmp_path, """append_output:
  - match: {tags: [network, mitre]}
    extra_output: "tagged=%proc.pid"
  - match: {rule: File thing}
    extra_output: "by_rule"
    extra_fields: [proc.name, {who: "user=%user.name"}]
  - match: {source: k8s_audit}
    extra_output: never
""")
    file_alert, = engine.check(make_event("openat", name="/etc/shadow", proc="cat"))
    assert file_alert.output == "file /etc/shadow by_rule"
    assert file_alert.output_fields["proc.name"] == "cat"
    assert file_alert.output_fields["who"].startswith("user=")
    net_alert, = engine.check(make_event("connect", proc="curl"))
    assert net_alert.output.startswith("net curl tagged=") and "never" not in net_alert.output


def test_suggested_output_appends_the_container_fields_as_falco_does(tmp_path):
    engine = engine_of(tmp_path, "append_output:\n  - suggested_output: true\n")
    alert, = engine.check(make_event("openat", name="/etc/shadow"))
    assert alert.output.startswith("file /etc/shadow container_id=")
    for name in ("container.id", "container.name", "container.image.repository",
                 "container.image.tag", "k8s.pod.name", "k8s.ns.name"):
        assert f" {name.replace('.', '_')}=" in alert.output
        assert name in alert.output_fields


def test_container_info_is_dropped_where_the_container_fields_are_suggested(tmp_path):
    rules = write(tmp_path, "info.yaml", "- rule: Info\n  desc: d\n  condition: evt.type = "
                  "openat\n  output: opened (%container.info) by %proc.name\n"
                  "  priority: WARNING\n")
    fields = make_plugin_manager({}).fields()

    def engine(config_text: str) -> RuleEngine:
        config = load(write(tmp_path, "falco.yaml", f"rules_files: [{rules}]\n{config_text}"))
        return RuleEngine.load(rules_paths(config), fields,
                               output=OutputOptions.from_config(config))
    event = make_event("openat", name="/etc/shadow", container="abcdef123456")
    falco_044 = engine("append_output:\n  - suggested_output: true\n")
    alert, = falco_044.check(event)      # Falco 0.41+: the text goes, the suggested fields say it
    assert alert.output.startswith("opened () by cat container_id=abcdef123456 ")
    assert "%container.info" not in alert.output and "(id=" not in alert.output
    warned = [w for w in falco_044.warnings if "%container.info is deprecated" in w.message]
    assert len(warned) == 1 and warned[0].location.file == rules
    older, = engine("").check(event)     # no suggested fields: older Falco's rendering
    assert older.output == "opened (web (id=abcdef123456)) by cat"
    elsewhere = engine("append_output:\n  - match: {source: k8s_audit}\n"
                       "    suggested_output: true\n")
    assert elsewhere.check(event)[0].output == older.output and not [
        w for w in elsewhere.warnings if "%container.info" in w.message]


def test_an_override_of_append_output_takes_effect(tmp_path):
    engine = engine_of(tmp_path, "append_output:\n  - suggested_output: true\n",
                       "append_output[0].match.source=k8s_audit")
    alert, = engine.check(make_event("openat", name="/etc/shadow"))
    assert alert.output == "file /etc/shadow"


def test_buffer_format_base64_prints_data_buffers_in_base64():
    fields = make_plugin_manager({}).fields()
    event = make_event("write")
    event.args["data"] = b"\x00secret"
    assert compile_output("%evt.buffer", fields)(event)[0] == "\\x00secret"
    text, out = compile_output("%evt.buffer", fields, buffer_base64=True)(event)
    assert text == "AHNlY3JldA==" and out["evt.buffer"] == "AHNlY3JldA=="


# -- JSON alerts -------------------------------------------------------------------------------


ALERT = Alert("R", Priority.WARNING, "a shell", 1_700_000_000_123_456_789, {"proc.name": "sh"},
              ["t"])


def test_json_include_keys_and_iso_time_shape_the_json_alert():
    plain = json.loads(AlertFormatter.from_config({"json_output": True})(ALERT))
    assert "message" not in plain and plain["output_fields"] == {"proc.name": "sh"}
    assert plain["output"].endswith(".123456789: Warning a shell")
    assert not plain["output"].startswith("2023-")
    doc = json.loads(AlertFormatter.from_config({
        "json_output": True, "json_include_message_property": True,
        "json_include_output_fields_property": False, "time_format_iso_8601": True})(ALERT))
    assert doc["message"] == "a shell" and "output_fields" not in doc
    assert doc["output"] == "2023-11-14T22:13:20.123456789+0000: Warning a shell"
    assert doc["time"] == "2023-11-14T22:13:20.123456789Z"


def test_falco_hostname_sets_the_alerts_hostname():
    code = "from syswarden.core.alert import HOSTNAME; print(HOSTNAME)"
    env = {**os.environ, "FALCO_HOSTNAME": "node-7.example"}
    out = subprocess.run([SYSWARDEN[0], "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "node-7.example"


# -- outputs_queue, output_timeout ------------------------------------------------------------


class _Out:
    name = "x"

    class settings:
        min_priority = queue_size = rate = max_burst = None


def test_outputs_queue_capacity_bounds_each_output_queue(tmp_path):
    config = load(write(tmp_path, "falco.yaml", "outputs_queue: {capacity: 3}\n"))
    metrics = Metrics()
    runner = OutputRunner.for_output(_Out(), config, metrics)
    for _ in range(5):
        runner.offer(ALERT)
    assert metrics.get("outputs.x.queued") == 3 and metrics.get("outputs.x.dropped") == 2
    default = OutputRunner.for_output(_Out(), load(write(tmp_path, "d.yaml", "{}\n")), metrics)
    assert default.send.statistics().max_buffer_size == 10000


def test_an_output_blocked_longer_than_output_timeout_is_reported(caplog):
    import trio

    read, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    with contextlib_suppress_blocking():
        while True:
            os.write(write_fd, b"x" * 65536)        # a pipe nobody reads: full
    os.set_blocking(write_fd, True)
    stream = os.fdopen(write_fd, "w")
    metrics = Metrics()

    def blocked_write(batch):
        stream.write("alert\n" * 10000)
        stream.flush()
        return True

    writer = ThreadedWriter("stdout", metrics, blocked_write, timeout=0.2)

    async def main():
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer, [ALERT])
                while not metrics.get("outputs.stdout.timeouts"):
                    await trio.sleep(0.05)
                os.set_blocking(read, False)
                while not metrics.get("outputs.stdout.sent"):   # the reader comes back
                    try:
                        os.read(read, 1 << 20)
                    except BlockingIOError:
                        await trio.sleep(0.01)
    trio.run(main)
    assert '"stdout" output timeout' in caplog.text
    assert metrics.get("outputs.stdout.sent") == 1
    stream.close()
    os.close(read)


class contextlib_suppress_blocking:
    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is BlockingIOError


# -- syscall_event_drops, base_syscalls, engine.kind ------------------------------------------


def test_the_exit_drop_action_stops_the_source(caplog):
    monitor = DropMonitor({"actions": ["log", "exit"], "threshold": 0.1, "simulate_drops": True},
                          None)
    with pytest.raises(SourceError, match="syscall event drop"):
        monitor.check(100, {"events": 50})
    assert "Exiting." in caplog.text


def test_base_syscalls_add_to_and_remove_from_the_followed_syscalls(tmp_path):
    rules = write(tmp_path, "rules.yaml", RULES)
    plain = make_agent(tmp_path, ListSource([]), config={"rules_files": [rules]},
                       builtins=["rules"])
    assert plain.event_types() == {"connect", "openat"}
    custom = make_agent(tmp_path, ListSource([]), config={"rules_files": [rules], "base_syscalls": {
        "custom_set": ["ptrace", "!connect"]}}, builtins=["rules"])
    assert custom.event_types() == {"openat", "ptrace"}
    every = make_agent(tmp_path, ListSource([]), config={
        "rules_files": [rules], "base_syscalls": {"all": True}}, builtins=["rules"])
    assert every.event_types() is None


STATE = {"clone", "clone3", "fork", "vfork", "execve", "execveat", "fchdir", "chdir", "chroot",
         "capset", "setgid", "setpgid", "setresgid", "setresuid", "setsid", "setuid", "prctl",
         "procexit"}


def test_base_syscalls_repair_adds_what_the_state_needs_given_the_rules(tmp_path):
    rules = write(tmp_path, "rules.yaml", RULES)      # connect and openat

    def followed(base: dict) -> set[str] | None:
        return make_agent(tmp_path, ListSource([]), config={
            "rules_files": [rules], "base_syscalls": base}, builtins=["rules"]).event_types()
    # connect (network): socket, getsockopt and close; openat (a file): close
    assert followed({"repair": True}) == {"connect", "openat", "socket", "getsockopt",
                                          "close"} | STATE
    # custom_set given: repaired after its removals, as Falco does (connect gone, so no
    # socket/getsockopt; listen brings bind)
    assert followed({"custom_set": ["listen", "!connect"], "repair": True}) == \
        {"openat", "listen", "socket", "getsockopt", "bind", "close"} | STATE
    assert followed({"custom_set": ["!connect"], "repair": False}) == {"openat"}
    assert followed({"custom_set": ["!close"], "repair": True}) == \
        {"connect", "openat", "socket", "getsockopt", "close"} | STATE   # repaired back


def test_falco_libs_thread_table_size_bounds_the_process_table(tmp_path, caplog):
    from syswarden.core.event import ForkFacts, Process
    from syswarden.testing import Event

    def table(config: dict):
        agent = make_agent(tmp_path, ListSource([]), builtins=["process"], config={
            "process": {"snapshot": False, "max_entries": 64}, **config})
        return agent, agent.enrichers[0].table
    assert table({})[1].max_entries == 64
    agent, t = table({"falco_libs": {"thread_table_size": 16}})
    assert t.max_entries == 16                         # Falco's key wins over process.*
    for pid in range(1000, 1016):
        t.procs[pid] = Process(pid)
    fork = Event("clone", ts=1, tid=1000, pid=1000, res=2000)
    fork.kernel = ForkFacts(child_tid=2000)
    with caplog.at_level(logging.WARNING, logger="syswarden.process"):
        t.on_fork(fork)                                # the 17th: the oldest goes, counted
    assert len(t.procs) == 16 and 2000 in t.procs and 1000 not in t.procs
    assert agent.metrics.get("drops.process.evicted") == 1
    assert "process table full (16 processes" in caplog.text


@pytest.mark.parametrize("text, line, message", [
    ("falco_libs:\n  thread_table_size: 4\n", 2,
     "falco_libs.thread_table_size must be between 16 and 10000000"),  # process.max_entries'
    ("falco_libs:\n  snaplen: lots\n", 2, "falco_libs.snaplen must be an integer"),
    ("falco_libs:\n  thread_table_sise: 100\n", 2, "did you mean thread_table_size?"),
])
def test_bad_falco_libs_values_are_located(tmp_path, text, line, message):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "falco.yaml", text))
    assert err.value.location.line == line and message in str(err.value)


EBPF_SNAPLEN = make_plugin_manager().schemas()["ebpf"].keys.get("snaplen")


@pytest.mark.skipif(EBPF_SNAPLEN is None, reason="the eBPF source keeps no I/O buffer here "
                    "(ebpf.snaplen comes with the receive data of the fields3 branch)")
def test_falco_libs_snaplen_sets_the_bytes_the_ebpf_source_keeps(tmp_path):
    from syswarden.plugins.sources.ebpf.program import render_program
    schemas = make_plugin_manager().schemas()
    path = write(tmp_path, "falco.yaml", "falco_libs:\n  snaplen: 200\n")
    config = load_config(path, (), schemas)
    assert config["ebpf"]["snaplen"] == 200
    assert "#define SNAPLEN 200 " in render_program(["recvfrom"], config["ebpf"])
    too_big = EBPF_SNAPLEN.max + 1
    write(tmp_path, "falco.yaml", f"ebpf:\n  snaplen: 100\nfalco_libs:\n  snaplen: {too_big}\n")
    with pytest.raises(ConfigError) as err:        # never cut silently below what was asked
        load_config(path, (), schemas)
    assert err.value.location.line == 4
    assert f"falco_libs.snaplen must be between 0 and {EBPF_SNAPLEN.max}" in str(err.value)


def test_engine_kind_replay_replays_its_capture_file(tmp_path):
    capture = write(tmp_path, "empty.scap", "")
    path = write(tmp_path, "falco.yaml",
                 f"engine:\n  kind: replay\n  replay:\n    capture_file: {capture}\n")
    assert load(path)["_replay_file"] == capture
    out = subprocess.run([*SYSWARDEN, "-c", path, "--dry-run"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sources=replay" in out.stdout


# -- plugins -----------------------------------------------------------------------------------


def test_the_container_plugin_entry_is_the_container_enrichment(tmp_path, caplog):
    path = write(tmp_path, "falco.yaml", """load_plugins: [container]
container: {enabled: false}
plugins:
  - name: container
    library_path: libcontainer.so
    init_config:
      label_max_len: 40
      with_size: true
      hooks: [create]
      log_level: info
      engines:
        docker: {enabled: true, sockets: [/run/other/docker.sock]}
""")
    config = load(path)
    assert config["container"]["enabled"] is True
    assert config["container"]["engines"]["docker"]["sockets"] == ["/run/other/docker.sock"]
    # the keys the container section declares are taken; the others are named in a warning
    assert config["container"]["label_max_len"] == 40
    assert config["container"]["with_size"] is True
    assert config["container"]["hooks"] == ["create"]
    assert "container plugin: log_level have no meaning" in caplog.text
    assert config["_falco_plugins"] == []


def test_another_falco_plugin_is_refused_once_a_loaded_rule_needs_it(tmp_path, compat):
    plugin = "plugins:\n  - name: k8saudit\n    library_path: libk8saudit.so\n"
    rules = write(tmp_path, "k8s.yaml", "- required_plugin_versions:\n"
                  "    - name: k8saudit\n      version: 0.7.0\n")
    config = load(write(tmp_path, "falco.yaml", f"rules_files: [{rules}]\n{plugin}"))
    with pytest.raises(ConfigError, match="plugin 'k8saudit' .* syswarden cannot load") as info:
        rules_paths(config)
    assert info.value.location.file == rules and info.value.location.line == 1
    # Falco's own syscall rules do not need it: the agent starts
    ok = load(write(tmp_path, "ok.yaml",
                    f"rules_files: [{compat / 'falco-rules' / 'falco_rules.yaml'}]\n{plugin}"))
    assert rules_paths(ok)


def test_environment_variables_in_values_are_expanded_as_falco_does(tmp_path, monkeypatch):
    monkeypatch.setenv("SW_LOGDIR", "/var/log/sw")
    monkeypatch.delenv("SW_UNSET", raising=False)
    path = write(tmp_path, "falco.yaml", "file_output:\n  filename: ${SW_LOGDIR}/events.txt\n"
                 "append_output:\n  - extra_output: 'a=$${SW_LOGDIR} b=${SW_UNSET}'\n")
    config = load(path)
    assert config["file_output"]["filename"] == "/var/log/sw/events.txt"
    assert config["append_output"][0]["extra_output"] == "a=${SW_LOGDIR} b=${SW_UNSET}"


def test_static_fields_are_suggested_output(tmp_path):
    engine = engine_of(tmp_path, "static_fields: {cluster: prod-1, '%x': 'a%proc.name'}\n"
                       "append_output:\n  - suggested_output: true\n")
    alert, = engine.check(make_event("openat", name="/etc/shadow"))
    assert alert.output.endswith(" static_cluster=prod-1 static_%x=a%proc.name")
    assert alert.output_fields["static.cluster"] == "prod-1"
    plain = engine_of(tmp_path, "static_fields: {cluster: prod-1}\n")
    assert "static" not in plain.check(make_event("openat", name="/etc/shadow"))[0].output


def test_a_plugin_named_in_an_included_config_file_is_loaded(tmp_path):
    from syswarden.core.config import peek_plugin_keys
    plugin = write(tmp_path, "myplug.py", "from syswarden.core.config import Key, Section\n"
                   "from syswarden.core.hookspecs import hookimpl\n@hookimpl\n"
                   "def syswarden_config_schema():\n"
                   "    return {'myplug': Section({'level': Key(int, 1)})}\n")
    extra = write(tmp_path, "config.d/10-plugins.yaml", f"plugins: [{plugin}]\n")
    main = write(tmp_path, "falco.yaml", f"config_files: [{os.path.dirname(extra)}]\n"
                 "myplug: {level: 3}\n")
    early = peek_plugin_keys(main)
    assert early["plugins"] == [plugin]
    config = load_config(main, (), make_plugin_manager(early).schemas())
    assert config["myplug"] == {"level": 3}


@pytest.mark.parametrize("buffered, on_disk", [(False, True), (True, False)])
def test_buffered_outputs_leaves_the_flushing_to_the_stream(tmp_path, buffered, on_disk):
    from syswarden.plugins.outputs.stdout import StdoutOutput
    path = tmp_path / "out.txt"
    with open(path, "w", buffering=1 << 16) as stream:
        out = StdoutOutput({"buffered_outputs": buffered}, {}, Metrics(), stream=stream)
        assert out.write([ALERT])
        assert (path.stat().st_size > 0) is on_disk
    assert path.read_text().endswith("Warning a shell\n")
