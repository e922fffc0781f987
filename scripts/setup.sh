#!/usr/bin/env bash
# Installs everything minicontainer + hpcshim need on Debian 12 / Ubuntu 24.04,
# as root, idempotently: the apt packages, a virtualenv in .venv, and the
# project itself (editable, with its minict and test extras).
#
# A second run with nothing to do touches no network: apt is asked only for
# packages that are missing, and pip runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run this as root (sudo $0): it installs apt packages" >&2
    exit 1
fi

# What each group is for, so a reader can trim it:
APT_PACKAGES=(
    # Python and what python-prctl compiles against; libseccomp's own Python
    # bindings (minict's seccomp filter), which are not on PyPI
    python3 python3-venv python3-dev gcc libcap-dev python3-seccomp
    # the busybox test/demo image, kernel-side tools (iptables: container NAT and
    # published ports), layer compression
    busybox-static iproute2 iptables util-linux zstd gzip tar
    # images made by tools we did not write, a real registry, its auth helpers;
    # curl speaks the registry API by hand (examples/images-and-registries)
    skopeo umoci docker-registry apache2-utils openssl curl
    # real runtimes: Charliecloud (hpcshim backend), runc/crun/podman/buildah (yardsticks),
    # containerd + ctr (drives an OCI runtime the way Docker/Kubernetes do; the tests
    # start a private daemon of their own, tests/helpers/containerd.py)
    charliecloud-runtime runc crun podman buildah containerd
    # minict without root: newuidmap/newgidmap write subordinate id ranges;
    # slirp4netns is a rootless container's network (runtime/usernet.py)
    uidmap slirp4netns
    # the cgroup v2 VM test tier: a Debian kernel booted by virtme-ng under QEMU
    qemu-system-x86 linux-image-amd64
    # the OCI runtime-tools validator (Go sources: the library behind
    # oci-runtime-tool validate, and the runtime spec's JSON schemas), which the
    # tests build to check minict-oci's configs (tests/helpers/runtime_tools.py)
    golang-go golang-github-opencontainers-runtime-tools-dev
    # a real single-node Slurm for the GPU-selection tests; ruby to check the Vagrantfile
    slurm-wlm munge ruby
    # the workload tier: the ML image's Debian base (scripts/ml-image.sh), and the
    # PMIx library Slurm's mpi/pmix plugin loads (srun --mpi=pmix; it opens
    # pmix2/lib/libpmix.so, which only the -dev package has)
    debootstrap libpmix2 libpmix-dev
)

# One dpkg-query for the whole list (it is slow to start, and very slow over
# the VM tier's 9p root); a package it does not know is missing too.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null \
            | awk '$4 == "installed" {print $1}' || true)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    grep -qx "$pkg" <<<"$installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's own python3 (not whatever is first on PATH): that is what a fresh
# machine has, and what the VM test tier sees through the shared root.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Editable in "compat" mode: a plain path entry in a .pth file. The default
# mode installs an import hook that every `minict`/`hpcshim` start pays for
# (tens of milliseconds), which the start-up benchmarks would measure.
INSTALL_MODE=compat
stamp=.venv/.installed-from
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $INSTALL_MODE"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[minict,test]' --config-settings editable_mode=$INSTALL_MODE
    echo "$want" > "$stamp"
fi

# python3-seccomp installs libseccomp's bindings for Debian's python3 only; the
# virtualenv does not see Debian's packages, so link that one module into it.
# Only when the link is missing or wrong: on a machine already set up this
# writes nothing (the VM tier and `vagrant provision` see the checkout read-only).
seccomp_module=$("$PY" -c 'import seccomp; print(seccomp.__file__)')
site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
seccomp_link="$site_packages/$(basename "$seccomp_module")"
if [ "$(readlink "$seccomp_link" || true)" != "$seccomp_module" ]; then
    ln -sfn "$seccomp_module" "$seccomp_link"
fi
