#!/usr/bin/env bash
# The user namespace: run containers as an ordinary user, be root inside,
# and see what that root may and may not do. Each step checks what it
# shows ("check: ..."). Read README.md alongside.
# Run it as yourself: ./walkthrough.sh (no sudo needed). Started as root,
# it runs every step as the user nobody instead, with a store of its own.
# Set EXPLAIN=0 to hide the --explain narration.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

run_as_nobody() {  # root: the whole walk-through again, as nobody, in a temp store
    local work status
    work=$(mktemp -d /tmp/minict-user-namespaces.XXXXXX)
    # nobody must reach its store: mktemp's directory is root's alone (0700)
    chmod 755 "$work"
    chown "$(id -u nobody):$(id -g nobody)" "$work"
    echo "started as root: every step below runs as nobody (uid $(id -u nobody)), store in $work"
    # env -i: nothing of root's environment (HOME, XDG_RUNTIME_DIR) leaks in
    setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups \
        env -i PATH="$PATH" HOME="$work" MINICT_ROOT="$work/root" MINICT_STATE="$work/state" \
        EXPLAIN="${EXPLAIN:-1}" ${MINICT:+MINICT="$MINICT"} "$here/walkthrough.sh"
    status=$?
    rm -rf "$work"
    exit "$status"
}

if [ "$(id -u)" = 0 ]; then
    run_as_nobody
fi

. "$here/../lesson.sh"
volume=$(mktemp -d)
trap 'rm -rf "$volume"' EXIT
me=$(id -u)
ensure_busybox_image

step "1. You are uid $me out here, and root in there"
id
"$MINICT" run --rm busybox id
check "uid 0 inside the container" "0" "$("$MINICT" run --rm busybox id -u)"
echo "the host's map (the initial user namespace, every id as itself):"
cat /proc/self/uid_map
echo "the container's map:"
"$MINICT" run --rm busybox cat /proc/self/uid_map /proc/self/gid_map
check "the container's uid_map: uid 0 inside is you ($me) outside, one id" "0 $me 1" \
      "$("$MINICT" run --rm busybox head -1 /proc/self/uid_map | awk '{print $1, $2, $3}')"
check "the container's gid_map: gid 0 inside is your group outside" "0 $(id -g) 1" \
      "$("$MINICT" run --rm busybox head -1 /proc/self/gid_map | awk '{print $1, $2, $3}')"
ns_here=$(readlink /proc/self/ns/user)
ns_there=$("$MINICT" run --rm busybox readlink /proc/self/ns/user)
echo "user namespace of this shell: $ns_here; of the container: $ns_there"
check "the container is in another user namespace than this shell" "different" \
      "$([ "$ns_here" != "$ns_there" ] && echo different || echo same)"

step "2. How: clone(CLONE_NEWUSER), then minict writes the maps from outside"
NARRATION='Without root|CLONE_NEWUSER|uid_map|setgroups|gid_map'
explain run --rm busybox true
check "the first process is born in a new user namespace" "1" \
      "$("$MINICT" --explain run --rm busybox true 2>&1 | grep -c 'clone(CLONE_NEWUSER')"
check "uid_map, then setgroups denied, then gid_map" "uid_map setgroups gid_map" \
      "$("$MINICT" --explain run --rm busybox true 2>&1 | grep -o 'uid_map\|setgroups\|gid_map' \
         | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')"   # each name once, in order of appearance

step "3. Files: root's files in there are yours out here; no other id exists in there"
"$MINICT" run --rm -v "$volume:/data" busybox sh -c 'echo "written by root" > /data/made-inside; ls -ln /data'
echo "on the host:"
ls -ln "$volume"
check "the file is owned by you on the host" "$me" "$(stat -c %u "$volume/made-inside")"
check "chown to a uid the map does not have" "Invalid argument" \
      "$("$MINICT" run --rm -v "$volume:/data" busybox sh -c 'chown 1000 /data/made-inside 2>&1' | grep -o 'Invalid argument')"
"$MINICT" run --rm -v /etc/shadow:/shadow:ro busybox sh -c 'ls -ln /shadow; cat /shadow 2>&1'
check "root in there cannot read the host's /etc/shadow" "Permission denied" \
      "$("$MINICT" run --rm -v /etc/shadow:/shadow:ro busybox sh -c 'cat /shadow 2>&1' | grep -o 'Permission denied')"

step "4. Capabilities count only over what the user namespace owns"
"$MINICT" run --rm busybox sh -c 'grep -E "^Cap(Eff|Bnd)" /proc/self/status; mknod /tmp/null c 1 3 2>&1; mkfifo /tmp/fifo && ls -l /tmp/fifo'
check "mknod of a device node" "Operation not permitted" \
      "$("$MINICT" run --rm busybox sh -c 'mknod /tmp/null c 1 3 2>&1' | grep -o 'Operation not permitted')"
check "a FIFO is not a device: mkfifo works" "p" \
      "$("$MINICT" run --rm busybox sh -c 'mkfifo /tmp/fifo && stat -c %A /tmp/fifo' | cut -c1)"
"$MINICT" run --rm --cap-add NET_ADMIN busybox sh -c 'ip link set lo mtu 1280 && ip link show lo'
check "CAP_NET_ADMIN works on the container's own network namespace" "1280" \
      "$("$MINICT" run --rm --cap-add NET_ADMIN busybox sh -c 'ip link set lo mtu 1280 && cat /sys/class/net/lo/mtu')"
"$MINICT" run --rm --cap-add SYS_TIME busybox sh -c 'grep CapEff /proc/self/status; date -s "2001-01-01 00:00" 2>&1 >/dev/null'
check "CAP_SYS_TIME does not work on the host's clock" "Operation not permitted" \
      "$("$MINICT" run --rm --cap-add SYS_TIME busybox sh -c 'date -s "2001-01-01 00:00" 2>&1' | grep -o 'Operation not permitted')"
check "the clock still says this year" "$(date +%Y)" "$("$MINICT" run --rm busybox date +%Y)"

step "5. A network without root: slirp4netns, a TCP/IP stack in a process of yours"
if command -v slirp4netns >/dev/null; then
    "$MINICT" --explain run --rm busybox ip -4 -o addr show tap0 2>&1 | grep -E 'slirp4netns|tap0'
    check "the default network gives the container tap0 at 10.0.2.100" "10.0.2.100/24" \
          "$("$MINICT" run --rm busybox ip -4 -o addr show tap0 | grep -o '10.0.2.100/24')"
    check "its nameserver is slirp4netns' own, 10.0.2.3" "nameserver 10.0.2.3" \
          "$("$MINICT" run --rm busybox grep ^nameserver /etc/resolv.conf)"
else
    echo "(slirp4netns is not installed: the default is --network none, loopback only)"
    check "the default network is loopback only" "lo" \
          "$("$MINICT" run --rm busybox ls /sys/class/net | tr '\n' ' ' | sed 's/ $//')"
fi

step "6. What needs root on the host is refused, in one line, before anything is made"
"$MINICT" run --rm --memory 64m busybox true 2>&1
memory_status=$?
check "--memory (a cgroup) exits with 40" "40" "$memory_status"
check "... and says why in one line" "1" \
      "$("$MINICT" run --rm --memory 64m busybox true 2>&1 | wc -l)"
"$MINICT" run --rm --network bridge busybox true 2>&1
check "--network bridge (a veth on the host) is refused" "refused" \
      "$("$MINICT" run --rm --network bridge busybox true 2>/dev/null && echo ran || echo refused)"

all_checks_passed
