#!/usr/bin/env bash
# `make image`: the agent as a container image, built offline (no registry is reachable here).
#
# 1. A Debian 12 base, made once by debootstrap (python3, Debian's bcc, the project's Python
#    dependencies in /opt/venv), kept as a tarball under $IMAGE_CACHE named by the hash of this
#    script and the dependencies, and `docker import`ed as syswarden-base:<hash>.
# 2. deploy/Dockerfile on top: the project's source only (a COPY, seconds), as $IMAGE.
# Kernel headers are not in the image: BCC compiles against the host's, mounted at
# /lib/modules and /usr/src (deploy/daemonset.yaml), which match the running kernel.
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."
. scripts/debian.sh
IMAGE=${IMAGE:-syswarden:0.1.0}
IMAGE_CACHE=${SYSWARDEN_IMAGE_CACHE:-/var/cache/syswarden-image}
mkdir -p "$IMAGE_CACHE"
exec 9>"$IMAGE_CACHE/.lock"
flock 9                                   # one build at a time; a second run waits, then reuses

mapfile -t DEPS < <(project_deps)
hash=$(cat "$SELF" scripts/debian.sh <(printf '%s\n' "${DEPS[@]}") | sha256sum | cut -c1-12)
BASE=syswarden-base:$hash
tarball=$IMAGE_CACHE/base-$hash.tar

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    if [ ! -f "$tarball" ]; then
        missing=$(dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q "ok installed" \
                  || echo debootstrap)
        if [ -n "$missing" ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
        fi
        ROOT=$IMAGE_CACHE/root
        rm -rf "$ROOT"
        mkdir -p "$ROOT"
        echo "image: debootstrap from $(debian_mirror) into $ROOT"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-bpfcc,ca-certificates \
            bookworm "$ROOT" "$(debian_mirror)" >"$IMAGE_CACHE/debootstrap.log" 2>&1 \
            || { tail -n 30 "$IMAGE_CACHE/debootstrap.log" >&2; exit 1; }
        chroot_pip_env "$ROOT"
        chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
        chroot "$ROOT" /opt/venv/bin/pip install -q --no-cache-dir "${DEPS[@]}"
        ln -sfn /usr/lib/python3/dist-packages/bcc "$ROOT/opt/venv/lib/python3.11/site-packages/bcc"
        rm -f "$ROOT/etc/resolv.conf"
        rm -rf "$ROOT/var/cache/apt/archives"/*.deb "$ROOT/var/lib/apt/lists"/* "$ROOT/usr/share/doc" \
               "$ROOT/usr/share/man" "$ROOT/usr/share/locale"
        tar -C "$ROOT" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$ROOT"
    fi
    echo "image: docker import $tarball as $BASE"
    docker import "$tarball" "$BASE" >/dev/null
fi
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$BASE" -f deploy/Dockerfile -t "$IMAGE" . >/dev/null
echo "image: $IMAGE built on $BASE"
