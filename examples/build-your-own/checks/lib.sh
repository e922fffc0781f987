# Sourced by checks/levelN.sh: how a level's check reports, and what every
# check needs. A check runs the student's file from the outside, as the
# tests check minict, and prints one line per thing it looked at:
#   check: WHAT: ok
#   check: WHAT: FAILED (expected ..., got ...)
#     hint: WHAT TO LOOK AT
# then "level N: all checks passed" (exit 0) or "level N: K checks failed" (exit 1).
# Usage from a level's script:  . "$(dirname "$0")/lib.sh"; start_level N "$@"; ...; finish_level
track=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo=$(cd "$track/../.." && pwd)
PYTHON=${PYTHON:-$repo/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
failures=0

start_level() {  # start_level N [FILE]: FILE defaults to the skeleton, levelN.py
    level=$1
    file=${2:-$track/level$1.py}
    if [ "$(id -u)" != 0 ]; then
        echo "check.sh: run this as root (sudo): the levels make namespaces and mounts" >&2
        exit 2
    fi
    if [ ! -f "$file" ]; then
        echo "check.sh: no such file: $file" >&2
        exit 2
    fi
    file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
    # the command run_student runs, as an array (for guarded "${student[@]}" ARGS...)
    student=(env "PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}" timeout 30 "$PYTHON" "$file")
    printf '== level %s: checking %s\n' "$level" "$file"
}

passed() {  # passed WHAT
    echo "check: $1: ok"
}

failed() {  # failed WHAT DETAIL HINT
    echo "check: $1: FAILED ($2)"
    echo "  hint: $3"
    failures=$((failures + 1))
}

expect() {  # expect WHAT EXPECTED ACTUAL HINT
    if [ "$2" = "$3" ]; then
        passed "$1"
    else
        failed "$1" "expected '$2', got '$3'" "$4"
    fi
}

run_student() {  # run_student ARGS...: the student's file under Python, 30 s at most
    # The checkout on PYTHONPATH, so a level may import minicontainer's kernel
    # layer (and be narrated like minict with MINICT_EXPLAIN=1).
    PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} timeout 30 "$PYTHON" "$file" "$@"
}

finish_level() {
    if [ "$failures" = 0 ]; then
        echo "level $level: all checks passed"
        exit 0
    fi
    echo "level $level: $failures checks failed"
    exit 1
}

make_image_dir() {  # make_image_dir DIR: a busybox root filesystem, built offline
    # (the host's busybox-static, as the lessons' images are)
    (cd "$repo" && "$PYTHON" -m tests.helpers.busybox "$1" >/dev/null)
}

tree_digest() {  # tree_digest DIR: one hash over every path, mode, owner and content
    # under DIR, to show an image directory came back untouched
    (cd "$1" && find . -printf '%p %m %U %G %s %l\n' | LC_ALL=C sort && \
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

# ---- the checks' own temp dirs, images and namespaces ------------------------

tag=byo-${BYO_TAG:-$$}   # names what this run makes (temp dirs, the commands' $0), so a
                         # test can look for anything left with exactly this run's name

make_check_dir() {  # make_check_dir: sets $tmp, a temp dir of this check's own, removed at exit
    # with everything mounted under it or on $image (a student's mount that leaked) unmounted first
    tmp=$(mktemp -d -t "$tag.XXXXXX")
    trap cleanup_check_dir EXIT
}

cleanup_check_dir() {
    local target
    for target in $(mounts_under "$tmp" ${image:+"$image"} | LC_ALL=C sort -r); do
        umount -l "$target" 2>/dev/null
    done
    rm -rf --one-file-system "$tmp"
}

mounts_under() {  # mounts_under DIR...: the mount points of this mount namespace under DIRs
    # (field 5 of /proc/self/mountinfo), sorted: compared before and after a run, this is
    # "the host's mount table, as far as this check owns it"
    local dir
    for dir in "$@"; do
        awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
    done | LC_ALL=C sort
}

check_image() {  # check_image DIR: prints the image directory to use: $BYO_IMAGE if the
    # caller gave one (the tests: one image for all, its digest compared after), else a
    # fresh busybox root made at DIR
    if [ -n "${BYO_IMAGE:-}" ]; then
        echo "$BYO_IMAGE"
    else
        make_image_dir "$1" && echo "$1"
    fi
}

student_stopped_at() {  # student_stopped_at OUTPUT: the "TODO level N: ..." a skeleton raised, if any
    printf '%s\n' "$1" | sed -n 's/.*NotImplementedError: \(TODO level .*\)/\1/p' | head -1
}

note_todo() {  # note_todo OUTPUT: say where the student's file stopped (a TODO still raising)
    local todo
    todo=$(student_stopped_at "$1")
    [ -z "$todo" ] || echo "note: your file stopped at a TODO: $todo"
}

guarded() {  # guarded CMD...: CMD in a UTS and mount namespace of the check's own (copies of
    # the host's), so that a file which forgets its own namespaces renames or re-roots that
    # copy, never the machine. The propagation is left as it is, so a mount the student's
    # file lets propagate still reaches the host, where the check sees it. Leaves, for the
    # check to compare: $tmp/guard.mntns (the copy's mount namespace), .hostname-before,
    # .hostname-after and .mounts-after (mount points under $tmp and $image, in the copy).
    rm -f "$tmp"/guard.*
    unshare --uts --mount --propagation unchanged -- bash -c "$(declare -f mounts_under)"'
        guard=$1 own=$2; shift 2
        readlink /proc/self/ns/mnt > "$guard.mntns"
        hostname > "$guard.hostname-before"
        "$@"; rc=$?
        hostname > "$guard.hostname-after" 2>/dev/null
        mounts_under $own > "$guard.mounts-after" 2>/dev/null
        exit $rc' guarded "$tmp/guard" "$tmp ${image:-}" "$@"
}
