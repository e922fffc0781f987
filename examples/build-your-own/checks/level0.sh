# Level 0's check: fork and exec a command (see ../level0.py).
# The command's output and exit status come back, a signal's as 128+N, a
# missing command's as 127; the parent waited for the child; and the
# command ran in a child of the Python process, not in its place.
. "$(dirname "$0")/lib.sh"
start_level 0 "$@"
make_check_dir

out=$(run_student sh -c 'echo "hello from $0"; exit 7' "$tag" 2>&1); rc=$?
note_todo "$out"
case $out in
    *"hello from $tag"*) passed "the command's output comes back" ;;
    *) failed "the command's output comes back" "no 'hello from $tag' in: $(echo "$out" | tail -1)" \
              "the command never ran: os.fork(), then os.execvp(argv[0], argv) in the child (pid 0)" ;;
esac
expect "its exit status comes back" 7 "$rc" \
       "in the parent: os.waitpid(pid, 0), then exit with the child's code (sys.exit(run(...)))"

run_student sh -c 'kill -TERM $$' "$tag" >/dev/null 2>&1; rc=$?
expect "killed by SIGTERM, it exits 128+15" 143 "$rc" \
       "os.waitstatus_to_exitcode(status) is -N for signal N: return 128+N, as a shell does"

out=$(run_student "no-such-command-$tag" 2>&1); rc=$?
expect "a missing command exits 127" 127 "$rc" \
       "in the child, catch the OSError of execvp, print it and os._exit(127) (never return)"

# Waited: the child's last act is a file written after a pause; it must be
# there the moment the parent has ended. (stdout to a file, not a pipe: $(...)
# would wait for the child's end of the pipe, and hide a parent that did not.)
run_student sh -c "sleep 0.5; echo done > '$tmp/waited'" "$tag" >"$tmp/out" 2>&1
if [ -f "$tmp/waited" ]; then
    passed "the parent waited for the child"
else
    failed "the parent waited for the child" "it ended before the child did" \
           "os.waitpid(pid, 0) in the parent: without it, the parent ends first"
fi
sleep 0.6   # a child that was not waited for ends now, before the temp dir goes

# Another pid: the command's parent is the Python process (it forked), not
# timeout(1), which runs the student's file (it exec'd in place).
out=$(run_student sh -c 'echo "$$ $PPID $(cat /proc/$PPID/comm)"' "$tag" 2>/dev/null)
read -r pid ppid comm <<<"$out"
case $comm in
    python*) passed "the command ran in a child (pid $pid, its parent $ppid: $comm)" ;;
    *) failed "the command ran in a child" "its parent is ${comm:-nothing} (${ppid:-?}), not Python" \
              "fork first: exec replaces the process that calls it, so exec in the child (pid 0)" ;;
esac
finish_level
