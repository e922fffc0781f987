#!/usr/bin/env bash
# A multi-node Slurm cluster on one machine, for the tests, the lessons and
# classrooms: scripts/cluster.sh up [N] | down | status (scripts/cluster.py
# says how it is made). `up` prints the export lines to use it:
#   eval "$(scripts/cluster.sh up 2)"; srun -N2 hostname; scripts/cluster.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/cluster.py "$@"
