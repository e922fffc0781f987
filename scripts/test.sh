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
# The TensorFlow image beside it (tests/workload/test_tensorflow.py,
# tests/cluster/test_tf_multiworker.py), built and required the same way.
./scripts/tf-image.sh || status=$?
# The Horovod image, FROM the ML image (tests/workload/test_horovod.py,
# tests/cluster/test_horovod.py), built and required the same way.
./scripts/hvd-image.sh || status=$?
export MINICT_WORKLOAD_IMAGE_REQUIRED=1
# The real Apptainer hpcshim's tests run against (scripts/apptainer.sh: built
# once from the project's kit in ../shared/apptainer, cached like the image).
# Without a kit (exit 3) those tests skip and say how to get Apptainer; a kit
# that is there must build, and then its tests fail (not skip) without it.
apptainer_status=0
./scripts/apptainer.sh || apptainer_status=$?
case $apptainer_status in
    0) export MINICT_APPTAINER_REQUIRED=1 ;;
    3) ;;
    *) status=$apptainer_status ;;
esac
.venv/bin/python -m pytest tests "$@" || status=$?
if [ -x scripts/vm-test.sh ] && [ $# -eq 0 ]; then
    ./scripts/vm-test.sh || status=$?
fi
exit $status
