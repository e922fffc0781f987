#!/usr/bin/env bash
# Level 6's check: capabilities, no_new_privs and a seccomp filter, seen from
# inside the student's container: /proc/self/status's CapBnd, CapEff and
# NoNewPrivs, a call the filter must refuse (unshare(CLONE_NEWUSER): allowed
# without any capability, so only seccomp can say EPERM), and, where gcc can
# build it, a setuid-root program run as a user (it must not gain root).
# Usage: checks/level6.sh FILE
. "$(dirname "$0")/lib.sh"
start_level 6 "$@"

make_check_dir   # $tmp: ours, named with $tag, removed at exit (lib.sh)
work=$tmp

image=$work/image
make_image_dir "$image"
mkdir "$work/tmp"
# examples/capabilities-and-seccomp/euid.c prints uid and euid; setuid root in the image.
setuid_test=no
if command -v gcc >/dev/null &&
        gcc -static -O2 -o "$image/euid" "$repo/examples/capabilities-and-seccomp/euid.c" 2>/dev/null; then
    chmod 4755 "$image/euid"
    setuid_test=yes
fi
digest=$(tree_digest "$image")

# The kept set: Docker's default (minict's DOCKER_DEFAULT), less what this
# machine's root itself lacks (a bounding set only shrinks).
host_bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
want=$(PYTHONPATH=$repo "$PYTHON" -c '
import sys
from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NUMBERS
mask = sum(1 << NUMBERS[n] for n in DOCKER_DEFAULT) & int(sys.argv[1], 16)
print(f"{mask:016x}")' "$host_bnd")

script='grep -E "^(CapBnd|CapEff|NoNewPrivs):" /proc/self/status
unshare -U true 2>&1; echo "unshare-status $?"
ls / >/dev/null && echo "ls-ok"
if [ -x /euid ]; then su -s /euid student; fi'
out=$(TMPDIR=$work/tmp run_student "$image" sh -c "$script" "$tag" 2>"$work/stderr")
rc=$?
field() { echo "$out" | awk -v k="$1" '$1 == k {print $2; exit}'; }

expect "the level runs the command and exits with its status" 0 "$rc" \
    "run it by hand: sudo python3 $file IMAGE_DIR sh; its last lines on stderr say what went wrong"
[ "$rc" != 0 ] && grep -v '^\[explain\]' "$work/stderr" | tail -n 5 | sed 's/^/  stderr: /'
expect "the container still works (ls /)" ls-ok "$(echo "$out" | grep -x ls-ok)" \
    "the filter must refuse only the calls in DENY: everything else stays allowed (defaction=seccomp.ALLOW)"
expect "CapBnd inside is Docker's default set" "$want" "$(field CapBnd:)" \
    "drop every capability not in KEEP from the bounding set: kernel.drop_bounding_cap (TODO level 6 (1))"
expect "CapEff inside is Docker's default set" "$want" "$(field CapEff:)" \
    "then kernel.set_capabilities(keep, names, why): effective = permitted = KEEP (TODO level 6 (1))"
expect "NoNewPrivs inside is 1" 1 "$(field NoNewPrivs:)" \
    "kernel.set_no_new_privs(why) before execve (TODO level 6 (2))"
if echo "$out" | grep -q '^unshare-status 0'; then
    failed "unshare(CLONE_NEWUSER) is refused with EPERM (seccomp)" "unshare -U succeeded" \
        "it needs no capability: only the filter can stop it; add_rule(seccomp.ERRNO(errno.EPERM), \"unshare\") (TODO level 6 (3))"
elif echo "$out" | grep -q 'Operation not permitted'; then
    passed "unshare(CLONE_NEWUSER) is refused with EPERM (seccomp)"
else
    failed "unshare(CLONE_NEWUSER) is refused with EPERM (seccomp)" \
        "got: $(echo "$out" | grep -i unshare | head -n 2 | paste -sd' ' -)" \
        "the rule's action must be seccomp.ERRNO(errno.EPERM) (TODO level 6 (3))"
fi
if [ "$setuid_test" = yes ]; then
    expect "a setuid-root program run as a user gains no root" "uid=1000 euid=1000" \
        "$(echo "$out" | grep '^uid=')" \
        "with no_new_privs execve ignores the setuid bit (TODO level 6 (2))"
else
    echo "check: a setuid-root program run as a user gains no root: skipped (no gcc to build euid.c)"
fi
expect "the image directory is unchanged" "$digest" "$(tree_digest "$image")" \
    "the container's writes must go to the overlay's upper dir, never to IMAGE_DIR"
expect "the level's scratch directory is removed" "" "$(ls -A "$work/tmp")" \
    "the parent removes its temp dir (os.rmdir) once the container has exited"
finish_level
