"""Falco's network rules: connections out to, and in from, the generator's test host (a network
namespace on this machine, ``base.test_host``), by a shell, a program named ssh, an
interpreter, and a program named java that receives a class file; and from the container to a
test host linked to it alone (``base.container_link``): the cloud metadata address, a node
port, the Kubernetes API server's address (where this machine resolves its name to it, as a
cluster's node does)."""

from __future__ import annotations

import socket
import subprocess

from .base import (PYTHON, TEST_HOST_NET, FalcoAction, Run, SkipAction, container_link, sh,
                   test_host)


def shell_outbound(run: Run) -> None:
    with test_host(run) as host:
        sh("bash", "-c", f"exec 3<>/dev/tcp/{host}/8443; echo hi >&3")


def ssh_non_standard_port(run: Run) -> None:
    ssh = run.named("ssh", "bash")
    with test_host(run, port=4444) as host:
        sh(ssh, "-c", f"exec 3<>/dev/tcp/{host}/4444; echo SSH-2.0-sw-gen >&3")


def interpreter_outbound_udp(run: Run) -> None:
    with test_host(run) as host:
        sh(PYTHON, "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                         f"s.connect(('{host}', 9999)); s.send(b'sw-gen')")


#: the test host connects back to this machine (``here``) until a listener answers
CONNECT_BACK = ("import socket, time; print('up', flush=True)\n"
                "for _ in range(50):\n"
                "    try:\n"
                "        c = socket.create_connection(('{here}', {port}), timeout=1)\n"
                "        c.send(b'hi'); break\n"
                "    except OSError: time.sleep(0.1)\n")


#: a test host on a private network (RFC 1918), which Falco's inbound rule allows as a source
PRIVATE_TEST_HOST_NET = ("10.255.18.1", "10.255.18.2", 30)


def _inbound(run: Run, net: tuple[str, str, int]) -> None:
    here = net[0]
    with test_host(run, port=8022, server=CONNECT_BACK, net=net):
        sh(PYTHON, "-c", "import socket; s = socket.socket(); "
                         "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                         f"s.bind(('{here}', 8022)); s.listen(1); s.settimeout(5); "
                         "c, _ = s.accept(); c.recv(8)", timeout=10)


def inbound_connection(run: Run) -> None:
    _inbound(run, TEST_HOST_NET)


def interpreter_inbound(run: Run) -> None:
    _inbound(run, PRIVATE_TEST_HOST_NET)


#: the test host serves the first bytes of a Java class file to whoever connects
SERVE_CLASS = ("import socket; s = socket.socket(); "
               "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
               "s.bind(('{there}', {port})); s.listen(4); print('up', flush=True); "
               "c, _ = s.accept(); c.sendall(bytes.fromhex('cafebabe00000034')); c.close()")


def java_class_download(run: Run) -> None:
    java = run.copy_binary(PYTHON, "java")
    with test_host(run, port=8080, server=SERVE_CLASS) as host:
        try:
            sh(java, "-c", f"import socket; c = socket.create_connection(('{host}', 8080), 5); "
                           "c.recv(64)", timeout=10)
        except subprocess.TimeoutExpired:
            pass


#: the container's end and the cloud metadata address (link-local, as on a cloud machine)
METADATA_NET = ("169.254.169.253", "169.254.169.254", 30)
#: the container's end and a Kubernetes node, reached on a node port
NODE_NET = ("10.255.19.1", "10.255.19.2", 30)


#: the container's end and the Kubernetes API server's service address (the first of
#: Kubernetes' default service network), and the name Falco's stable rule resolves
K8S_API_NET = ("10.96.0.2", "10.96.0.1", 30)
K8S_API_NAME = "kubernetes.default.svc.cluster.local"


def _resolves_to(name: str, address: str) -> bool:
    try:
        return any(info[4][0] == address for info in socket.getaddrinfo(name, None))
    except OSError:
        return False


def container_k8s_api(run: Run) -> None:
    host = K8S_API_NET[1]
    if not _resolves_to(K8S_API_NAME, host):
        raise SkipAction(f"{K8S_API_NAME} does not resolve to {host} on this machine, as on a "
                         f"cluster's node (a line '{host} {K8S_API_NAME}' in /etc/hosts "
                         "before the agent starts gives it)")
    with container_link(run, K8S_API_NET, 443) as host:
        run.in_container(f"echo sw-gen | /bin/nc -w 1 {host} 443")


def container_metadata(run: Run) -> None:
    with container_link(run, METADATA_NET, 80) as host:
        run.in_container(f"printf 'GET /latest/meta-data/ HTTP/1.0\\r\\n\\r\\n' | "
                         f"/bin/nc -w 1 {host} 80")


def container_node_port(run: Run) -> None:
    with container_link(run, NODE_NET, 30080) as host:
        run.in_container(f"echo sw-gen | /bin/nc -w 1 {host} 30080")


ACTIONS: tuple[FalcoAction, ...] = (
    FalcoAction("shell-outbound", ("System procs network activity",),
                "bash connects to the test host", shell_outbound),
    FalcoAction("ssh-non-standard-port", ("Disallowed SSH Connection Non Standard Port",),
                "a program named ssh connects to the test host on port 4444",
                ssh_non_standard_port),
    FalcoAction("interpreter-outbound-udp",
                ("Unexpected UDP Traffic", "Interpreted procs outbound network activity"),
                "python3 connects a UDP socket to the test host", interpreter_outbound_udp),
    FalcoAction("inbound-connection", ("Unexpected inbound connection source",),
                "python3 accepts a connection from the test host", inbound_connection),
    FalcoAction("interpreter-inbound", ("Interpreted procs inbound network activity",),
                "python3 accepts a connection from a test host on a private (allowed) network",
                interpreter_inbound),
    FalcoAction("java-class-download", ("Java Process Class File Download",),
                "a program named java receives a class file's magic from the test host",
                java_class_download),
    FalcoAction("container-metadata", ("Contact EC2 Instance Metadata Service From Container",),
                "in the container: an HTTP request to 169.254.169.254 (a test host linked to "
                "the container only)", container_metadata),
    FalcoAction("container-k8s-api", ("Contact K8S API Server From Container",),
                f"in the container: nc to {K8S_API_NET[1]}:443, which {K8S_API_NAME} names "
                "on this machine (a test host linked to the container only)",
                container_k8s_api),
    FalcoAction("container-node-port", ("Unexpected K8s NodePort Connection",),
                "in the container: nc to port 30080 of a test host linked to the container",
                container_node_port),
)
