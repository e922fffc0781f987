#!/usr/bin/env bash
# Builds the real Apptainer 1.1.9 that the tests run hpcshim against, once per
# kit, into a cache outside the checkout (as scripts/ml-image.sh does for the
# ML image). The kit is the project's shared build kit: pinned source tarballs
# and build-apptainer.sh, which installs Go and its libraries from Debian and
# builds offline (about 3 minutes, ~1.5 GB of Debian packages; its README).
#
#   scripts/apptainer.sh              build it unless the cache has it
#   scripts/apptainer.sh --print-dir  print where it is (or would be); build nothing
#
# The kit is $HPCSHIM_APPTAINER_KIT, default ../shared/apptainer beside the
# checkout. Without a kit this says how to get Apptainer and exits 3, and the
# Apptainer tests skip (run from scripts/test.sh they fail instead: a kit that
# is there must build).
#
# The cache directory is $MINICT_TEST_IMAGES (default /var/cache/minict-test-images)
# /apptainer-<sha256 of the kit's files>/, holding:
#   bin/apptainer (and the singularity link), etc/, libexec/, ...   the install prefix
#   build.log     the build's output;  READY: written last
# Apptainer's install prefix is compiled into it (its config, its helpers), so it
# is built in place, not renamed there: READY, written last, marks it complete,
# and a directory without READY found while holding $CACHE/.lock-apptainer is a
# crashed build's, and goes.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${MINICT_TEST_IMAGES:-/var/cache/minict-test-images}
KIT=${HPCSHIM_APPTAINER_KIT:-$(cd .. && pwd)/shared/apptainer}

if [ ! -x "$KIT/build-apptainer.sh" ]; then
    if [ "${1:-}" = --print-dir ]; then
        exit 3
    fi
    echo "apptainer: no Apptainer build kit at $KIT: the Apptainer tests will skip." >&2
    echo "apptainer: to run them, point HPCSHIM_APPTAINER_KIT at the kit, or see README.md" \
         "(\"Apptainer\") for installing Apptainer 1.x and HPCSHIM_TEST_APPTAINER" >&2
    exit 3
fi
# The key: every file of the kit, by its path in the kit and its contents.
key=$(cd "$KIT" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
dest=$CACHE/apptainer-$key
if [ "${1:-}" = --print-dir ]; then
    echo "$dest"
    exit 0
fi
if [ -e "$dest/READY" ]; then
    echo "apptainer: cached: $dest"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "apptainer: run this as root (sudo $0): the kit installs Debian packages" >&2
    exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-apptainer"
flock 9
if [ -e "$dest/READY" ]; then      # another run built it while we waited
    echo "apptainer: cached: $dest"
    exit 0
fi
rm -rf "$dest"                      # a crashed build's leftovers (we hold the lock)
log=$dest.log
echo "apptainer: building Apptainer 1.1.9 from $KIT into $dest (about 3 minutes; log: $log)"
if ! bash "$KIT/build-apptainer.sh" "$dest" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "apptainer: the build failed (log: $log)" >&2
    rm -rf "$dest"
    exit 1
fi
mv "$log" "$dest/build.log"
"$dest/bin/apptainer" --version > "$dest/READY"
echo "apptainer: done: $dest ($(cat "$dest/READY"))"
