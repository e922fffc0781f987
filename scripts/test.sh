#!/usr/bin/env bash
# README command (2): install everything, then run the whole test suite:
#   1. the host tiers (unit + root) with pytest,
#   2. the cgroup v2 tier inside a real VM (scripts/vm-test.sh), in one boot.
# Extra arguments go to the host pytest run (e.g. -k pull).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

status=0
# The workload tier's ML image (tests/workload), built before pytest because
# the tests run with no network; cached, so a second run takes seconds. The
# tests fail (not skip) without it when started from here.
./scripts/ml-image.sh || status=$?
export MINICT_WORKLOAD_IMAGE_REQUIRED=1
.venv/bin/python -m pytest tests "$@" || status=$?
if [ -x scripts/vm-test.sh ] && [ $# -eq 0 ]; then
    ./scripts/vm-test.sh || status=$?
fi
exit $status
