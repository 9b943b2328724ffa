#!/usr/bin/env bash
# Start dockerd in the background if it is not answering (no iptables, no bridge: containers
# run with --network none), and wait until it does.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
nohup dockerd --iptables=false --bridge=none >/tmp/syswarden-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.5
done
echo "dockerd did not start; see /tmp/syswarden-dockerd.log" >&2
exit 1
