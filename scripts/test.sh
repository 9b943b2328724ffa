#!/usr/bin/env bash
# The whole test suite.  Starts what the tests need that lives outside pytest (dockerd);
# receivers (rsyslog, Alertmanager, Redmine) are started and stopped by the test fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dockerd.sh
exec .venv/bin/python -m pytest -q --durations=15 "$@"
