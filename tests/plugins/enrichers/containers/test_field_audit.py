"""The field audit (issue 14) for the ``container.*`` and ``k8s.*`` families: every field
``--list-fields`` prints reads a value other than the unknown (and other than its default:
empty, 0, false, NONE) on a replayed event of a Kubernetes pod's container described in full (the
capture format's container: what the container enricher fills live, see its own live tests),
or is declared unsupported (refused when rules load, with the reason).  No Kubernetes API server
runs here, so the ``k8s.*`` fields are proven by replay: they are read from the CRI runtime's
labels and pod sandbox, as Falco's container plugin reads them."""

from __future__ import annotations

from syswarden.core.capture import Decoder, record_to_event
from syswarden.core.fields import ArgKind
from syswarden.core.plugins import make_plugin_manager

FAMILIES = ("container.", "k8s.")

SANDBOX = "5" * 64
FULL_ID = "c0ffee" + "1" * 58

#: A CRI container of a Kubernetes pod, every piece of metadata known.
RECORD = {
    "type": "openat", "res": 3, "args": {"flags": "O_RDONLY"},
    "proc": {"name": "cat", "cmdline": "cat /etc/hostname", "parent": {"name": "sh"}},
    "fd": {"name": "/etc/hostname"},
    "container": {
        "id": FULL_ID[:12], "full_id": FULL_ID, "type": "containerd", "name": "web",
        "image": "registry.example.com/shop/web:1.2", "image_repository":
        "registry.example.com/shop/web", "image_tag": "1.2", "image_id": "a" * 12,
        "image_digest": "sha256:" + "b" * 64, "privileged": True,
        "mounts": [{"source": "/var/lib/kubelet/pods/x/volumes/data", "dest": "/data",
                    "mode": "rw", "rw": True, "propagation": "rprivate"}],
        "labels": {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-0",
                   "io.kubernetes.pod.uid": "3e41dc6b-08a8-44db-bc2a-3724b18ab19a",
                   "io.kubernetes.sandbox.id": SANDBOX, "SW_AUDIT": "1"},
        "start_ts": 1_700_000_000_000_000_000, "healthcheck": "curl -f http://localhost/",
        "liveness_probe": ["cat", "/tmp/healthy"], "readiness_probe": ["test", "-e", "/ready"],
        "ip": "10.244.0.7", "user": "app", "host_pid": True, "host_network": True,
        "host_ipc": True, "pod_labels": {"app": "web", "SW_AUDIT": "1"},
        "cni_json": '{"interfaces":[{"name":"eth0"}],"ips":[{"address":"10.244.0.7/24"}]}',
        "complete": True,
    },
}


def test_every_container_and_k8s_field_is_computed_or_refused():
    every = make_plugin_manager({}).fields()
    fields = [d for d in every if d.name.startswith(FAMILIES)]
    evt = record_to_event(RECORD, 1, Decoder())
    missing = {}
    for d in fields:
        if d.unsupported:
            assert d.unsupported.strip()
            continue
        arg = {ArgKind.KEY: "SW_AUDIT", ArgKind.INDEX_OR_KEY: 0}.get(d.arg)
        value = d.bind(arg).read(evt)
        if value in (None, "", 0, False, (), "NONE"):
            missing[d.name] = value
    assert missing == {}
