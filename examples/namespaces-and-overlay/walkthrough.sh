#!/usr/bin/env bash
# A walk through namespaces and overlayfs with minict, one step at a time.
# Each step runs a container, shows what it sees, and checks it ("check: ...").
# Read README.md alongside. Run as root: sudo ./walkthrough.sh
# Set EXPLAIN=0 to hide the --explain narration.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lesson.sh"

ensure_busybox_image

step "1. A container is a process in new namespaces: it is PID 1 and has its own hostname"
host_name=$(hostname)
"$MINICT" run --rm --hostname lesson busybox sh -c 'echo "hostname: $(hostname)"; echo "my PID: $$"; ps -o pid,args; true'
check "the command is PID 1" "1" "$("$MINICT" run --rm busybox sh -c 'echo $$')"
check "the container has its own hostname" "lesson" "$("$MINICT" run --rm --hostname lesson busybox hostname)"
check "the host kept its name" "$host_name" "$(hostname)"
NARRATION='unshare|setns|sethostname'
explain run --rm --hostname lesson busybox true

step "2. Its root is an overlay: the image's layers below, the container's own directory on top"
"$MINICT" run --rm busybox sh -c 'grep " / " /proc/self/mountinfo | tr "," "\n" | grep -E "overlay|dir="'
NARRATION='overlay|pivot_root|umount2'
explain run --rm busybox true
host_mounts_before=$(wc -l < /proc/self/mountinfo)
"$MINICT" run --rm busybox true
check "nothing was mounted in the host's mount table" "$host_mounts_before" "$(wc -l < /proc/self/mountinfo)"

step "3. Copy-on-write: a container's writes land in its upper directory, nowhere else"
"$MINICT" rm -f lesson-writer >/dev/null 2>&1
"$MINICT" run --name lesson-writer busybox sh -c 'echo "hello from the container" > /etc/motd; rm /bin/vi'
upper=$("$MINICT" inspect lesson-writer | sed -n 's/.*"UpperDir": "\(.*\)".*/\1/p')
echo "the container's upper directory on the host: $upper"
ls -l "$upper/etc/motd" "$upper/bin/vi"
check "the new file is in the upper directory" "hello from the container" "$(cat "$upper/etc/motd")"
check "the deleted file is a whiteout (a 0/0 character device)" "c" "$(stat -c %F "$upper/bin/vi" | cut -c1)"
check "another container of the same image does not see it" "no motd" \
      "$("$MINICT" run --rm busybox sh -c 'cat /etc/motd 2>/dev/null || echo no motd')"
check "... and still has /bin/vi" "/bin/vi" "$("$MINICT" run --rm busybox sh -c 'ls /bin/vi')"
"$MINICT" rm lesson-writer >/dev/null
check "rm removed its upper directory" "gone" "$([ -e "$upper" ] && echo there || echo gone)"

step "4. A network namespace of its own: with --network none, only a loopback interface"
"$MINICT" run --rm --network none busybox ip addr
check "interfaces inside" "lo" "$("$MINICT" run --rm --network none busybox ls /sys/class/net)"
# (ip, not /sys/class/net, on the host's side: /sys shows the network namespace it was
# mounted in, which need not be the one this shell is in.)
check "--net host shares the host's" "$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')" \
      "$("$MINICT" run --rm --net host busybox ls /sys/class/net | sort | tr '\n' ' ')"

step "5. What it may not do: capabilities, masked paths, a seccomp filter"
"$MINICT" run --rm busybox sh -c 'grep -E "^Cap(Eff|Bnd)|NoNewPrivs|^Seccomp:" /proc/self/status; hostname other 2>&1; umount /proc/sys 2>&1'
check "seccomp refuses a user namespace (which needs no capability)" "Operation not permitted" \
      "$("$MINICT" run --rm busybox sh -c 'unshare -U true 2>&1' | grep -o 'Operation not permitted')"
check "... unless the filter is turned off" "0" \
      "$("$MINICT" run --rm --security-opt seccomp=unconfined busybox unshare -Ur id -u)"
NARRATION='CAP_SYS_ADMIN|NO_NEW_PRIVS|/proc/sys"|SECCOMP'
explain run --rm busybox true

all_checks_passed
