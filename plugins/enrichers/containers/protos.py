"""The gRPC stubs of containerd's API and of the CRI, generated from the upstream ``.proto`` files.

``proto/`` holds the upstream files unmodified, each with its licence (Apache-2.0):
``proto/containerd/`` is containerd's ``api/`` (github.com/containerd/containerd, commit
``301026e58c619e63d09c0ec411012e54c0124b03``), ``proto/cri/api.proto`` is the CRI
(github.com/kubernetes/cri-api ``pkg/apis/runtime/v1/api.proto``, commit
``791729b255f0c2d0019d3862ba6ef000c4a30c4d``).  Only the services and types the engines use are
there.

``python -m syswarden.plugins.enrichers.containers.protos`` (run by ``scripts/setup.sh``)
generates ``stubs/`` with ``grpc_tools.protoc``: the generated modules are not committed.
containerd's files import each other as ``types/...``, which Python would read as its own
``types`` module, so the files are compiled from a copy placed under this package's path
(``syswarden/plugins/enrichers/containers/stubs/...``), their ``import`` lines given that
prefix: the generated modules then import each other as submodules of :mod:`.stubs`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "proto")
STUBS = os.path.join(HERE, "stubs")
PACKAGE = "syswarden/plugins/enrichers/containers/stubs"

#: the files compiled: (directory under proto/, files relative to it)
SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("containerd", (
        "types/descriptor.proto", "types/metrics.proto", "types/mount.proto",
        "types/fieldpath.proto", "types/event.proto", "types/task/task.proto",
        "services/containers/v1/containers.proto", "services/tasks/v1/tasks.proto",
        "services/events/v1/events.proto", "services/images/v1/images.proto",
        "services/version/v1/version.proto", "services/namespaces/v1/namespace.proto",
        "events/task.proto", "events/container.proto",
    )),
    ("cri", ("api.proto",)),
)

_IMPORT = re.compile(r'^import "((?!google/)[^"]+)";', re.M)


def generate(out: str = STUBS) -> list[str]:
    """Compile every file of :data:`SOURCES` into ``out``; return the modules written."""
    from grpc_tools import protoc  # the generator: only needed at set-up time

    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "out")
        os.makedirs(dst)
        files: list[str] = []
        for top, names in SOURCES:
            for name in names:
                with open(os.path.join(PROTO, top, name), encoding="utf-8") as fh:
                    text = fh.read()
                text = _IMPORT.sub(lambda m: f'import "{PACKAGE}/{top}/{m.group(1)}";', text)
                path = os.path.join(src, PACKAGE, top, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
                files.append(os.path.join(PACKAGE, top, name))
        code = protoc.main(["protoc", f"-I{src}", f"-I{include}", f"--python_out={dst}",
                            f"--grpc_python_out={dst}", *files])
        if code != 0:
            raise RuntimeError(f"protoc failed ({code})")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(os.path.join(dst, PACKAGE), out)
    written = []
    for dirpath, _dirs, names in os.walk(out):
        init = os.path.join(dirpath, "__init__.py")
        if not os.path.exists(init):
            with open(init, "w", encoding="utf-8") as fh:
                fh.write("")
        written += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
    return sorted(written)


def main() -> int:
    modules = generate()
    print(f"protos: {len(modules)} modules in {STUBS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
