# Shell functions for a cached test image, sourced by scripts/hvd-image.sh.
# The same steps scripts/ml-image.sh and scripts/tf-image.sh write out inline
# (those two keep their own copies: their cache keys hash their own text).
#
# A cache directory $CACHE/<name>-<key>/ is built in $CACHE/.tmp-<name>-<key>
# under the lock $CACHE/.lock and renamed into place only when complete,
# READY written last; so a directory without READY, or a .tmp-* found while
# holding the lock, is a crashed run's, and goes.
#
# The caller sets: CACHE (the cache root), TAG (the name in messages), and
# before image_cache_begin, MINICT (the minict program).

# image_cache_key FILE... : sha256 of the files' own sha256 lines and of
# stdin (the caller pipes in what else the image depends on).
image_cache_key() {
    { sha256sum "$@"; cat; } | sha256sum | cut -d' ' -f1
}

# image_cache_begin DEST: exit 0 if DEST is READY; else take the lock, clear
# crashed leftovers and set tmp (the directory to build in), log, MINICT_ROOT
# and MINICT_STATE (a store and a state of its own), start (for step).
image_cache_begin() {
    local dest=$1
    if [ -e "$dest/READY" ]; then
        echo "$TAG: cached: $dest"
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "$TAG: run this as root (sudo $0): minict build needs it" >&2
        exit 1
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    if [ -e "$dest/READY" ]; then      # another run built it while we waited
        echo "$TAG: cached: $dest"
        exit 0
    fi
    rm -rf "$CACHE"/.tmp-* "$dest"      # crashed runs' leftovers (we hold the lock)
    tmp=$CACHE/.tmp-$(basename "$dest")
    mkdir -p "$tmp"
    log=$tmp/build.log
    export MINICT_ROOT=$tmp/store MINICT_STATE=$tmp/state
    unset MINICT_EXPLAIN
    start=$(date +%s)
}

step() { echo "$TAG: [$(( $(date +%s) - start ))s] $*"; }

# image_cache_copy_image FROM_STORE IMAGE: IMAGE from another minict store
# into ours (minict save | load: the layers, not a rebuild).
image_cache_copy_image() {
    MINICT_ROOT=$1 "$MINICT" save -o "$tmp/copy.tar" "$2"
    "$MINICT" load -q -i "$tmp/copy.tar"
    rm "$tmp/copy.tar"
}

# image_cache_unpack_for_chrun IMAGE: IMAGE as the directory $tmp/chrun/rootfs
# (minict save --format oci, umoci unpack), for ch-run and Apptainer.
image_cache_unpack_for_chrun() {
    "$MINICT" save --format oci -o "$tmp/image.oci.tar" "$1"
    mkdir "$tmp/oci"
    tar -xf "$tmp/image.oci.tar" -C "$tmp/oci"
    umoci unpack --image "$tmp/oci:docker.io/library/$1" "$tmp/chrun" >>"$log" 2>&1
    rm -rf "$tmp/oci" "$tmp/image.oci.tar"
}

# image_cache_commit DEST: READY written last, then the rename into place.
image_cache_commit() {
    rm -rf "$tmp/state"
    date -u +%FT%TZ > "$tmp/READY"
    mv -T "$tmp" "$1"
    step "done: $1 ($(du -sh "$1" | cut -f1))"
}
