#!/usr/bin/env bash
# README command (1): install everything, then the main job on a local
# default, with no network: build a busybox image from the host's
# busybox-static, import it into the store, list the store, and run a
# container from it that shows what it sees (its hostname, PID 1, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

minict=.venv/bin/minict
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building a busybox root filesystem from /bin/busybox"
.venv/bin/python -m tests.helpers.busybox "$work/rootfs" >/dev/null
echo "== minict import $work/rootfs busybox:latest"
"$minict" import "$work/rootfs" busybox:latest
echo "== minict images"
"$minict" images
echo "== minict run --rm --hostname demo busybox: what the container sees"
"$minict" run --rm --hostname demo busybox sh -c \
    'echo "hostname: $(hostname)"; echo "PID 1: $(cat /proc/1/comm) (this shell is PID $$)";
     echo "mounts:"; cat /proc/self/mounts; true'
