#!/usr/bin/env bash
# Level 7's check: a veth pair into the container's network namespace. The
# whole check runs in a network namespace of its own (unshare --net), so the
# level's veth lands there, never on the machine's network, no name can clash
# with anything else, and afterwards that namespace must hold only its
# loopback again. Inside the container: eth0's address, a default route, a
# ping to the host's end (10.231.X.1, the .1 of the container's /24).
# Usage: checks/level7.sh FILE
if [ "$(id -u)" = 0 ] && [ -z "${BYO_CHECK7_NETNS:-}" ]; then
    exec env BYO_CHECK7_NETNS=1 unshare --net -- bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
start_level 7 "$@"
ip link set lo up

make_check_dir   # $tmp: ours, named with $tag, removed at exit (lib.sh)
work=$tmp
links() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | LC_ALL=C sort | paste -sd' ' -; }

image=$work/image
make_image_dir "$image"
mkdir "$work/tmp"
digest=$(tree_digest "$image")
links_before=$(links)

script='echo "links $(ip -o link show | awk -F": " "{sub(/@.*/, \"\", \$2); print \$2}" | sort | paste -sd" " -)"
address=$(ip -o -4 addr show dev eth0 2>/dev/null | awk "{print \$4}")
echo "eth0 ${address:-none}"
echo "route $(ip route | awk "\$1 == \"default\" {print \$3}")"
if [ -n "$address" ]; then
    peer=${address%/*}; peer=${peer%.*}.1
    if ping -c 1 -W 3 "$peer" >/dev/null 2>&1; then echo "ping $peer ok"; else echo "ping $peer failed"; fi
else
    echo "ping none"
fi'
out=$(TMPDIR=$work/tmp run_student "$image" sh -c "$script" "$tag" 2>"$work/stderr")
rc=$?
field() { echo "$out" | awk -v k="$1" '$1 == k {$1 = ""; sub(/^ /, ""); print; exit}'; }

expect "the level runs the command and exits with its status" 0 "$rc" \
    "run it by hand: sudo python3 $file IMAGE_DIR sh; its last lines on stderr say what went wrong"
[ "$rc" != 0 ] && grep -v '^\[explain\]' "$work/stderr" | tail -n 5 | sed 's/^/  stderr: /'
container_links=$(field links)
if [ "$container_links" = "$links_before" ]; then
    failed "the container has a network namespace of its own" "it sees the check's links: $container_links" \
        "add sc.CLONE_NEWNET to NAMESPACES, the child's unshare (TODO level 7 (1))"
else
    expect "the container's links are lo and eth0" "eth0 lo" "$container_links" \
        "make the pair with the peer named eth0 in the child's namespace: kernel.create_veth(VETH, \"eth0\", netns, pid, why) (TODO level 7 (2))"
fi
address=$(field eth0)
case $address in
    10.231.*.2/24) passed "eth0 has the container's address ($address)" ;;
    *) failed "eth0 has the container's address (10.231.X.2/24)" "got ${address:-nothing}" \
        "setns into the container's namespace, then add_address(\"eth0\", CONTAINER_ADDRESS, PREFIX, why) and set it up (TODO level 7 (3))" ;;
esac
want_route=10.231.X.1
case $address in 10.231.*/24) want_route=${address%.*}.1 ;; esac
expect "the default route goes through the host's end" "$want_route" "$(field route)" \
    "add_default_route(HOST_ADDRESS, why) inside the container's namespace (TODO level 7 (3))"
ping_result=$(field ping)
case $ping_result in
    *" ok") passed "ping from inside reaches the host's end (${ping_result% ok})" ;;
    *) failed "ping from inside reaches the host's end" "ping: ${ping_result:-no result}" \
        "the host's end needs HOST_ADDRESS and must be up (TODO level 7 (2)); eth0 up too (TODO level 7 (3))" ;;
esac
# The kernel tears a dead namespace (and its veth) down lazily: give it a moment.
for _ in $(seq 50); do [ "$(links)" = "$links_before" ] && break; sleep 0.1; done
expect "no veth is left after the container ends" "$links_before" "$(links)" \
    "delete the host's end once the container has exited: kernel.delete_link(VETH, why) (TODO level 7 (4)); and keep no fd of its namespace open"
expect "the image directory is unchanged" "$digest" "$(tree_digest "$image")" \
    "the container's writes must go to the overlay's upper dir, never to IMAGE_DIR"
expect "the level's scratch directory is removed" "" "$(ls -A "$work/tmp")" \
    "the parent removes its temp dir (os.rmdir) once the container has exited"
finish_level
