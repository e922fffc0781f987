#!/usr/bin/env bash
# Level 5's check: a cgroup v2 memory and pids limit. Needs cgroup v2 with the
# memory and pids controllers (the VM: vagrant up). The check makes a cgroup
# of its own, $tag-level5, and hands it to the level as BYO_CGROUP_PARENT,
# so the level's cgroup is made inside it and nothing else is touched. Its
# memory.events counts the OOM kills of every cgroup below it, even one
# already removed.
# Usage: checks/level5.sh FILE
. "$(dirname "$0")/lib.sh"
start_level 5 "$@"

cgroot=/sys/fs/cgroup
if [ ! -f "$cgroot/cgroup.controllers" ] || ! grep -qw memory "$cgroot/cgroup.controllers" ||
        ! grep -qw pids "$cgroot/cgroup.controllers"; then
    echo "check.sh: level 5 needs cgroup v2 with the memory and pids controllers at $cgroot," \
        "and this machine has none (cgroup v1 holds them): run it in the VM (vagrant up; vagrant ssh)" >&2
    exit 2
fi

make_check_dir   # $tmp: ours, named with $tag, removed at exit (lib.sh)
work=$tmp
parent=$cgroot/$tag-level5    # the check's own cgroup (its name: this run's $tag)
cleanup() {   # whatever a broken level left: its processes, its cgroups, then ours
    if [ -d "$parent" ]; then
        find "$parent" -mindepth 1 -depth -type d | while read -r cg; do
            [ -f "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
        done
        rmdir "$parent" 2>/dev/null
    fi
    cleanup_check_dir
}
trap cleanup EXIT

image=$work/image
make_image_dir "$image"
mkdir "$work/tmp"
digest=$(tree_digest "$image")
# The top of the hierarchy may hold processes and still hand controllers down.
for c in memory pids; do
    grep -qw "$c" "$cgroot/cgroup.subtree_control" || echo "+$c" >"$cgroot/cgroup.subtree_control"
done
mkdir "$parent"
echo "+memory +pids" >"$parent/cgroup.subtree_control"   # the level writes it too: harmless twice
level_cgroups() { find "$parent" -mindepth 1 -type d | sed "s|^$parent/||" | paste -sd' ' -; }
run_level5() {  # run_level5 SCRIPT: the level runs `sh -c SCRIPT` in the check's cgroup
    BYO_CGROUP_PARENT=$parent TMPDIR=$work/tmp run_student "$image" sh -c "$1" "$tag" 2>"$work/stderr"
}

# 1. A memory hog: dd reads 128 MiB into one buffer; the limit is 32 MiB.
out=$(run_level5 'cat /proc/self/cgroup; dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null; echo "dd-status $?"')
rc=$?
expect "the level runs the command and exits with its status" 0 "$rc" \
    "run it by hand in the VM: sudo python3 $file IMAGE_DIR sh; its last lines on stderr say what went wrong"
[ "$rc" != 0 ] && grep -v '^\[explain\]' "$work/stderr" | tail -n 5 | sed 's/^/  stderr: /'
cgline=$(echo "$out" | grep '^0::')
case $cgline in
    "0::/$tag-level5/"?*) passed "the container runs in a cgroup of its own (${cgline#0::})" ;;
    *) failed "the container runs in a cgroup of its own" "its /proc/self/cgroup says '${cgline:-nothing}'" \
        "mkdir a cgroup under BYO_CGROUP_PARENT (TODO level 5 (1)) and write the child's pid to its cgroup.procs before it execs (TODO level 5 (2))" ;;
esac
expect "a memory hog (dd bs=128M) is killed under the 32 MiB limit" "dd-status 137" \
    "$(echo "$out" | grep '^dd-status')" \
    "write memory.max (MEMORY_MAX) and memory.swap.max 0 in the cgroup (TODO level 5 (1)), and move the child in (TODO level 5 (2))"
kills=$(awk '$1 == "oom_kill" {print $2}' "$parent/memory.events")
if [ "${kills:-0}" -ge 1 ]; then
    passed "memory.events: the OOM killer acted (oom_kill $kills)"
else
    failed "memory.events: the OOM killer acted" "oom_kill ${kills:-0}" \
        "the kill must come from the cgroup's memory.max: +memory in the parent's cgroup.subtree_control, then memory.max (TODO level 5 (1))"
fi
expect "the level's cgroup is removed after the container ends" "" "$(level_cgroups)" \
    "rmdir the cgroup once the container has exited, retrying on EBUSY (TODO level 5 (3))"

# 2. A fork bomb: 64 background sleeps; the limit is 16 processes.
out=$(run_level5 'i=0; while [ $i -lt 64 ]; do sleep 10 & i=$((i + 1)); done; echo "forked $i"')
if grep -q "can't fork" "$work/stderr" && ! echo "$out" | grep -q '^forked 64'; then
    passed "a fork bomb hits pids.max (fork fails)"
else
    failed "a fork bomb hits pids.max (fork fails)" "64 forks: $(echo "$out" | grep '^forked' || echo 'no result')" \
        "write pids.max (PIDS_MAX) in the cgroup (TODO level 5 (1)) with +pids in the parent's cgroup.subtree_control"
fi
expect "the level's cgroup is removed after the fork bomb too" "" "$(level_cgroups)" \
    "rmdir the cgroup once the container has exited, retrying on EBUSY (TODO level 5 (3))"

expect "the image directory is unchanged" "$digest" "$(tree_digest "$image")" \
    "the container's writes must go to the overlay's upper dir, never to IMAGE_DIR"
expect "the level's scratch directory is removed" "" "$(ls -A "$work/tmp")" \
    "the parent removes its temp dir (os.rmdir) once the container has exited"
finish_level
