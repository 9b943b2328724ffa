"""Falco's container.* and k8s.* readers: host, unknown metadata, mounts, labels, pods; and every
container./k8s. field the Falco rule files use is declared."""

from __future__ import annotations

import re

import pytest

from syswarden.core.errors import RuleError
from syswarden.core.event import Container, Event, Mount, Process
from syswarden.core.fields import ArgKind, FieldRegistry
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.compiler import compile_condition
from syswarden.plugins.enrichers.containers.fields import FIELDS

REG = FieldRegistry(FIELDS)
FULL = "1cb961bc2756ce61547ad845aae3e0d593b8943a6c5cf7b7627cee5b7c873e89"


def read(name: str, evt: Event, arg=None):
    d = REG.get(name)
    assert d is not None, name
    return d.bind(arg).read(evt)


def event(container: Container | None, container_id: str = "") -> Event:
    evt = Event("execve", ts=2_000_000_000_000_000_000)
    evt.proc = Process(100, comm="nginx", container_id=container_id)
    evt.container = container
    return evt


def web() -> Container:
    return Container(
        id=FULL[:12], full_id=FULL, name="web", image="nginx:latest", image_repository="nginx",
        image_tag="latest", image_id="ab" * 32, privileged=False, complete=True,
        start_ts=1_999_999_999_000_000_000, labels={"team": "blue"},
        mounts=[Mount("/mnt", "/tmp/mnt", "ro", False, "rprivate"),
                Mount("/var/run/docker.sock", "/var/run/docker.sock", "", True, "rprivate")])


def test_container_fields() -> None:
    evt = event(web(), FULL[:12])
    assert read("container.id", evt) == FULL[:12]
    assert read("container.full_id", evt) == FULL
    assert read("container.name", evt) == "web"
    assert read("container.image", evt) == "nginx:latest"
    assert read("container.image.repository", evt) == "nginx"
    assert read("container.image.tag", evt) == "latest"
    assert read("container.type", evt) == "docker"
    assert read("container.privileged", evt) is False
    assert read("container.info", evt) == f"web (id={FULL[:12]})"
    assert read("container.label", evt, "team") == "blue"
    assert read("container.label", evt, "nope") is None
    assert read("container.labels", evt) == "team:blue"
    assert read("container.duration", evt) == 1_000_000_000
    assert read("container.healthcheck", evt) == "NONE"


def test_host_reads_host_and_nothing_else() -> None:
    evt = event(None, "host")
    for name in ("container.id", "container.name", "container.type", "container.full_id"):
        assert read(name, evt) == "host", name
    assert read("container.info", evt) == "host (id=host)"
    for name in ("container.image", "container.image.repository", "container.privileged",
                 "container.mounts", "container.start_ts", "k8s.ns.name", "k8s.pod.name"):
        assert read(name, evt) is None, name
    assert read("container.mount.dest", evt, "/mnt*") is None


def test_unknown_metadata_keeps_id_and_type_only() -> None:
    pending = Container(id=FULL[:12], full_id=FULL, type="cri-o", complete=False)
    evt = event(pending, FULL[:12])
    assert read("container.id", evt) == FULL[:12]
    assert read("container.type", evt) == "cri-o"
    assert read("container.name", evt) is None
    assert read("container.image.repository", evt) is None
    assert read("container.info", evt) == f"<NA> (id={FULL[:12]})"
    assert read("container.mounts", evt) is None
    assert read("container.mount.dest", evt, "/mnt*") is None
    # and with no enricher at all (id unknown) nothing is known
    assert read("container.id", event(None, "")) is None


@pytest.mark.parametrize("name,arg,expected", [
    ("container.mount.dest", "/mnt*", "/tmp/mnt"),        # glob on the source
    ("container.mount.dest", "/mnt", "/tmp/mnt"),
    ("container.mount.dest", "/proc*", None),             # no such mount: unknown, not "N/A"
    ("container.mount.dest", "/var/run/docker.sock", "/var/run/docker.sock"),
    ("container.mount.dest", "/var*", "/var/run/docker.sock"),   # '*' crosses '/'
    ("container.mount.dest", 0, "/tmp/mnt"),              # by index
    ("container.mount.dest", "1", "/var/run/docker.sock"),
    ("container.mount.dest", 2, None),
    ("container.mount.source", "/tmp/*", "/mnt"),         # source[...] globs on the dest
    ("container.mount.mode", "/mnt*", "ro"),
    ("container.mount.rdwr", "/mnt*", "false"),
    ("container.mount.rdwr", "/var*", "true"),
    ("container.mount.propagation", 0, "rprivate"),
    ("container.mount", "/mnt*", "/mnt:/tmp/mnt:ro:false:rprivate"),
])
def test_mount_fields(name: str, arg, expected) -> None:
    assert read(name, event(web()), arg) == expected


def test_mounts_list_and_multi_valued_dest() -> None:
    evt = event(web())
    assert read("container.mounts", evt) == ("/mnt:/tmp/mnt:ro:false:rprivate,"
                                             "/var/run/docker.sock:/var/run/docker.sock::true:"
                                             "rprivate")
    bound = REG.get("container.mount.dest").bind(None)
    assert bound.many and bound.read(evt) == ("/tmp/mnt", "/var/run/docker.sock")
    no_mounts = Container(id="abc", complete=True)
    assert read("container.mounts", event(no_mounts)) == ""


def test_k8s_fields_from_kubelet_labels() -> None:
    sandbox = "f" * 64
    c = Container(id=FULL[:12], full_id=FULL, name="k8s_app_web-0_shop_u1_0", complete=True,
                  labels={"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-0",
                          "io.kubernetes.pod.uid": "u1", "io.kubernetes.sandbox.id": sandbox})
    c.pod_labels = {"app": "web", "io.kubernetes.pod.name": "web-0"}
    evt = event(c)
    assert read("k8s.ns.name", evt) == "shop"
    assert read("k8s.pod.name", evt) == "web-0"
    assert read("k8s.pod.uid", evt) == read("k8s.pod.id", evt) == "u1"
    assert read("k8s.pod.sandbox_id", evt) == "f" * 12
    assert read("k8s.pod.full_sandbox_id", evt) == sandbox
    assert read("k8s.pod.label", evt, "app") == "web"
    assert read("k8s.pod.labels", evt) == "app:web"
    assert read("container.k8s.ns.name", evt) == "shop"



@pytest.mark.parametrize("name", [f"k8s.{kind}.{what}" for kind in ("rc", "svc", "rs",
                                                                   "deployment")
                                  for what in ("name", "id", "label", "labels")]
                         + ["k8s.ns.id", "k8s.ns.label", "k8s.ns.labels"])
def test_falcos_deprecated_k8s_object_fields_are_refused_with_falcos_reason(name):
    # Falco 0.44's container plugin declares them deprecated and never extracts them
    arg = "[app]" if name.endswith(".label") else ""
    with pytest.raises(RuleError) as exc:
        compile_condition(f"{name}{arg} = web", collect_fields())
    assert f"{name} is not supported by syswarden: deprecated in Falco" in str(exc.value)
    assert "k8smeta plugin" in str(exc.value)


RULE_FILES = ["falco-rules/falco_rules.yaml", "falco-rules/falco-incubating_rules.yaml",
              "falco-rules/falco-sandbox_rules.yaml", "seed-rules/falco_rules.yaml",
              "seed-rules/falco_rules_3.yaml", "seed-rules/falco_rules_4.yaml",
              "seed-rules/falco_rules_5.yaml"]
FIELD_REF = re.compile(r"(?<![\w.])((?:container|k8s)\.[a-z_.]+[a-z_])(\[[^\]]*\])?")


def test_every_container_and_k8s_field_in_the_rule_files_is_declared(compat) -> None:
    used: dict[str, set[str]] = {}
    for rel in RULE_FILES:
        text = (compat / rel).read_text()
        for m in FIELD_REF.finditer(text):
            used.setdefault(m.group(1), set()).add(m.group(2) or "")
    # words like k8s.gcr.io are image names, not fields
    fields = {n: a for n, a in used.items() if not n.endswith((".io", ".gcr"))
              and not n.startswith(("k8s.gcr", "k8s.io"))}
    assert {"container.id", "container.info", "container.image.repository",
            "container.mount.dest", "k8s.ns.name"} <= set(fields)
    for name, args in fields.items():
        d = REG.get(name)
        assert d is not None, f"{name} is used by the rules but not declared"
        for arg in args - {""}:
            assert d.arg is not ArgKind.NONE, f"{name}{arg}: takes no argument"
            d.bind(arg.strip("[]"))
