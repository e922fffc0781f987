#!/bin/bash
# check.sh LEVEL [FILE]: check a level of the build-your-own-container track from the
# outside, the way the tests check minict, and say what passed and what to do next.
#   sudo examples/build-your-own/check.sh 1                 # your level1.py
#   sudo examples/build-your-own/check.sh 1 ~/my-level1.py  # another file
# LEVEL is 0 to 7; FILE defaults to the level's skeleton, levelLEVEL.py, next to this script.
# Exit status: 0 all checks passed, 1 some failed, 2 a bad argument.
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: check.sh LEVEL [FILE]  (LEVEL 0-7; FILE defaults to levelLEVEL.py)" >&2
    exit 2
fi
case $1 in
    [0-7]) ;;
    *) echo "check.sh: no level '$1': the levels are 0 to 7" >&2; exit 2 ;;
esac
if [ ! -f "$here/checks/level$1.sh" ]; then
    echo "check.sh: level $1 has no check yet ($here/checks/level$1.sh is missing)" >&2
    exit 2
fi
exec bash "$here/checks/level$1.sh" "${2:-$here/level$1.py}"
