# Level 3's check: an overlay root, so the image stays untouched (see ../level3.py).
# Inside, the command writes a new file, appends to an image file and removes
# another; then: the root showed the image, each change is in CONTAINER_DIR/upper
# (the new file, the copied-up file, a whiteout), the image directory's
# tree_digest is unchanged, and the overlay is unmounted after (nothing under
# the check's paths, on the host or in the check's copy of its namespace).
. "$(dirname "$0")/lib.sh"
start_level 3 "$@"
make_check_dir
image=$(check_image "$tmp/image") || { echo "check.sh: could not make an image directory" >&2; exit 2; }
container=$tmp/container
digest_before=$(tree_digest "$image")
host_before=$(mounts_under "$tmp" "$image")
expected=$( (cd "$image" && LC_ALL=C ls -1; echo hello) | LC_ALL=C sort | tr '\n' ' ')

# (No redirection to /dev/null in here: the image's /dev is empty until level 4.)
inside='echo "hello from $0" > /hello
echo "changed by $0" >> /etc/os-release
rm /bin/vi
ls / | tr "\n" " "; echo'
out=$(guarded "${student[@]}" "$image" "$container" sh -c "$inside" "$tag" 2>"$tmp/stderr")
note_todo "$(cat "$tmp/stderr")"
upper=$container/upper
overlay_hint="mount(\"overlay\", CONTAINER_DIR/merged, \"overlay\", 0, \"lowerdir=IMAGE_DIR,upperdir=CONTAINER_DIR/upper,workdir=CONTAINER_DIR/work\"), then pivot_root into merged (overlay_root)"

expect "ls / shows the image's top directories and the new file" "$expected" \
       "$(printf '%s\n' "$out" | head -1)" "$overlay_hint"
expect "a file written inside lands in the upper dir" "hello from $tag" \
       "$(cat "$upper/hello" 2>/dev/null)" "$overlay_hint"
expect "a changed file is copied up into the upper dir" "changed by $tag" \
       "$(tail -1 "$upper/etc/os-release" 2>/dev/null)" \
       "the upper dir must be CONTAINER_DIR/upper (upperdir=), the image only the lowerdir"
expect "a removed file is a whiteout in the upper dir" "character special file" \
       "$(stat -c %F "$upper/bin/vi" 2>/dev/null)" \
       "overlayfs records a removal as a 0/0 character device in upper/: is the root the overlay?"
expect "the image directory is unchanged (tree_digest)" "$digest_before" "$(tree_digest "$image")" \
       "your writes went into the image: the container's root must be the overlay (CONTAINER_DIR/merged), never IMAGE_DIR itself"

left=$(cat "$tmp/guard.mounts-after" 2>/dev/null || echo "(the check's own mount table was unreadable: its root was swapped)")
host_after=$(mounts_under "$tmp" "$image")
if [ "$host_before" = "$host_after" ] && [ -z "$left" ]; then
    passed "the overlay is unmounted after"
else
    failed "the overlay is unmounted after" "still mounted: $(echo $host_after $left)" \
           "mount the overlay in the container's own mount namespace (unshare(CLONE_NEWNS), then MS_REC|MS_PRIVATE): it goes away with the container"
fi
finish_level
