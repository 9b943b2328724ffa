#!/usr/bin/env bash
# Idempotent machine set-up for syswarden: system packages, kernel header links, the venv.
# Fast when already done (each step checks first).  Run as root (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-bpfcc linux-headers-amd64 docker.io busybox-static containerd podman)
# Receivers the output tests talk to, the Prometheus that scrapes the agent and the NATS
# servers of the fleet's tests (installed without recommends).
APT_RECEIVERS=(rsyslog prometheus-alertmanager prometheus redmine redmine-sqlite nats-server)

missing() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done; }

need=$(missing "${APT_PACKAGES[@]}")
need_recv=$(missing "${APT_RECEIVERS[@]}")
if [ -n "$need$need_recv" ]; then
    echo "setup: installing system packages: $need $need_recv"
    apt-get update -qq
    [ -z "$need" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
    [ -z "$need_recv" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_recv
fi

# BCC compiles against /lib/modules/$(uname -r)/{build,source}; the running kernel has no
# package of its own here, so point them at Debian's headers (tracepoint arguments only: no
# struct is read at these headers' offsets).
K=$(uname -r)
if [ ! -e "/lib/modules/$K/build/Makefile" ]; then
    build=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)
    common=$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -n 1)
    mkdir -p "/lib/modules/$K"
    ln -sfn "$build" "/lib/modules/$K/build"
    ln -sfn "$common" "/lib/modules/$K/source"
    echo "setup: linked /lib/modules/$K/build -> $build"
fi

# The CRI's container event stream (GetContainerEvents) needs containerd 1.7 or later; Debian
# 12's is 1.6.  The tests that follow that stream run Debian 13's containerd, unpacked (not
# installed: the machine's containerd stays Debian 12's) under $CTD_NEXT, fetched with apt from
# the Debian mirror this machine already uses, through a private apt state.
CTD_NEXT=/opt/syswarden-test/containerd-next
if [ ! -x "$CTD_NEXT/usr/bin/containerd" ]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    if [ -n "$mirror" ]; then
        tmp=$(mktemp -d)
        mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
        echo "deb $mirror trixie main" > "$tmp/sources.list"
        apt_private=(-o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=/nonexistent
                     -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o APT::Sandbox::User=root)
        if apt-get "${apt_private[@]}" update -qq && (cd "$tmp" && apt-get "${apt_private[@]}" download -qq containerd/trixie); then
            mkdir -p "$CTD_NEXT" && dpkg-deb -x "$tmp"/containerd_*.deb "$CTD_NEXT"
            echo "setup: $("$CTD_NEXT/usr/bin/containerd" --version) unpacked in $CTD_NEXT"
        else
            echo "setup: Debian 13's containerd could not be fetched; the CRI event stream tests will skip"
        fi
        rm -rf "$tmp"
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.syswarden-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test,stubs]'
    touch "$stamp"
fi
# containerd's and the CRI's gRPC stubs, generated from the vendored .proto files (not committed)
stubs=plugins/enrichers/containers/stubs
if [ ! -f "$stubs/cri/api_pb2.py" ] || [ -n "$(find plugins/enrichers/containers/proto -newer "$stubs/cri/api_pb2.py" -name '*.proto' | head -n 1)" ]; then
    .venv/bin/python -m syswarden.plugins.enrichers.containers.protos
fi
# bcc is not on PyPI: reach Debian's module (pure Python over libbcc) from the venv, that one
# package only, by a symlink in site-packages.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ] && [ -d /usr/lib/python3/dist-packages/bcc ]; then
    ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
fi
echo "setup: ok"
