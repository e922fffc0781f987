# Level 1's check: a hostname and a PID namespace of its own (see ../level1.py).
# `hostname` inside prints level1, the host's hostname is unchanged after,
# `echo $$` inside prints 1, and the exit status still comes back.
# The file runs in a copy of the host's UTS namespace (lib.sh guarded): a
# sethostname without a namespace of its own renames that copy, not the machine.
. "$(dirname "$0")/lib.sh"
start_level 1 "$@"
make_check_dir

out=$(guarded "${student[@]}" sh -c 'echo "hostname=$(hostname)"; echo "pid=$$"; exit 3' "$tag" 2>&1)
rc=$?
note_todo "$out"
inside=$(printf '%s\n' "$out" | sed -n 's/^hostname=//p')
pid=$(printf '%s\n' "$out" | sed -n 's/^pid=//p')
host_before=$(cat "$tmp/guard.hostname-before" 2>/dev/null)
host_after=$(cat "$tmp/guard.hostname-after" 2>/dev/null)

if [ "$inside" = level1 ]; then
    passed "hostname inside is level1"
elif [ "$inside" = "$host_before" ]; then
    failed "hostname inside is level1" "it is the host's, '$inside'" \
           "the hostname inside is the host's: call sethostname after unshare(CLONE_NEWUTS), in the child"
else
    failed "hostname inside is level1" "got '${inside:-nothing}'" \
           "kernel.sethostname(HOSTNAME, ...) in the child, after unshare(CLONE_NEWUTS), before exec"
fi
expect "the host's hostname is unchanged" "$host_before" "$host_after" \
       "sethostname renamed the host: unshare(CLONE_NEWUTS) first, in the child, so the name is the new namespace's"
expect "echo \$\$ inside prints 1 (PID 1 of its own PID namespace)" 1 "$pid" \
       "kernel.unshare(sc.CLONE_NEWPID, ...) in the parent before the fork: its next child is PID 1 there"
expect "the exit status still comes back" 3 "$rc" \
       "as in level 0: os.waitpid in the parent, then exit with the child's code"
finish_level
