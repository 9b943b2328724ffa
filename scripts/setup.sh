#!/usr/bin/env bash
# Idempotent machine set-up for syswarden: system packages, kernel header links, the venv.
# Fast when already done (each step checks first).  Run as root (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-bpfcc linux-headers-amd64 docker.io busybox-static)
# Receivers the output tests talk to, and the Prometheus that scrapes the agent (installed
# without recommends).
APT_RECEIVERS=(rsyslog prometheus-alertmanager prometheus redmine redmine-sqlite)

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

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.syswarden-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
# bcc is not on PyPI: reach Debian's module (pure Python over libbcc) from the venv, that one
# package only, by a symlink in site-packages.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ] && [ -d /usr/lib/python3/dist-packages/bcc ]; then
    ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
fi
echo "setup: ok"
