#!/usr/bin/env bash
# Level 4's check: /proc, a minimal /dev, masked paths, seen from inside the
# student's container (a shell script as its command), then the host's side:
# the image directory and the host's mounts under our own temp dir unchanged.
# Usage: checks/level4.sh FILE   (FILE: IMAGE_DIR CMD... as levels 2-7 take)
. "$(dirname "$0")/lib.sh"
start_level 4 "$@"

make_check_dir   # $tmp: ours, named with $tag, removed at exit (lib.sh)
work=$tmp
own_mounts() { mounts_under "$work"; }

image=$work/image
make_image_dir "$image"
mkdir "$work/tmp"
digest=$(tree_digest "$image")
mounts_before=$(own_mounts)

# The masked files this kernel has (only those can be checked), and what
# each should read as inside: nothing.
masked=""
for path in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
    [ -e "$path" ] && masked="$masked $path"
done
script='
echo "pid1 $(awk "/^Name:/ {print \$2}" /proc/1/status 2>/dev/null)"
echo "ps1 $(ps -o pid,comm 2>/dev/null | awk "\$1 == 1 {print \$2}")"
echo "procs $(ls -d /proc/[0-9]* 2>/dev/null | wc -l)"
for f in /dev/*; do
    if [ ! -L "$f" ] && { [ -c "$f" ] || [ -b "$f" ]; }; then echo "node ${f#/dev/} $(stat -c %t:%T "$f")"; fi
done
awk "\$2 == \"/dev/pts\" || \$2 == \"/dev/shm\" {print \"mount\", \$2, \$3}" /proc/mounts 2>/dev/null
for p in '"$masked"'; do
    if [ -e "$p" ]; then echo "masked $p $(head -c 64 "$p" 2>/dev/null | wc -c)"; else echo "masked $p missing"; fi
done
if [ -d /sys/firmware ]; then
    echo "firmware $(ls -A /sys/firmware | wc -l) $(awk "\$2 == \"/sys/firmware\" {print \$3}" /proc/mounts)"
else
    echo "firmware missing"
fi
'
out=$(TMPDIR=$work/tmp run_student "$image" sh -c "$script" "$tag" 2>"$work/stderr")
rc=$?
field() { echo "$out" | awk -v k="$1" '$1 == k {$1 = ""; sub(/^ /, ""); print; exit}'; }

expect "the level runs the command and exits with its status" 0 "$rc" \
    "run it by hand: sudo python3 $file IMAGE_DIR sh; its last lines on stderr say what went wrong"
if [ "$rc" != 0 ]; then
    grep -v '^\[explain\]' "$work/stderr" | tail -n 5 | sed 's/^/  stderr: /'
fi

pid1=$(field pid1)
if [ -z "$pid1" ]; then
    failed "PID 1 inside is the command" "no /proc/1/status in the container" \
        "mount a fresh proc at /proc after pivot_root (TODO level 4 (1), mount_proc_and_sys)"
else
    expect "PID 1 inside is the command (/proc/1/status)" sh "$pid1" \
        "the command must be PID 1: the first child after unshare(CLONE_NEWPID) execs it"
fi
expect "ps inside lists the command as PID 1" sh "$(field ps1)" \
    "ps reads /proc: mount proc at /proc from inside the new PID namespace (TODO level 4 (1))"
procs=$(field procs)
if [ -n "$procs" ] && [ "$procs" -ge 1 ] && [ "$procs" -le 10 ]; then
    passed "/proc lists only the container's processes ($procs)"
else
    failed "/proc lists only the container's processes" "got ${procs:-none}" \
        "mount a NEW proc (type proc) in the container, not a bind of the host's /proc (TODO level 4 (1))"
fi

want="full 1:7,null 1:3,random 1:8,tty 5:0,urandom 1:9,zero 1:5"
got=$(echo "$out" | awk '$1 == "node" {print $2, $3}' | LC_ALL=C sort | paste -sd, -)
if [ -z "$got" ]; then
    failed "/dev holds exactly the six default devices" "no device node in /dev" \
        "mount a tmpfs on /dev, then kernel.mknod each of DEVICES (TODO level 4 (2), make_dev)"
else
    expect "/dev holds exactly the six default devices (major:minor)" "$want" "$got" \
        "only the DEVICES list, each a character device ('c') with its major:minor; never the host's /dev"
fi
expect "/dev/pts is a devpts of its own" "devpts" "$(echo "$out" | awk '$1 == "mount" && $2 == "/dev/pts" {print $3}')" \
    "mkdir /dev/pts, then mount type devpts with newinstance (TODO level 4 (2)); /proc must be mounted to see it"
expect "/dev/shm is a tmpfs" "tmpfs" "$(echo "$out" | awk '$1 == "mount" && $2 == "/dev/shm" {print $3}')" \
    "mkdir /dev/shm (mode 1777), then mount a tmpfs on it (TODO level 4 (2))"

for path in $masked; do
    bytes=$(echo "$out" | awk -v p="$path" '$1 == "masked" && $2 == p {print $3}')
    if [ "$bytes" = missing ] || [ -z "$bytes" ]; then
        failed "$path reads as empty (masked)" "no $path in the container" \
            "mount /proc first (TODO level 4 (1)), then bind /dev/null over $path (TODO level 4 (3), mask_paths)"
    else
        expect "$path reads as empty (masked)" 0 "$bytes" \
            "bind /dev/null (sc.MS_BIND) over each masked file that exists (TODO level 4 (3), mask_paths)"
    fi
done
if [ -n "$(ls -A /sys/firmware 2>/dev/null)" ]; then
    fw=$(field firmware)
    case $fw in
        "0 tmpfs") passed "/sys/firmware is an empty tmpfs (masked)" ;;
        missing|"") failed "/sys/firmware is an empty tmpfs (masked)" "no /sys/firmware in the container" \
            "mount sysfs read-only at /sys (TODO level 4 (1)), then an empty read-only tmpfs on /sys/firmware (TODO level 4 (3))" ;;
        *) failed "/sys/firmware is an empty tmpfs (masked)" "got entries/type: $fw" \
            "mount an empty read-only tmpfs on each masked directory (TODO level 4 (3), mask_paths)" ;;
    esac
fi

expect "the image directory is unchanged" "$digest" "$(tree_digest "$image")" \
    "the container's writes must go to the overlay's upper dir, never to IMAGE_DIR"
expect "the host's mounts (under the check's dir) are unchanged" "$mounts_before" "$(own_mounts)" \
    "make / private (MS_REC|MS_PRIVATE) in the container's mount namespace before mounting anything"
expect "the level's scratch directory is removed" "" "$(ls -A "$work/tmp")" \
    "the parent removes its temp dir (os.rmdir) once the container has exited"
finish_level
