#!/usr/bin/env bash
# README command (1): install everything, then the main job on a local
# default, with no network: build a busybox image from the host's
# busybox-static, import it into the store, and list the store.
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
