#!/usr/bin/env bash
# Lesson step 2: a command that starts 100 processes, without and then with --pids-limit 20.
# Run as root in the Vagrant VM (or any host with cgroup v2): sudo ./fork-bomb.sh
set -u
. "$(dirname "$0")/../lesson.sh"
ensure_busybox_image

# A *bounded* bomb: 100 sleeping children, then wait for them. (The classic
# unbounded one, bomb() { bomb | bomb & }; bomb, would take the machine down
# in step 2a. Try it only with a limit.)
BOMB='for i in $(seq 100); do sleep 5 & done; echo "started 100 processes"; wait'

step "2a. no limit: all 100 processes start"
"$MINICT" --explain run --rm busybox sh -c "$BOMB"
echo "== exit status: $?"

step "2b. --pids-limit 20: fork() fails with EAGAIN once the container has 20 processes"
"$MINICT" --explain run --rm --pids-limit 20 busybox sh -c "$BOMB"
echo "== exit status: $?"
