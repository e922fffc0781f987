#!/usr/bin/env bash
# Builds the workload tier's Horovod image (scripts/hvd-image/Dockerfile):
# the ML image (scripts/ml-image.sh: torch 2.13.0+cpu, Open MPI 4.1.4 with
# PMIx) plus Horovod 0.28.1 built against them, once per recipe, into a cache
# outside the checkout, so that tests/workload/test_horovod.py and
# tests/cluster/test_horovod.py can run it with no network.
#
#   scripts/hvd-image.sh              build it unless the cache has it
#   scripts/hvd-image.sh --print-dir  print where it is (or would be); build nothing
#
# The cache directory is $MINICT_TEST_IMAGES (default /var/cache/minict-test-images)
# /hvd-<sha256 of the recipe and of the ML image's key>/, holding:
#   store/        a minict store root (MINICT_ROOT) with hvd-workload:latest
#   chrun/rootfs  hvd-workload as a directory, for ch-run and Apptainer
#   build.log     the build's output;  READY: written last
# The base, ml-workload:latest, is copied from the ML image's store (built
# first if it is not). Horovod has no wheel on PyPI: the host's pip fetches
# its sdist and the wheels it needs, which reach the build as its context
# (COPY into the builder stage only). The builder compiles the horovod wheel
# (g++, cmake and libopenmpi-dev from Debian's mirror: the build's --network
# host); the final stage installs only that wheel. See examples/horovod/README.md
# for the one patch (C++17). Crash-safe as ml-image.sh (scripts/lib/image-cache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/image-cache.sh

CACHE=${MINICT_TEST_IMAGES:-/var/cache/minict-test-images}
TAG=hvd-image
RECIPE=(scripts/hvd-image.sh scripts/hvd-image/Dockerfile scripts/lib/image-cache.sh)
IMAGE=hvd-workload:latest
BASE=ml-workload:latest
HOROVOD=horovod==0.28.1
# What Horovod's setup.py asks for at build time and at run time (cffi: for
# its PyTorch part), and wheel (pip wheel's bdist_wheel), which the ML
# image's venv lacks; pinned, so that the recipe's hash names what is built.
PY_PACKAGES=(cloudpickle==3.1.3 psutil==7.2.2 pyyaml==6.0.4 packaging==26.4 cffi==2.1.1 wheel==0.48.0)

case "${1:-}" in
    ""|--print-dir) ;;
    *) echo "$TAG: unknown argument '$1' (usage: $0 [--print-dir])" >&2; exit 2 ;;
esac

ml_cache=$(scripts/ml-image.sh --print-dir)
# The ML image is this one's base: a new ML image means a new Horovod image.
key=$(echo "base $(basename "$ml_cache")" | image_cache_key "${RECIPE[@]}")
dest=$CACHE/hvd-$key
if [ "${1:-}" = --print-dir ]; then
    echo "$dest"
    exit 0
fi
if [ ! -e "$dest/READY" ] && [ ! -e "$ml_cache/READY" ]; then
    # Before image_cache_begin's lock: ml-image.sh takes the same one.
    scripts/ml-image.sh
fi
MINICT="$PWD/.venv/bin/minict"
image_cache_begin "$dest"

step "$BASE from the ML image's store (log: $log)"
image_cache_copy_image "$ml_cache/store" "$BASE"

step "the context: horovod's sdist and the wheels it needs (the host's pip)"
context=$tmp/context
mkdir -p "$context/wheels"
cp scripts/hvd-image/Dockerfile "$context/"
/usr/bin/python3 -m pip download -q --no-deps --no-binary :all: --dest "$context" "$HOROVOD" >>"$log" 2>&1
/usr/bin/python3 -m pip download -q --only-binary=:all: --dest "$context/wheels" "${PY_PACKAGES[@]}" \
    >>"$log" 2>&1

step "minict build -t $IMAGE (compiles horovod: minutes)"
"$MINICT" build --network host -t "$IMAGE" "$context" >>"$log" 2>&1
rm -rf "$context"

step "the image as a directory for ch-run (minict save --format oci, umoci unpack)"
image_cache_unpack_for_chrun "$IMAGE"

image_cache_commit "$dest"
