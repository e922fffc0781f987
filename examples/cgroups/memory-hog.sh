#!/usr/bin/env bash
# Lesson step 1: a command that wants 128 MiB, without and then with --memory 64m.
# Run as root in the Vagrant VM (or any host with cgroup v2): sudo ./memory-hog.sh
set -u
. "$(dirname "$0")/../lesson.sh"
ensure_busybox_image

# The shell doubles a 16-byte string 23 times: 128 MiB, and while it copies
# the string it briefly holds the old one as well.
HOG='x=0123456789abcdef; for i in $(seq 23); do x="$x$x"; done; echo "holding ${#x} bytes"'

step "1a. no limit: the hog gets the memory it asks for"
"$MINICT" --explain run --rm busybox sh -c "$HOG"
echo "== exit status: $?"

step "1b. --memory 64m: at 64 MiB the kernel's OOM killer ends it (137 = 128 + SIGKILL)"
"$MINICT" --explain run --rm --memory 64m busybox sh -c "$HOG"
echo "== exit status: $?"
