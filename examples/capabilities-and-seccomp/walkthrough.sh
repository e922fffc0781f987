#!/usr/bin/env bash
# Capabilities, seccomp and no_new_privs: what root in a container may not
# do, which layer of the kernel says no, and how --cap-add, --security-opt
# seccomp=unconfined and --privileged change it. Each step checks what it
# shows ("check: ..."). Read README.md alongside. Run as root: sudo ./walkthrough.sh
# Set EXPLAIN=0 to hide the --explain narration.
# Nothing here changes the host: the clock step asks for an impossible tick,
# which the kernel refuses after the capability check and before any change.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lesson.sh"

work=$(mktemp -d)
chmod 755 "$work"             # uid 1000 in step 5 must reach /lesson
trap 'rm -rf "$work"; "$MINICT" rm -f lesson-caps >/dev/null 2>&1' EXIT   # also if stopped midway
ensure_busybox_image

box() {  # a throwaway container; no step needs a network, only loopback
    "$MINICT" run --rm --network none "$@"
}

# Capability numbers -> names, from <linux/capability.h> (capsh --decode does the same).
CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
           LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
           SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
           SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
           MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
           CHECKPOINT_RESTORE)
DOCKER_DEFAULT=" CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE "

decode() {  # a hex mask from /proc/PID/status -> the names of its bits
    local mask=$((16#$1)) i names=()
    for i in "${!CAP_NAMES[@]}"; do
        if (( mask >> i & 1 )); then names+=("${CAP_NAMES[i]}"); fi
    done
    echo "${names[*]}"
}

has() {  # has MASK NAME: is the capability's bit set in the mask?
    local i
    for i in "${!CAP_NAMES[@]}"; do
        if [ "${CAP_NAMES[i]}" = "$2" ]; then
            (( 16#$1 >> i & 1 )) && echo yes || echo no
            return
        fi
    done
}

sorted() {  # words, one space apart, sorted
    printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'
}

field() {  # field NAME [run options...]: a line of the container's /proc/self/status, value only
    local name=$1
    shift
    box "$@" busybox grep "^$name:" /proc/self/status | awk '{print $2}'
}

step "1. A capability is one of root's privileges; the bounding set is all a container can ever hold"
echo "this shell (root on the host):"
grep -E '^Cap(Eff|Bnd)' /proc/self/status
echo "a default container (root in there too):"
box busybox grep -E '^Cap' /proc/self/status
bounding=$(field CapBnd)
effective=$(field CapEff)
echo "its bounding set, decoded: $(decode "$bounding")"
kept=$(decode "$bounding")
check "root in the container holds its whole bounding set in effect" "$bounding" "$effective"
check "no CAP_SYS_ADMIN (mount, sethostname, most of the kernel's knobs)" "no" "$(has "$bounding" SYS_ADMIN)"
check "no CAP_SYS_TIME (the clock)" "no" "$(has "$bounding" SYS_TIME)"
check "CAP_NET_RAW is kept (docker keeps it too)" "yes" "$(has "$bounding" NET_RAW)"
outside=$(for name in $kept; do case "$DOCKER_DEFAULT" in *" $name "*) ;; *) echo "$name";; esac; done)
check "every capability kept is one of docker's 14 defaults" "" "$outside"
echo "a non-root user (--user 1000) keeps the same bounding set, but nothing in effect:"
box --user 1000 busybox grep -E '^Cap(Eff|Bnd)' /proc/self/status
check "--user 1000: CapEff is empty" "0000000000000000" "$(field CapEff --user 1000)"

step "2. How: minict drops the rest from the bounding set, one prctl each, for good"
NARRATION='PR_CAPBSET_DROP, CAP_(SYS_ADMIN|SYS_TIME|NET_ADMIN|SYS_MODULE|MKNOD)\)|gets no CAP_MKNOD|capset'
explain run --rm --network none busybox true
host_bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
host_count=$(decode "$host_bounding" | wc -w)
kept_count=$(echo "$kept" | wc -w)
check "one PR_CAPBSET_DROP per capability this shell has and the container must not" \
      "$((host_count - kept_count))" \
      "$("$MINICT" --explain run --rm --network none busybox true 2>&1 | grep -c 'prctl(PR_CAPBSET_DROP')"
"$MINICT" rm -f lesson-caps >/dev/null 2>&1
"$MINICT" run --name lesson-caps --network none busybox true
echo "the same set in the container's config.json (minict inspect --bundle lesson-caps):"
"$MINICT" inspect --bundle lesson-caps | sed -n '/"bounding"/,/]/p' | tr -d ' \n' | sed 's/,/, /g'
echo
in_config=$("$MINICT" inspect --bundle lesson-caps | sed -n '/"bounding"/,/]/p' | grep -o 'CAP_[A-Z_]*' \
            | sed 's/^CAP_//')
# Without a cgroup v2 device controller minict also drops CAP_MKNOD (the
# narration above says so), and the config.json it ran with says so too.
expected=14
if "$MINICT" --explain run --rm --network none busybox true 2>&1 | grep -q 'gets no CAP_MKNOD'; then
    expected=13
fi
check "config.json's bounding set: docker's 14 defaults (13 without a device controller)" \
      "$expected" "$(echo $in_config | wc -w)"
check "the container got exactly config.json's set" "$(sorted $in_config)" "$(sorted $kept)"
"$MINICT" rm lesson-caps >/dev/null

step "3. Raw sockets and the clock: what --cap-drop and --cap-add change"
echo "the container's network namespace allows no unprivileged ICMP socket (ping_group_range):"
box busybox cat /proc/sys/net/ipv4/ping_group_range
box busybox ping -c 1 -W 1 127.0.0.1
check "a default container can ping: a raw socket, CAP_NET_RAW" "0" \
      "$(box busybox ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1; echo $?)"
box --cap-drop NET_RAW busybox ping -c 1 -W 1 127.0.0.1 2>&1
check "--cap-drop NET_RAW: ping is refused" "permission denied" \
      "$(box --cap-drop NET_RAW busybox ping -c 1 -W 1 127.0.0.1 2>&1 | grep -o 'permission denied')"
box busybox date -s "2001-01-01 00:00" 2>&1 >/dev/null
check "date -s: refused (by the seccomp filter first: clock_settime is on its list)" \
      "Operation not permitted" \
      "$(box busybox date -s "2001-01-01 00:00" 2>&1 >/dev/null | grep -o 'Operation not permitted')"
check "... and without the filter, by the missing CAP_SYS_TIME" "Operation not permitted" \
      "$(box --security-opt seccomp=unconfined busybox date -s "2001-01-01 00:00" 2>&1 >/dev/null \
         | grep -o 'Operation not permitted')"
echo "adjtimex -t 1 asks for a clock tick of 1 microsecond (sane is 9000 to 11000):"
box busybox adjtimex -t 1 2>&1
box --cap-add SYS_TIME busybox adjtimex -t 1 2>&1
check "default: the capability check refuses it" "Operation not permitted" \
      "$(box busybox adjtimex -t 1 2>&1 | grep -o 'Operation not permitted')"
check "--cap-add SYS_TIME: past the capability check, the value is refused" "Invalid argument" \
      "$(box --cap-add SYS_TIME busybox adjtimex -t 1 2>&1 | grep -o 'Invalid argument')"
check "--cap-add SYS_TIME: the bit is in CapEff" "yes" "$(has "$(field CapEff --cap-add SYS_TIME)" SYS_TIME)"
check "the clock still says this year" "$(date +%Y)" "$(box busybox date +%Y)"
NARRATION='SECCOMP_SET_MODE_FILTER'
explain run --rm --network none --cap-add SYS_TIME busybox true
check "--cap-add SYS_TIME also takes clock_settime off the filter's list" "default: 1, SYS_TIME: 0" \
      "default: $("$MINICT" --explain run --rm --network none busybox true 2>&1 | grep SECCOMP_SET_MODE_FILTER | grep -c 'clock_settime'), SYS_TIME: $("$MINICT" --explain run --rm --network none --cap-add SYS_TIME busybox true 2>&1 | grep SECCOMP_SET_MODE_FILTER | grep -c 'clock_settime')"

step "4. seccomp: some calls never reach the kernel, whatever the capabilities"
NARRATION='SECCOMP_SET_MODE_FILTER|No linux.seccomp'
echo "default, then --security-opt seccomp=unconfined:"
explain run --rm --network none busybox true
explain run --rm --network none --security-opt seccomp=unconfined busybox true
box busybox grep -E '^Seccomp' /proc/self/status
box busybox unshare -U true 2>&1
check "unshare -U (a user namespace, which needs no capability): EPERM from the filter" \
      "Operation not permitted" \
      "$(box busybox unshare -U true 2>&1 | grep -o 'Operation not permitted')"
check "--security-opt seccomp=unconfined: it works, and root in there is uid 0 of its own" "0" \
      "$(box --security-opt seccomp=unconfined busybox unshare -Ur id -u)"
box --security-opt seccomp=unconfined busybox unshare -m true 2>&1
check "unshare -m without the filter: now the missing CAP_SYS_ADMIN refuses it" "Operation not permitted" \
      "$(box --security-opt seccomp=unconfined busybox unshare -m true 2>&1 | grep -o 'Operation not permitted')"
check "--cap-add SYS_ADMIN: the filter leaves unshare open, and it works" "0" \
      "$(box --cap-add SYS_ADMIN busybox unshare -m true >/dev/null 2>&1; echo $?)"
if command -v gcc >/dev/null; then
    gcc -static -O2 -o "$work/keyring-id" "$here/keyring-id.c"
    gcc -static -O2 -o "$work/euid" "$here/euid.c"
    echo "root's user keyring, asked with keyctl(2) on the host, then in containers:"
    "$work/keyring-id"
    box -v "$work:/lesson" busybox /lesson/keyring-id
    box -v "$work:/lesson" --security-opt seccomp=unconfined busybox /lesson/keyring-id
    check "keyctl in a default container: EPERM from the filter" "keyctl: Operation not permitted" \
          "$(box -v "$work:/lesson" busybox /lesson/keyring-id)"
    check "seccomp=unconfined: the container reaches the host's own keyring" "$("$work/keyring-id")" \
          "$(box -v "$work:/lesson" --security-opt seccomp=unconfined busybox /lesson/keyring-id)"
else
    echo "(gcc is not installed (scripts/setup.sh installs it): the keyctl part and step 5's setuid program are skipped)"
fi

step "5. no_new_privs: execve grants nothing, not even a setuid-root program"
NARRATION='NO_NEW_PRIVS|No linux.seccomp'
explain run --rm --network none busybox true
echo "with --privileged:"
explain run --rm --network none --privileged busybox true
check "--privileged: no PR_SET_NO_NEW_PRIVS in the narration" "0" \
      "$("$MINICT" --explain run --rm --network none --privileged busybox true 2>&1 | grep -c 'PR_SET_NO_NEW_PRIVS')"
box busybox grep NoNewPrivs /proc/self/status
check "NoNewPrivs in a default container" "1" "$(field NoNewPrivs)"
check "... and with --privileged" "0" "$(field NoNewPrivs --privileged)"
if [ -x "$work/euid" ]; then
    chmod 4755 "$work/euid"         # owned by root: setuid root
    ls -l "$work/euid"
    box -v "$work:/lesson" --user 1000 busybox /lesson/euid
    box -v "$work:/lesson" --user 1000 --privileged busybox /lesson/euid
    check "--user 1000 runs the setuid-root program: no_new_privs keeps euid 1000" "uid=1000 euid=1000" \
          "$(box -v "$work:/lesson" --user 1000 busybox /lesson/euid)"
    check "--privileged (no no_new_privs): the same program gets euid 0" "uid=1000 euid=0" \
          "$(box -v "$work:/lesson" --user 1000 --privileged busybox /lesson/euid)"
fi

all_checks_passed
