# Sourced by every lesson's scripts: find minict, print steps, check results.
# (MINICT may name the binary, as the tests do; else the checkout's, else the
# PATH's, as in the Vagrant VM.)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MINICT=${MINICT:-$repo/.venv/bin/minict}
if [ ! -x "$MINICT" ]; then
    MINICT=$(command -v minict) || { echo "minict not found: run scripts/setup.sh" >&2; exit 1; }
fi
failed=0

step() {
    printf '\n== %s\n' "$*"
}

require_root() {  # a lesson that makes namespaces, mounts or devices of its own
    if [ "$(id -u)" != 0 ]; then
        echo "this lesson runs as root: sudo $0" >&2
        exit 1
    fi
}

check() {  # check "what" "expected" "actual"
    if [ "$2" = "$3" ]; then
        echo "check: $1: ok"
    else
        echo "check: $1: FAILED (expected '$2', got '$3')"
        failed=1
    fi
}

explain() {  # the narration of a minict command, only the lines matching $NARRATION
    if [ "${EXPLAIN:-1}" = 1 ]; then
        "$MINICT" --explain "$@" 2>&1 >/dev/null | grep -E "$NARRATION" | cut -c1-220
    fi
}

ensure_busybox_image() {
    if "$MINICT" image inspect busybox >/dev/null 2>&1; then
        return
    fi
    # Offline: the image is built from the host's busybox-static, as scripts/demo.sh does.
    local work
    work=$(mktemp -d)
    (cd "$repo" && .venv/bin/python -m tests.helpers.busybox "$work/rootfs" >/dev/null)
    "$MINICT" import "$work/rootfs" busybox:latest >/dev/null
    rm -rf "$work"
}

all_checks_passed() {  # the last line, and the exit status
    if [ "$failed" = 0 ]; then
        printf '\nall checks passed\n'
    fi
    exit "$failed"
}
