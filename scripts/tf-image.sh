#!/usr/bin/env bash
# Builds the workload tier's TensorFlow image (scripts/tf-image/Dockerfile)
# once per recipe, into a cache outside the checkout, as scripts/ml-image.sh
# does for the PyTorch one, so that tests/workload/test_tensorflow.py and
# tests/cluster/test_tf_multiworker.py can run it with no network.
#
#   scripts/tf-image.sh              build it unless the cache has it
#   scripts/tf-image.sh --print-dir  print where it is (or would be); build nothing
#
# The cache directory is $MINICT_TEST_IMAGES (default /var/cache/minict-test-images)
# /tf-<sha256 of the recipe>/, holding:
#   store/        a minict store root (MINICT_ROOT) with tf-workload:latest and
#                 tensorflow-ex:latest (examples/tensorflow-cnn/Dockerfile: the
#                 Dockerfile episode's image, FROM tf-workload, plus a few packages)
#   chrun/rootfs  tf-workload as a directory, for ch-run and Apptainer
#   hostvenv/     a virtualenv on the host with the same tensorflow/numpy/sklearn
#   build.log     the build's output;  READY: written last
# The base, debian-minbase:bookworm, is copied from the ML image's store when
# that is built (minict save | load: seconds), else made with debootstrap
# (about a minute more). The wheels, fetched by the host's pip, reach the
# Dockerfile's RUN from a throwaway http.server on the loopback (the build's
# --network host), so that no layer of the image holds them. About 3.5
# minutes on 2 cores, 7 GB (store 3.2, chrun 2.1, hostvenv 1.8).
# Crash-safe as ml-image.sh: a temporary directory, renamed into place when
# complete, under $CACHE/.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${MINICT_TEST_IMAGES:-/var/cache/minict-test-images}
RECIPE=(scripts/tf-image.sh scripts/tf-image/Dockerfile examples/tensorflow-cnn/Dockerfile)
IMAGE=tf-workload:latest
EXAMPLE_IMAGE=tensorflow-ex:latest
# The same pins as the Dockerfile's (the host venv is the yardstick).
PY_PACKAGES=(tensorflow-cpu==2.21.0 numpy==2.2.6 scipy==1.15.3 scikit-learn==1.6.1)
# What examples/tensorflow-cnn/Dockerfile adds (the Dockerfile episode's three).
EXAMPLE_PACKAGES=(astropy==7.1.0 pandas==2.3.1 matplotlib==3.10.3 numpy==2.2.6)

key=$(sha256sum "${RECIPE[@]}" | sha256sum | cut -d' ' -f1)
dest=$CACHE/tf-$key
if [ "${1:-}" = --print-dir ]; then
    echo "$dest"
    exit 0
fi
if [ -e "$dest/READY" ]; then
    echo "tf-image: cached: $dest"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "tf-image: run this as root (sudo $0): minict build needs it" >&2
    exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -e "$dest/READY" ]; then      # another run built it while we waited
    echo "tf-image: cached: $dest"
    exit 0
fi
rm -rf "$CACHE"/.tmp-* "$dest"      # crashed runs' leftovers (we hold the lock)
tmp=$CACHE/.tmp-tf-$key
mkdir -p "$tmp"
log=$tmp/build.log
MINICT="$PWD/.venv/bin/minict"
export MINICT_ROOT=$tmp/store MINICT_STATE=$tmp/state
unset MINICT_EXPLAIN
start=$(date +%s)
step() { echo "tf-image: [$(( $(date +%s) - start ))s] $*"; }

ml_cache=$(scripts/ml-image.sh --print-dir)
if [ -e "$ml_cache/READY" ]; then
    step "debian-minbase:bookworm from the ML image's store (log: $log)"
    MINICT_ROOT=$ml_cache/store "$MINICT" save -o "$tmp/base.tar" debian-minbase:bookworm
    "$MINICT" load -q -i "$tmp/base.tar"
    rm "$tmp/base.tar"
else
    step "debootstrap --variant=minbase bookworm (log: $log)"
    debootstrap --variant=minbase bookworm "$tmp/base" http://deb.debian.org/debian >>"$log" 2>&1
    "$MINICT" import -c 'CMD ["bash"]' "$tmp/base" debian-minbase:bookworm >>"$log"
    rm -rf "$tmp/base"
fi

# The wheels are fetched here, by the host's pip (its index, proxy and CA
# configuration), for this Debian 12's python3, the same 3.11 as the
# image's; the RUNs that install them, and the host venv, need no network.
pip_download() { /usr/bin/python3 -m pip download -q --only-binary=:all: "$@" >>"$log" 2>&1; }

step "minict build -t $IMAGE (the wheels served on the loopback)"
context=$tmp/context
mkdir -p "$context" "$tmp/wheels"
cp scripts/tf-image/Dockerfile "$context/"
pip_download --dest "$tmp/wheels" "${PY_PACKAGES[@]}"
# The RUN reads the wheels from this server (the build's --network host is the
# host's loopback too), so no layer holds them. Port 0: the kernel picks a free one.
/usr/bin/python3 -u -m http.server --bind 127.0.0.1 --directory "$tmp/wheels" 0 >"$tmp/http.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
port=""
for _ in $(seq 50); do
    port=$(sed -n 's/^Serving HTTP on [^ ]* port \([0-9]*\).*/\1/p' "$tmp/http.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "tf-image: the wheel server did not start: $(cat "$tmp/http.log")" >&2; exit 1; }
"$MINICT" build --network host --build-arg "WHEELS=http://127.0.0.1:$port/" -t "$IMAGE" "$context" >>"$log" 2>&1
kill $server
wait $server 2>/dev/null || true
trap - EXIT
rm -rf "$context" "$tmp/http.log"

step "minict build -t $EXAMPLE_IMAGE (examples/tensorflow-cnn/Dockerfile)"
mkdir -p "$context/wheels"
cp examples/tensorflow-cnn/Dockerfile "$context/"
pip_download --dest "$context/wheels" "${EXAMPLE_PACKAGES[@]}"
"$MINICT" build --network none -t "$EXAMPLE_IMAGE" "$context" >>"$log" 2>&1
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
