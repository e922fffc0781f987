# Sourced by this lesson's scripts: find minict, make sure a busybox image is there.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# MINICT may name the binary (the tests do); else the checkout's, else the PATH's (Vagrant VM).
MINICT=${MINICT:-$repo/.venv/bin/minict}
if [ ! -x "$MINICT" ]; then
    MINICT=$(command -v minict) || { echo "minict not found: run scripts/setup.sh" >&2; exit 1; }
fi

step() {
    printf '\n== %s\n' "$*"
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
