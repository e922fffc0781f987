#!/usr/bin/env bash
# Vagrant's provisioner (see Vagrantfile), run as root inside the VM:
#   1. install the project the way the README does: scripts/setup.sh,
#   2. put minict and hpcshim on root's PATH, so `sudo minict ...` works
#      (sudo's secure_path includes /usr/local/bin),
#   3. check that this kernel gives cgroup v2 the controllers minict limits.
# Idempotent: a second `vagrant provision` changes nothing.
# Usage: vagrant-provision.sh [PROJECT_DIR]   (default: this script's checkout)
set -euo pipefail
project=${1:-$(cd "$(dirname "$0")/.." && pwd)}

if [ "$(id -u)" != 0 ]; then
    echo "vagrant-provision: run as root (Vagrant's shell provisioner does)" >&2
    exit 1
fi
if [ ! -x "$project/scripts/setup.sh" ]; then
    echo "vagrant-provision: no scripts/setup.sh under $project (is the synced folder there?)" >&2
    exit 1
fi

"$project/scripts/setup.sh"

for tool in minict hpcshim; do
    ln -sfn "$project/.venv/bin/$tool" "/usr/local/bin/$tool"
done

controllers=/sys/fs/cgroup/cgroup.controllers
for c in memory pids cpu io; do
    if ! grep -qw "$c" "$controllers" 2>/dev/null; then
        echo "vagrant-provision: cgroup v2 has no $c controller here ($controllers):" \
             "boot with systemd.unified_cgroup_hierarchy=1" >&2
        exit 1
    fi
done
echo "vagrant-provision: ready: $(minict --version); try: sudo minict run --memory 64m --explain alpine sh"
