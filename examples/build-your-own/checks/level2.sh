# Level 2's check: a mount namespace and a root of its own (see ../level2.py).
# Both ways, --chroot and pivot_root: `ls /` inside shows the image's top
# directories, and the container has a mount namespace of its own; with
# pivot_root the old root is gone: busybox nsenter into the container's own
# mount namespace (which sets its root to the namespace's) no longer finds
# the host's files, as it does after a chroot. And the host's mount table
# (the check's own paths) is the same after as before.
. "$(dirname "$0")/lib.sh"
start_level 2 "$@"
make_check_dir
image=$(check_image "$tmp/image") || { echo "check.sh: could not make an image directory" >&2; exit 2; }
touch "$tmp/host-marker"
expected=$(cd "$image" && LC_ALL=C ls -1 | tr '\n' ' ')
host_before=$(mounts_under "$tmp" "$image")

# Run inside the container: $1 is a host path that only the host's root has.
# (No redirection to /dev/null in here: the image's /dev is empty until level
# 4, and the shell would create a file there, in the image.)
inside='ls / | tr "\n" " "; echo
mount -t proc proc /proc && echo "mntns=$(readlink /proc/self/ns/mnt)"
nsenter -m/proc/self/ns/mnt test -e "$1" && echo "escaped=yes"
umount /proc; true'

for way in chroot pivot_root; do
    flag=; [ "$way" = chroot ] && flag=--chroot
    out=$(guarded "${student[@]}" $flag "$image" sh -c "$inside" "$tag" "$tmp/host-marker" \
          2>"$tmp/stderr")
    [ "$way" = chroot ] && note_todo "$(cat "$tmp/stderr")"
    seen=$(printf '%s\n' "$out" | head -1)
    container_ns=$(printf '%s\n' "$out" | sed -n 's/^mntns=//p')
    guard_ns=$(cat "$tmp/guard.mntns" 2>/dev/null)
    if [ "$way" = chroot ]; then
        hint='os.chroot(image_dir), then kernel.chdir("/", ...), in the child before exec (enter_with_chroot)'
    else
        hint='bind the image onto itself (MS_BIND|MS_REC), chdir into it, pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/") (enter_with_pivot_root)'
    fi
    expect "ls / shows the image's top directories ($way)" "$expected" "$seen" "$hint"
    if [ -n "$container_ns" ] && [ "$container_ns" != "$guard_ns" ]; then
        passed "a mount namespace of its own ($way)"
    else
        failed "a mount namespace of its own ($way)" \
               "the container's is ${container_ns:-unknown (it did not run)}, its parent's $guard_ns" \
               "kernel.unshare(sc.CLONE_NEWNS, ...) in the child, then make / private: mount(None, \"/\", None, MS_REC|MS_PRIVATE, None) (own_mount_namespace)"
    fi
    escaped=$(printf '%s\n' "$out" | grep -c '^escaped=yes')
    if [ "$way" = chroot ]; then
        [ "$escaped" = 0 ] || echo "note: after the chroot, nsenter -m into the container's own mount namespace reached the host's $tmp/host-marker: chroot hides the host's root, pivot_root removes it"
    elif [ -n "$seen" ] && [ "$seen" = "$expected" ] && [ "$escaped" = 0 ]; then
        passed "the old root is gone (pivot_root): nsenter -m finds no host path"
    else
        failed "the old root is gone (pivot_root)" \
               "$([ "$escaped" = 0 ] && echo "the container did not run in the image" || echo "nsenter -m reached the host's $tmp/host-marker")" \
               "after pivot_root(\".\", \".\"), umount2(\".\", MNT_DETACH): until then the host's root is still in the container's mount namespace"
    fi
    left=$(cat "$tmp/guard.mounts-after" 2>/dev/null || echo "(the check's own mount table was unreadable: its root was swapped)")
    [ -z "$left" ] || guard_left="$guard_left $way: $left"
done

host_after=$(mounts_under "$tmp" "$image")
new=
[ "$host_before" = "$host_after" ] || new="new on the host: $(echo $host_after)"
[ -z "${guard_left:-}" ] || new="${new:+$new; }in the check's copy of the host's namespace:$guard_left"
if [ "$host_before" = "$host_after" ] && [ -z "${guard_left:-}" ]; then
    passed "the host's mount table is unchanged"
else
    failed "the host's mount table is unchanged" \
           "$new" \
           "your mounts reached the host's table: unshare(CLONE_NEWNS) first, then make every mount private (MS_REC|MS_PRIVATE) before mounting anything"
fi
finish_level
