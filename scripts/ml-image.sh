#!/usr/bin/env bash
# Builds the workload tier's ML image (scripts/ml-image/Dockerfile) once per
# recipe, into a cache outside the checkout, so that tests/workload can run
# it with no network (the pytest process has none: tests/conftest.py).
#
#   scripts/ml-image.sh              build it unless the cache has it
#   scripts/ml-image.sh --print-dir  print where it is (or would be); build nothing
#
# The cache directory is $MINICT_TEST_IMAGES (default /var/cache/minict-test-images)
# /<sha256 of the recipe>/, holding:
#   store/        a minict store root (MINICT_ROOT) with the image ml-workload:latest
#   chrun/rootfs  the same image as a directory, for Charliecloud's ch-run
#   hostvenv/     a virtualenv on the host with the same torch/numpy/sklearn,
#                 to run the examples outside any container for comparison
#   build.log     the build's output;  READY: written last
# The recipe is this script, the Dockerfile, the MPI example's source and
# the torch wheel's name and size: change any of them and a new directory is
# built. Crash-safe: everything is built in a temporary directory that is
# renamed into place only when complete; a builder holds $CACHE/.lock, so a
# temporary directory found while holding it is a crashed run's, and goes.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${MINICT_TEST_IMAGES:-/var/cache/minict-test-images}
WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
RECIPE=(scripts/ml-image.sh scripts/ml-image/Dockerfile examples/mpi/allreduce.c)
IMAGE=ml-workload:latest
# The same pins as the Dockerfile's (the host venv is the yardstick).
PY_PACKAGES=(torch==2.13.0+cpu numpy==2.2.6 scipy==1.15.3 scikit-learn==1.6.1)

key=$({ sha256sum "${RECIPE[@]}"; echo "$(basename "$WHEEL") $(stat -c %s "$WHEEL" 2>/dev/null)"; } \
      | sha256sum | cut -d' ' -f1)
dest=$CACHE/$key
if [ "${1:-}" = --print-dir ]; then
    echo "$dest"
    exit 0
fi
if [ -e "$dest/READY" ]; then
    echo "ml-image: cached: $dest"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ml-image: run this as root (sudo $0): debootstrap and minict build need it" >&2
    exit 1
fi
[ -f "$WHEEL" ] || { echo "ml-image: $WHEEL is missing (the CPU torch wheel)" >&2; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -e "$dest/READY" ]; then      # another run built it while we waited
    echo "ml-image: cached: $dest"
    exit 0
fi
rm -rf "$CACHE"/.tmp-* "$dest"      # crashed runs' leftovers (we hold the lock)
tmp=$CACHE/.tmp-$key
mkdir -p "$tmp"
log=$tmp/build.log
MINICT="$PWD/.venv/bin/minict"
export MINICT_ROOT=$tmp/store MINICT_STATE=$tmp/state
unset MINICT_EXPLAIN
start=$(date +%s)
step() { echo "ml-image: [$(( $(date +%s) - start ))s] $*"; }

step "debootstrap --variant=minbase bookworm (log: $log)"
debootstrap --variant=minbase bookworm "$tmp/base" http://deb.debian.org/debian >>"$log" 2>&1
"$MINICT" import -c 'CMD ["bash"]' "$tmp/base" debian-minbase:bookworm >>"$log"
rm -rf "$tmp/base"

step "minict build -t $IMAGE (the context: the Dockerfile, the torch wheel, allreduce.c)"
context=$tmp/context
mkdir -p "$context/wheels"
cp scripts/ml-image/Dockerfile examples/mpi/allreduce.c "$context/"
# The wheels are fetched here, by the host's pip (its index, proxy and CA
# configuration; torch's CPU wheel from /opt/wheels), for this Debian 12's
# python3, the same 3.11 as the image's. The RUN that installs them, and the
# host venv below, then need no network (the container has no proxy CA).
/usr/bin/python3 -m pip download -q --dest "$context/wheels" --find-links /opt/wheels \
    --only-binary=:all: "${PY_PACKAGES[@]}" >>"$log" 2>&1
"$MINICT" build --network host -t "$IMAGE" "$context" >>"$log" 2>&1
mv "$context/wheels" "$tmp/wheels"      # for the host venv
rm -rf "$context"

step "the image as a directory for ch-run (minict save --format oci, umoci unpack)"
"$MINICT" save --format oci -o "$tmp/image.oci.tar" "$IMAGE"
mkdir "$tmp/oci"
tar -xf "$tmp/image.oci.tar" -C "$tmp/oci"
umoci unpack --image "$tmp/oci:docker.io/library/$IMAGE" "$tmp/chrun" >>"$log" 2>&1
rm -rf "$tmp/oci" "$tmp/image.oci.tar"

step "the host venv (/usr/bin/python3, the same wheels)"
/usr/bin/python3 -m venv "$tmp/hostvenv"
"$tmp/hostvenv/bin/pip" install -q --no-index --find-links "$tmp/wheels" "${PY_PACKAGES[@]}" >>"$log" 2>&1
rm -rf "$tmp/wheels"

rm -rf "$tmp/state"
date -u +%FT%TZ > "$tmp/READY"
mv -T "$tmp" "$dest"
step "done: $dest"
