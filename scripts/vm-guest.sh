#!/usr/bin/env bash
# Runs INSIDE the virtme-ng VM that scripts/vm-test.sh boots; not for hosts.
# Usage: vm-guest.sh RESULTS_DIR PYTEST_ARGS...
# RESULTS_DIR is the host directory shared read-write (--rwdir); we write
# "started" when the guest is up and "status" (pytest's exit status) at the
# end. Everything else the tests write goes to the guest's tmpfs overlays.
set -u
results=$1
shift
echo started >"$results/started"
cd "$(dirname "$0")/.." || exit 1

finish() {
    echo "$1" >"$results/status"
    exit "$1"
}

if ! grep -q 'virtme' /proc/cmdline || [ "$(id -u)" != 0 ]; then
    echo "vm-guest: this runs inside the test VM as root (scripts/vm-test.sh starts it)" >&2
    finish 1
fi

# virtme-ng's init mounts cgroup2 at /sys/fs/cgroup; its older bash init may not.
if ! grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || finish 1
fi
for c in memory pids cpu io cpuset; do
    if ! grep -qw "$c" /sys/fs/cgroup/cgroup.controllers; then
        echo "vm-guest: the VM's cgroup v2 has no $c controller" >&2
        finish 1
    fi
done
# io tests throttle a loop device; the module comes from the host's /lib/modules.
modprobe loop 2>/dev/null || true

# The guest's /tmp is itself an overlayfs (virtme's writable layer over the
# host's read-only /tmp), and overlayfs refuses another overlay's directory
# as its upperdir (EINVAL): containers' upper/work dirs need a plain
# filesystem. So the tests work in a tmpfs of their own.
work=$(mktemp -d /tmp/vm-work.XXXXXX) && mount -t tmpfs -o mode=1777 tmpfs "$work" || finish 1

# Python through 9p is slow: the guest's root is the host's, shared with no
# page cache (mount: sync, no cache=), so every stat, open and read of every
# module is a round trip to QEMU's main loop, under TCG. Each `minict`
# command spent about 6 s importing. Copies of the standard library and of
# this checkout (its .venv too) in a tmpfs, bound over the originals (same
# paths), cut that to about 2 s (`python -c "import
# minicontainer.cli.containers"`: 6.4-7.4 s -> 2.0-2.3 s), for one copy of
# about a minute. The copies go with the VM.
repo=$(pwd)
fast=$(mktemp -d /tmp/vm-fast.XXXXXX) && mount -t tmpfs tmpfs "$fast" || finish 1
stdlib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') || finish 1
copy_start=$(date +%s)
cp -a "$stdlib" "$fast/stdlib" && mount --bind "$fast/stdlib" "$stdlib" || finish 1
mkdir "$fast/checkout" && tar -C "$repo" --exclude=./.git -cf - . | tar -C "$fast/checkout" -xf - \
    && mount --bind "$fast/checkout" "$repo" || finish 1
cd "$repo" || finish 1
echo "vm-guest: $stdlib and $repo copied into a tmpfs in $(( $(date +%s) - copy_start )) s"
export HOME=$work/home TMPDIR=$work MINICT_VM_TIER=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$HOME"
echo "vm-guest: kernel $(uname -r), $(nproc) CPUs, cgroup v2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?

# Leak check over the whole run: every container's cgroup must be gone;
# only minict's own subtree (/sys/fs/cgroup/minict) may stay.
left=$(find /sys/fs/cgroup/minict -mindepth 1 -maxdepth 1 -type d 2>/dev/null)
if [ -n "$left" ]; then
    echo "vm-guest: cgroups left behind by the tests:" $left >&2
    [ "$status" = 0 ] && status=1
else
    echo "vm-guest: leak check: no container cgroup left under /sys/fs/cgroup/minict"
fi
finish "$status"
