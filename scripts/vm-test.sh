#!/usr/bin/env bash
# The cgroup v2 test tier: boot Debian's own kernel (linux-image-amd64) under
# QEMU with virtme-ng, sharing this machine's root filesystem read-only, and
# run the cgroup2-marked tests, and the host's container tests marked vmtier
# (the core of `minict run`, lifecycle and crash recovery, now with a cgroup
# for every container), inside it in ONE boot. The pytest exit status
# comes back as this script's exit status; the test output comes back on
# stdout.
#
# Why a VM: on hosts whose memory/pids/cpu controllers are held by cgroup v1
# hierarchies (our build machines), no process can use cgroup v2 limits. A VM
# running a stock kernel has a pristine unified hierarchy.
#
# Usage: scripts/vm-test.sh [PYTEST ARGS...]     default: -m "cgroup2 or vmtier" tests
# Environment: VM_KERNEL (a /boot/vmlinuz-* path), VM_CPUS (2), VM_MEMORY (2G),
#              VM_BOOT_TIMEOUT (seconds until the guest must be up, 300),
#              VM_TEST_TIMEOUT (seconds for the whole run, 2700).
#
# Pitfalls this handles (see docs/ARCHITECTURE.md, "Tests"):
# - vng runs virtme-run and friends by name: .venv/bin goes on PATH.
# - KVM hangs on these machines: --disable-kvm (TCG; a boot takes ~35 s).
# - linux-image-cloud-amd64 has no 9p and cannot mount the host root: skipped.
# - the guest sees / read-only with tmpfs overlays on /tmp, /var, /etc...:
#   results come back through a --rwdir, and pytest writes no cache or .pyc.
# - Python over 9p starts slowly: one pytest for everything.
# - a VM that never boots, panics or is killed must not look like a pass: the
#   guest writes its exit status into the rwdir; no status file = failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
export PATH="$repo/.venv/bin:$PATH"

die() { echo "vm-test: $*" >&2; exit 1; }

command -v vng >/dev/null || die "vng not found in .venv/bin: run scripts/setup.sh (the test extra installs virtme-ng)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run scripts/setup.sh"

pick_kernel() {
    local k ver
    for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
        ver=${k#/boot/vmlinuz-}
        case $ver in *cloud*) continue ;; esac   # no 9p: cannot share the root
        [ -d "/lib/modules/$ver" ] || continue  # virtme loads the host's modules
        echo "$k"
        return 0
    done
    return 1
}
kernel=${VM_KERNEL:-$(pick_kernel)} ||
    die "no linux-image-amd64 kernel in /boot (the -cloud- kernel lacks 9p): run scripts/setup.sh"
[ -r "$kernel" ] || die "cannot read kernel $kernel"
# An x86 bzImage says "HdrS" at offset 0x202 (Documentation/arch/x86/boot.rst).
[ "$(dd if="$kernel" bs=1 skip=514 count=4 2>/dev/null | tr -d '\0')" = HdrS ] ||
    die "$kernel is not a bootable x86 kernel image (bzImage)"

if [ $# -eq 0 ]; then
    set -- -m "cgroup2 or vmtier" --durations=10 tests
fi

# The guest runs this checkout's .venv through the shared root, read-only: it
# must be current before the boot (setup is a quick no-op when it is).
./scripts/setup.sh
# ...and so must the byte-code caches: the guest cannot write them (its view
# of this tree is read-only), so a module changed since its last .pyc would
# be compiled again at every Python start in the VM, where under TCG that
# costs seconds per `minict` command.
.venv/bin/python -m compileall -q minicontainer hpcshim tests >/dev/null

results=$(mktemp -d /tmp/minict-vm.XXXXXX)
vm_pid=
cleanup() {
    # vng runs qemu in a child: kill the whole session, not just vng.
    if [ -n "$vm_pid" ] && kill -0 "$vm_pid" 2>/dev/null; then
        kill -TERM -- "-$vm_pid" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$vm_pid" 2>/dev/null || true
    fi
    rm -rf "$results"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

guest_cmd=$(printf '%q ' "$repo/scripts/vm-guest.sh" "$results" "$@")
echo "vm-test: booting $kernel under QEMU (TCG, ${VM_CPUS:-2} CPUs, ${VM_MEMORY:-2G}) to run: pytest $*"

elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
start=$(date +%s.%N)
# setsid: vng and qemu get their own process group, so a timeout or Ctrl-C
# can kill both (vng runs qemu as a child, not by exec).
# >(cat): qemu reopens /proc/self/fd/1 for the guest's output; were that a
# file, the reopened file would start writing at offset 0 over what is
# already there (`scripts/test.sh > log` would lose the host tiers' output).
# Through a pipe, it can only append.
setsid vng --disable-kvm --run "$kernel" --cpus "${VM_CPUS:-2}" --memory "${VM_MEMORY:-2G}" \
    --rwdir "$results" --exec "$guest_cmd" </dev/null > >(cat) 2> >(cat >&2) &
vm_pid=$!

boot_deadline=$(( $(date +%s) + ${VM_BOOT_TIMEOUT:-300} ))
deadline=$(( $(date +%s) + ${VM_TEST_TIMEOUT:-2700} ))
boot_s=
while kill -0 "$vm_pid" 2>/dev/null; do
    if [ -z "$boot_s" ] && [ -e "$results/started" ]; then
        boot_s=$(elapsed)
        echo "vm-test: the guest is up after ${boot_s} s; running pytest"
    fi
    reason=
    if [ -z "$boot_s" ] && [ "$(date +%s)" -gt "$boot_deadline" ]; then
        reason="the guest did not come up within ${VM_BOOT_TIMEOUT:-300} s"
    elif [ "$(date +%s)" -gt "$deadline" ]; then
        reason="no result after ${VM_TEST_TIMEOUT:-2700} s"
    fi
    if [ -n "$reason" ]; then
        echo "vm-test: $reason: killing the VM" >&2
        kill -TERM -- "-$vm_pid" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$vm_pid" 2>/dev/null || true
        break
    fi
    sleep 0.5
done
vng_status=0
wait "$vm_pid" || vng_status=$?
vm_pid=
total_s=$(elapsed)

if [ ! -s "$results/status" ]; then
    die "the VM did not finish the tests (vng exit status $vng_status, ${total_s} s): it failed to boot, panicked or was killed"
fi
status=$(cat "$results/status")
echo "vm-test: boot ${boot_s:-?} s, total ${total_s} s, pytest exit status $status"
exit "$status"
