#!/usr/bin/env bash
# What a layer really is: build an image from a Dockerfile, open its layers
# (plain tar files), find the whiteout a deleted file left, and watch the
# build cache at work. Each step checks what it shows ("check: ...").
# Read README.md alongside. Run as root: sudo ./walkthrough.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lesson.sh"
ROOT=${MINICT_ROOT:-/var/lib/minict}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tidy() {
    "$MINICT" rmi lesson-build:1 lesson-build:2 >/dev/null 2>&1
    [ -n "${work:-}" ] && rm -rf "$work"
}
tidy
trap tidy EXIT
work=$(mktemp -d)
cp -r "$here/app" "$work/app"
ensure_busybox_image

layers() {  # the layer digests of an image, bottom first
    "$MINICT" image inspect "$1" | sed -n 's/.*"digest": "sha256:\([0-9a-f]*\)".*/\1/p' | tail -n +2
}

step "1. Build: every instruction is a step; RUN runs in a real container"
"$MINICT" build -t lesson-build:1 "$work/app" | tee "$work/build1.txt"
check "the image runs the training script" "epoch 3/3: loss 0.7" \
      "$("$MINICT" run --rm lesson-build:1 | tail -1)"

step "2. A layer is a tar file: the image's layers, in the store's blobs"
n=0
for digest in $(layers lesson-build:1); do
    n=$((n + 1))
    echo "layer $n: sha256:${digest:0:12}... $(tar -tf "$ROOT/blobs/sha256/$digest" | wc -l) entries"
done
check "busybox, then one layer per WORKDIR, RUN and COPY" "5" "$n"
copy_layer=$(layers lesson-build:1 | tail -1)
echo "the COPY layer holds:"
tar -tvf "$ROOT/blobs/sha256/$copy_layer"
check "the COPY layer holds only what COPY added" "workspace/ workspace/train.sh" \
      "$(tar -tf "$ROOT/blobs/sha256/$copy_layer" | tr '\n' ' ' | sed 's/ $//')"

step "3. A deleted file is a whiteout: an empty file named .wh.NAME"
rm_layer=$(layers lesson-build:1 | sed -n 4p)
tar -tvf "$ROOT/blobs/sha256/$rm_layer"
check "RUN rm /bin/vi left bin/.wh.vi" "bin/.wh.vi" \
      "$(tar -tf "$ROOT/blobs/sha256/$rm_layer" | grep '\.wh\.')"
check "and in the container, vi is gone" "gone" \
      "$("$MINICT" run --rm lesson-build:1 sh -c 'test -e /bin/vi || echo gone')"

step "4. The build cache: the same context again is all cache hits, the same image"
"$MINICT" build -t lesson-build:2 "$work/app" | tee "$work/build2.txt"
check "every step after FROM came from the cache" "7" "$(grep -c 'Using cache' "$work/build2.txt")"
check "the very same image id" "$(tail -1 "$work/build1.txt")" "$(tail -1 "$work/build2.txt")"

step "5. Change the script: COPY and what follows run again, the steps before do not"
echo 'echo "done training"' >> "$work/app/train.sh"
"$MINICT" build -t lesson-build:2 "$work/app" | tee "$work/build3.txt"
check "the five steps before COPY came from the cache" "5" \
      "$(sed '/STEP 7\/8/q' "$work/build3.txt" | grep -c 'Using cache')"
check "the new script is in the image" "done training" \
      "$("$MINICT" run --rm lesson-build:2 | tail -1)"
check "and the layers below it are shared with the first image" \
      "$(layers lesson-build:1 | head -4 | tr '\n' ' ')" "$(layers lesson-build:2 | head -4 | tr '\n' ' ')"

all_checks_passed
