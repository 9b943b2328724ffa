"""The default ruleset: every rule test passes, every rule has a firing and a benign case,
every rule is documented and tagged, and it loads beside Falco's own rules without a clash."""

from __future__ import annotations

import io
import os
import sys
import pathlib
import re

import pytest
import yaml

from syswarden.commands.ruletest import main
from syswarden.core.config import default_rules_path
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.ruletest import load_test_file
from tests.helpers.docker import containers, docker_images, dockerd  # noqa: F401 (fixtures)
from tests.helpers.paths import REPO

TESTS = sorted((REPO / "rules" / "tests").glob("*.yaml"))
CONFIG = {"priority": "debug", "rule_matching": "first", "rules_file": []}
DEFAULT = pathlib.Path(default_rules_path())
ITEMS = yaml.safe_load(DEFAULT.read_text())
RULES = [i for i in ITEMS if "rule" in i]

#: The syscalls the default rules may need: the eBPF source's cost grows with this set.
EVENT_TYPE_BUDGET = {
    "execve", "execveat", "open", "openat", "openat2", "creat", "rename", "renameat",
    "renameat2", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "symlink", "symlinkat",
    "link", "linkat", "chmod", "fchmod", "fchmodat", "connect", "socket", "setns", "unshare", "ptrace", "init_module",
    "finit_module",
}


@pytest.fixture(scope="module")
def fields():
    return collect_fields()


def test_the_packaged_ruleset_is_this_file():
    assert DEFAULT == REPO / "rules" / "default_rules.yaml"


def test_every_rule_test_passes():
    out = io.StringIO()
    code = main([str(p) for p in TESTS], dict(CONFIG), out=out)
    assert code == 0, out.getvalue()
    assert " 0 failed" in out.getvalue()


def test_every_rule_has_a_firing_case_and_a_benign_case():
    fired: set[str] = set()
    benign: set[str] = set()
    for path in TESTS:
        test = load_test_file(str(path), CONFIG)
        assert test.rules == [str(DEFAULT)], f"{path} must test the default rules"
        for case in test.cases:
            expected = {e.rule for e in case.expected}
            fired |= expected
            benign |= set(case.covers) - expected
            assert not set(case.covers) & expected, f"{case.name}: covers what it expects"
    names = {r["rule"] for r in RULES}
    assert names - fired == set(), "rules without a case that fires them"
    assert names - benign == set(), "rules without a benign case"
    assert (fired | benign) - names == set(), "cases about rules that do not exist"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["rule"])
def test_every_rule_is_documented_and_tagged(rule):
    assert len(rule["desc"].split()) >= 12
    assert rule["priority"] in ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING",
                                "NOTICE", "INFORMATIONAL", "DEBUG")
    assert "%proc.cmdline" in rule["output"] or "%proc.name" in rule["output"]
    assert "%container.info" in rule["output"]
    tags = rule["tags"]
    assert {"host", "container"} & set(tags)
    mitre = [t for t in tags if t.startswith("mitre_")]
    techniques = [t for t in tags if re.fullmatch(r"T\d{4}(\.\d{3})?", t)]
    assert mitre and techniques, "MITRE ATT&CK tactic and technique tags"


def test_rules_and_docs_agree():
    doc = (REPO / "docs" / "rules.md").read_text()
    for rule in RULES:
        assert f"### {rule['rule']}" in doc, f"docs/rules.md does not describe {rule['rule']!r}"


def test_loads_without_warnings_and_needs_few_syscalls(fields):
    engine = RuleEngine.load([str(DEFAULT)], fields)
    assert len(engine.rules()) == len(RULES)
    assert [str(w) for w in engine.warnings] == []
    types = engine.event_types()
    assert types is not None and types <= EVENT_TYPE_BUDGET, types - EVENT_TYPE_BUDGET


def test_no_name_clashes_with_falco_rules(compat):
    ours = {(k, i[k]) for i in ITEMS for k in ("rule", "macro", "list") if k in i}
    theirs = set()
    for path in [*(compat / "falco-rules").glob("*.yaml"),
                 *(compat / "seed-rules").glob("falco_rules*.yaml")]:
        for item in yaml.safe_load(path.read_text()) or []:
            theirs |= {(k, item[k]) for k in ("rule", "macro", "list") if k in item}
    assert ours & theirs == set()


def test_loads_beside_falco_rules(compat, fields):
    """A Falco user adds our rules to theirs: both sets load and keep their meaning."""
    files = [str(compat / "falco-rules" / "falco_rules.yaml"), str(DEFAULT)]
    engine = RuleEngine.load(files, fields)
    names = {r.name for r in engine.rules()}
    assert {r["rule"] for r in RULES} <= names
    assert "Terminal shell in container" in names


def test_the_tuning_examples_of_the_docs_load_and_their_test_passes(tmp_path):
    """The YAML blocks of docs/rules.md: the rule blocks form local.yaml, the test block
    tests them on top of the default rules."""
    doc = (REPO / "docs" / "rules.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    rule_blocks = [b for b in blocks if "cases:" not in b]
    (test_block,) = [b for b in blocks if "cases:" in b]
    assert len(rule_blocks) >= 5
    (tmp_path / "local.yaml").write_text("\n".join(rule_blocks))
    (tmp_path / "local-tests.yaml").write_text(test_block)
    out = io.StringIO()
    code = main([str(tmp_path / "local-tests.yaml")], dict(CONFIG), out=out)
    assert code == 0, out.getvalue()
    # and the tuning has the effect the docs describe
    engine = RuleEngine.load([str(DEFAULT), str(tmp_path / "local.yaml")], collect_fields())
    rules = {r.name: r for r in engine.rules()}
    assert not rules["Network tool run in a container"].enabled
    assert rules["Write outside the data directories of a container"].priority.label == "Warning"


# ---------------------------------------------------------------------------------------------
# On the real kernel: real actions, the live eBPF source and enrichers, the default rules
# ---------------------------------------------------------------------------------------------

def _host_ip() -> str | None:
    """A non-loopback address of this machine (the shell connection rule ignores loopback)."""
    import socket  # noqa: PLC0415
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.254", 9))  # no packet is sent for a UDP connect
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def _host_actions(tok: str, tmp: pathlib.Path) -> dict[str, str]:
    """Perform each suspicious action for real (on temporary names, undone at once).  Returns
    rule name -> a text the alert's output must contain."""
    import shutil  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    def sh(*args: str, **kw) -> None:
        subprocess.run(list(args), check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, **kw)

    expect: dict[str, str] = {}
    reader = tmp / f"rd{tok}"
    shutil.copy2("/bin/cat", reader)
    sh(str(reader), "/etc/shadow")
    expect["Sensitive file read by an untrusted program"] = f"process=rd{tok}"

    sh("sh", "-c", f"echo x > /usr/local/bin/sw-{tok}; mv /usr/local/bin/sw-{tok} "
                   f"/usr/local/bin/sw-m-{tok}; rm -f /usr/local/bin/sw-m-{tok}")
    expect["Write below a binary directory"] = f"file=/usr/local/bin/sw-{tok}"
    expect["Binary directory changed"] = f"newpath=/usr/local/bin/sw-m-{tok}"

    sh("sh", "-c", f"echo x > /etc/sw-{tok}; rm -f /etc/sw-{tok}")
    expect["Write below /etc"] = f"file=/etc/sw-{tok}"

    sh("sh", "-c", f"echo x > /dev/sw-{tok}; rm -f /dev/sw-{tok}")
    expect["File created below /dev"] = f"file=/dev/sw-{tok}"

    mysqld = tmp / "mysqld"
    shutil.copy2("/bin/bash", mysqld)
    sh(str(mysqld), "-c", f"/bin/true {tok}; true")
    expect["Database server spawned a process"] = f"command=true {tok}"

    sh("ln", "-s", "/etc/shadow", str(tmp / f"sym-{tok}"))
    expect["Symlink created over a sensitive file"] = f"linkpath={tmp}/sym-{tok}"
    hard = f"/var/tmp/hard-{tok}"  # the same filesystem as /etc
    sh("sh", "-c", f"ln /etc/shadow {hard}; rm -f {hard}")
    expect["Hardlink created over a sensitive file"] = f"newpath={hard}"

    log = f"/var/log/sw-{tok}.log"
    pathlib.Path(log).write_text("a line\n")
    sh("sh", "-c", f": > {log}; rm -f {log}")
    expect["Log file truncated"] = f"file={log}"

    shm = f"/dev/shm/sw-{tok}"
    shutil.copy2("/bin/true", shm)
    sh(shm)
    os.unlink(shm)
    expect["Program executed from /dev/shm"] = f"exe_path={shm}"

    sh(sys.executable, "-c", (
        f"# {tok}\n"
        "import ctypes, os, subprocess, sys\n"
        "c = subprocess.Popen(['sleep', '30'])\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.ptrace(16, c.pid, None, None) == 0:\n"
        "    os.waitpid(c.pid, 0); libc.ptrace(17, c.pid, None, None)\n"
        "c.kill(); c.wait()\n"))
    expect["Process attached with ptrace"] = tok

    sh("unshare", "--uts", "true", tok)
    expect["Namespace changed by a non-runtime process"] = tok

    ip = _host_ip()
    if ip is not None:
        with socket.socket() as server:
            server.bind((ip, 0))
            server.listen(1)
            port = server.getsockname()[1]
            sh("bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}; echo {tok} >&3")
        expect["Outbound connection from a shell"] = f"->{ip}:{port}"

    sh("find", f"/nonexistent-{tok}", "-name", "id_rsa")
    expect["Search for private keys or passwords"] = f"find /nonexistent-{tok} -name id_rsa"

    suid = tmp / f"suid-{tok}"
    suid.write_text("")
    sh("chmod", "u+s", str(suid))
    expect["Setuid or setgid bit set"] = f"file={suid}"

    ssh = tmp / ".ssh"
    ssh.mkdir()
    sh("sh", "-c", f"echo 'ssh-ed25519 AAAA {tok}' >> {ssh}/authorized_keys")
    expect["SSH authorized keys modified"] = f"file={ssh}/authorized_keys"

    history = tmp / ".bash_history"
    history.write_text("ls\n")
    sh("rm", "-f", str(history))
    expect["Shell history deleted"] = f"name={history}"

    sh("useradd", "--help", tok)
    expect["Account management program run"] = f"command=useradd --help {tok}"

    rc = tmp / ".bashrc"
    sh("sh", "-c", f"echo 'true {tok}' >> {rc}")
    expect["Shell configuration file modified"] = f"file={rc}"
    return expect


def _live(tmp_path, tok: str, act) -> tuple[dict[str, str], list[dict]]:
    """Run the agent (live eBPF, default rules, every match) while ``act(tok)`` performs
    actions; wait until each expected alert (rule -> text in its output) has arrived."""
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415

    from syswarden.testing import running_agent  # noqa: PLC0415

    alerts_path = tmp_path / "alerts.json"
    with running_agent("-o", "json_output=true", "-o", "rule_matching=all",
                       "-o", "stdout_output.enabled=false",
                       "-o", "file_output.enabled=true",
                       "-o", f"file_output.filename={alerts_path}") as agent:
        expect = act(tok)
        deadline = time.monotonic() + 60
        while True:
            alerts = [json.loads(line) for line in agent.lines(str(alerts_path))]
            missing = {rule: text for rule, text in expect.items()
                       if not any(a["rule"] == rule and text in a["output"] for a in alerts)}
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return missing, alerts


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for eBPF")
def test_default_rules_fire_on_real_actions(tmp_path):
    """Each host rule of the default ruleset, on the real syscalls of a real action, through
    the live eBPF source and the process enricher, into the file output."""
    import uuid  # noqa: PLC0415

    tok = uuid.uuid4().hex[:8]
    work = tmp_path / "work"
    work.mkdir()
    expect: dict[str, str] = {}
    missing, alerts = _live(tmp_path, tok,
                            lambda t: expect.update(_host_actions(t, work)) or expect)
    assert missing == {}, "\n".join(a["output"] for a in alerts if tok in a["output"])
    # nothing of ours fired a rule it should not have
    ours = {a["rule"] for a in alerts if tok in a["output"]}
    assert ours <= set(expect), ours - set(expect)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for eBPF")
def test_fileless_execution_from_a_real_memfd(tmp_path):
    import uuid  # noqa: PLC0415

    def act(tok: str) -> dict[str, str]:
        import subprocess  # noqa: PLC0415
        code = (f"import os; fd = os.memfd_create('sw-{tok}', 0); "
                "os.write(fd, open('/bin/true', 'rb').read()); "
                f"os.execve(fd, ['sw-{tok}'], {{}})")
        subprocess.run([sys.executable, "-c", code], check=False)
        return {"Fileless execution from a memfd": f"exe_path=memfd:sw-{tok}"}

    missing, _ = _live(tmp_path, uuid.uuid4().hex[:8], act)
    assert missing == {}


@pytest.mark.root
@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for eBPF")
def test_default_container_rules_fire_on_real_containers(tmp_path, docker_images,  # noqa: F811
                                                         containers):  # noqa: F811
    """The container rules on real containers started and used while the agent runs.

    (A privileged container cannot start on this machine: runc may not apply every
    capability here, so "Container started privileged" is covered by its rule test only.  The
    rules on a terminal, "Shell with a terminal in a container" and "Interactive shell for a
    system user", are too: the live source does not yet report proc.tty reliably.)"""
    import subprocess  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    def sh(*args: str) -> None:
        subprocess.run(list(args), check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def act(tok: str) -> dict[str, str]:
        mount = containers.run("alpine:latest", "sleep", "60", name=f"sw-mnt-{tok}",
                               volumes=("/proc:/host/proc:ro",))
        app = containers.run("alpine:latest", "sleep", "60", name=f"sw-app-{tok}")
        web = containers.run("nginx:latest", name=f"sw-web-{tok}")
        sh("docker", "exec", app.name, "sh", "-c",
           "cp /bin/busybox /tmp/apt-get && /tmp/apt-get true; rm -f /tmp/apt-get")
        sh("docker", "exec", app.name, "sh", "-c", f"echo x > /sw-{tok}")
        sh("docker", "exec", app.name, "sh", "-c", "echo x > /tmp/release_agent")
        sh("docker", "exec", app.name, "nc", "-h")
        sh("docker", "exec", web.name, "cat", "/etc/hostname")
        return {
            "Container started with a sensitive mount": f"container={mount.name}",
            "Package manager run in a container": f"container={app.name}",
            "Executable file created in a container": "file=/tmp/apt-get",
            "Write outside the data directories of a container": f"file=/sw-{tok}",
            "Cgroup release_agent written in a container": "file=/tmp/release_agent",
            "Network tool run in a container": f"container={app.name}",
            "Unexpected process in a container of a known image":
                "process=cat command=cat /etc/hostname",
        }

    tok = uuid.uuid4().hex[:8]
    missing, alerts = _live(tmp_path, tok, act)
    assert missing == {}, "\n".join(a["output"] for a in alerts if tok in a["output"])
