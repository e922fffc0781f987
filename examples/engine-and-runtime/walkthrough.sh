#!/usr/bin/env bash
# The engine and the runtime: an engine turns an image into a bundle (a
# rootfs and a config.json); a runtime, driven by runc's command line,
# turns the bundle into a process. You play the engine by hand, drive
# minict-oci through create, start, state, exec, kill and delete, add hooks,
# watch it refuse configs, and then let podman be the engine.
# Each step checks what it shows ("check: ..."). Read README.md alongside.
# Run as root: sudo ./walkthrough.sh. Set EXPLAIN=0 to hide the --explain narration.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lesson.sh"
require_root
# minict-oci sits beside minict (MINICT may name it, as the tests do), else on PATH.
MINICT_OCI=${MINICT_OCI:-$(dirname "$MINICT")/minict-oci}
if [ ! -x "$MINICT_OCI" ]; then
    MINICT_OCI=$(command -v minict-oci) || { echo "minict-oci not found: run scripts/setup.sh" >&2; exit 1; }
fi

fatal() {  # a step the rest depends on failed: say so, and stop (the trap tidies up)
    echo "check: $*: FAILED (the walk-through cannot go on)"
    exit 1
}

field() {  # field NAME: one field of the JSON on stdin ("" if absent)
    python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

unexplained() {  # a filter: the --explain lines go, with EXPLAIN=0
    if [ "${EXPLAIN:-1}" = 1 ]; then cat; else grep -v '^\[explain\]'; fi
}

narration() {  # narration FILE PATTERN: the --explain lines of FILE that match PATTERN
    if [ "${EXPLAIN:-1}" = 1 ]; then
        grep -E "$2" "$1" | cut -c1-220
    fi
}

processes_naming() {  # processes_naming TEXT: pids whose command line contains TEXT
    local dir pid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        if tr '\0' ' ' 2>/dev/null < "$dir/cmdline" | grep -qF -- "$1"; then
            echo "$pid"
        fi
    done
}

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds (or time is up)
    local tries=$(($1 * 20))
    shift
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -le 0 ] && return 1
        sleep 0.05
    done
}

# ---- step 7 runs in a mount namespace of its own: the script starts itself again there -------

podman_part() {  # podman_part PODMAN-DIR: podman is the engine, minict-oci its runtime (step 7)
    local pw=$1 layer=$work/image-layer.tar image=localhost/lesson-busybox
    mkdir -p "$pw/tmp" "$pw/ns" "$pw/logged"
    pod() {  # podman with a store of the lesson's own
        podman --root "$pw/root" --runroot "$pw/run" --tmpdir "$pw/tmp" --storage-driver overlay "$@"
    }
    trap 'podman_tidy "$pw"' EXIT
    trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
    # podman import writes /var/lib/containers/cache/ whatever --root says: here
    # /var/lib is an overlay whose writes land in a tmpfs, gone with this namespace.
    mount -t tmpfs lesson-scratch "$pw/ns" && mkdir "$pw/ns/upper" "$pw/ns/work" &&
        mount -t overlay -o "lowerdir=/var/lib,upperdir=$pw/ns/upper,workdir=$pw/ns/work" \
            lesson-varlib /var/lib || fatal "a private /var/lib for podman"
    cat > "$pw/containers.conf" <<EOF
# podman's only config for this lesson (CONTAINERS_CONF)
[containers]
default_ulimits = []            # podman's default rlimits may be above this machine's hard ones

[network]
network_config_dir = "$pw/networks"

[engine]
runtime_supports_nocgroup = ["minict-oci"]   # --cgroups=disabled is allowed for this runtime
cgroup_manager = "cgroupfs"
lock_type = "file"
events_logger = "file"
events_logfile_path = "$pw/events.log"
image_copy_tmp_dir = "$pw/tmp"
EOF
    export CONTAINERS_CONF=$pw/containers.conf TMPDIR=$pw/tmp
    echo "podman's store, config and temp files are all under $pw:"
    echo "\$ podman --root $pw/root --runroot $pw/run --tmpdir $pw/tmp --storage-driver overlay ..."
    echo "\$ podman import --change 'CMD [\"sh\"]' image-layer.tar $image"
    pod import --change 'CMD ["sh"]' "$layer" "$image" >"$pw/import.log" 2>&1 ||
        { cat "$pw/import.log"; fatal "podman import"; }
    pod images "$image"

    echo
    echo "\$ podman --runtime $MINICT_OCI run --rm --cgroups=disabled --network=none $image echo hi"
    said=$(pod --runtime "$MINICT_OCI" run --rm --cgroups=disabled --network=none "$image" echo hi </dev/null)
    echo "$said"
    check "podman ran the command with minict-oci as its runtime" "hi" "$said"

    # The same runtime behind a wrapper that writes down each command line it is given.
    cat > "$pw/logged/minict-oci" <<EOF
#!/bin/sh
echo "\$(cat /proc/\$PPID/comm): \$*" >> "$pw/runtime-argv.log"   # who asked, and what
exec "$MINICT_OCI" "\$@"
EOF
    chmod 755 "$pw/logged/minict-oci"
    echo
    echo "now behind $pw/logged/minict-oci, which first writes down who ran it, and its argv:"
    cat "$pw/logged/minict-oci"
    echo "\$ podman --runtime $pw/logged/minict-oci run -d --name lesson-engine --cgroups=disabled --network=none $image sleep 600"
    cid=$(pod --runtime "$pw/logged/minict-oci" run -d --name lesson-engine --cgroups=disabled \
          --network=none "$image" sleep 600 </dev/null)
    [ -n "$cid" ] || fatal "podman run -d"
    bundle_of_podman=$(grep -o -- '--bundle [^ ]*' "$pw/runtime-argv.log" | tail -1 | cut -d' ' -f2)
    echo "the bundle podman wrote, $bundle_of_podman:"
    ls "$bundle_of_podman"
    python3 - "$bundle_of_podman/config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
print("  ociVersion:", config["ociVersion"])
print("  process.args:", config["process"]["args"])
print("  root.path:", config["root"]["path"])
print("  linux.namespaces:", [ns["type"] for ns in config["linux"]["namespaces"]])
EOF
    check "podman's config.json is the same format: process.args" "['sleep', '600']" \
          "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["process"]["args"])' \
             "$bundle_of_podman/config.json")"
    echo "\$ podman exec lesson-engine ps"
    pod --runtime "$pw/logged/minict-oci" exec lesson-engine ps </dev/null
    echo "\$ podman stop -t 1 lesson-engine; podman rm lesson-engine"
    pod --runtime "$pw/logged/minict-oci" stop -t 1 lesson-engine 2>&1 >/dev/null | cut -c1-160
    pod --runtime "$pw/logged/minict-oci" rm lesson-engine >/dev/null
    echo
    echo "what podman (and conmon, its monitor) asked of the runtime, in order (<id> is $cid):"
    sed "s/$cid/<id>/g; s|$pw|\$pw|g; s/: /: minict-oci /; s/^/  /" "$pw/runtime-argv.log"
    log=$(cat "$pw/runtime-argv.log")
    check "create --bundle DIR ... ID" "yes" \
          "$(echo "$log" | grep -q "create --bundle [^ ]* .*$cid" && echo yes || echo no)"
    check "... with --pid-file: where the engine reads the container's pid" "yes" \
          "$(echo "$log" | grep '^.*create ' | grep -q -- '--pid-file ' && echo yes || echo no)"
    check "then start, exec, kill and delete, in that order" "create start exec kill delete" \
          "$(echo "$log" | grep -oE '(^| )(create|start|exec|kill|delete) ' | tr -d ' ' \
             | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')"
    check "podman stop sent SIGTERM (15) first, then SIGKILL (9): PID 1 ignored TERM" "15 9" \
          "$(echo "$log" | sed -n "s/.*kill $cid \([0-9]*\)\$/\1/p" | tr '\n' ' ' | sed 's/ $//')"
    check "podman rm left nothing of the container in minict-oci's state (/run/minict-oci)" "gone" \
          "$([ -e "/run/minict-oci/$cid" ] && echo there || echo gone)"
    exit "$failed"
}

podman_tidy() {  # podman_tidy DIR: podman's containers and processes gone, DIR's mounts undone
    local pw=$1 pid target
    pod rm -af -t0 >/dev/null 2>&1
    # conmon and podman's exit commands (which name the store) end by themselves
    wait_for 10 test -z "$(processes_naming "$pw/")"
    for pid in $(processes_naming "$pw/"); do kill -KILL "$pid" 2>/dev/null; done
    # what is still mounted under $pw in this namespace, the latest (deepest) first
    for target in $(awk -v top="$pw/" 'index($5, top) == 1 {m[++n] = $5} END {while (n) print m[n--]}' \
                    /proc/self/mountinfo); do
        umount "$target" 2>/dev/null || umount -l "$target"
    done
    umount /var/lib 2>/dev/null
    umount "$pw/ns" 2>/dev/null
}

if [ "${1:-}" = --podman-part ]; then
    work=$2
    podman_part "$3"
fi

# ---- the lesson ---------------------------------------------------------------------------------

tidy() {  # every container in the lesson's state directory, what is left running, the files
    local id dir pid
    for id in $(ls "$state" 2>/dev/null); do
        "$MINICT_OCI" --root "$state" delete --force "$id" >/dev/null 2>&1
    done
    for dir in "$work" "$podman_dir"; do
        for pid in $(processes_naming "$dir/"); do kill -KILL "$pid" 2>/dev/null; done
        rm -rf "$dir"
    done
}
work=$(mktemp -d) || exit 1
# podman's store: in /tmp itself, whatever TMPDIR says (podman refuses a --runroot
# of more than 50 characters)
podman_dir=$(mktemp -d /tmp/minict-engine-and-runtime.XXXXXX) || { rmdir "$work"; exit 1; }
trap tidy EXIT
# Interrupted (Ctrl-C), wait for the command running (step 7: its own tidying), then tidy.
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
state=$work/state                  # minict-oci's --root for steps 1-6 (root's default: /run/minict-oci)
bundle=$work/bundle

oci() {  # minict-oci with the lesson's own state directory
    "$MINICT_OCI" --root "$state" "$@"
}
show() {  # print a minict-oci command line (without --root), then run it
    echo "\$ minict-oci $*"
    oci "$@"
}
echo "(every minict-oci below runs with --root $state, a state directory of the lesson's own)"

step "1. The engine's half, by hand: an image becomes a bundle (a rootfs + config.json)"
ensure_busybox_image
"$MINICT" save --format oci -o "$work/busybox.oci.tar" busybox || fatal "minict save"
mkdir "$work/image" && tar -xf "$work/busybox.oci.tar" -C "$work/image"
echo "the image, an OCI layout: index.json -> manifest -> config and layers (blobs by digest)"
layers=$(python3 - "$work/image" <<'EOF'
import json, os, sys
top = sys.argv[1]
blob = lambda digest: os.path.join(top, "blobs", *digest.split(":"))
manifest = json.load(open(blob(json.load(open(f"{top}/index.json"))["manifests"][0]["digest"])))
for layer in manifest["layers"]:
    print(blob(layer["digest"]))
EOF
)
mkdir -p "$bundle/rootfs"
for layer in $layers; do
    echo "unpack layer ${layer##*/}: $(tar -tf "$layer" | wc -l) entries"
    tar -xf "$layer" -C "$bundle/rootfs" || fatal "unpack a layer"
done
cp "$(echo "$layers" | head -1)" "$work/image-layer.tar"     # for podman, in step 7
check "the rootfs holds the image's files" "yes" "$([ -x "$bundle/rootfs/bin/busybox" ] && echo yes || echo no)"
show spec --bundle "$bundle"
ls "$bundle"
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
print("runc spec's defaults:", "process.args", config["process"]["args"],
      "terminal", config["process"]["terminal"], "root", config["root"])
# What this engine (you) wants instead:
config["process"]["args"] = ["sh", "-c", "touch /started; echo hello from the container; exec sleep 600"]
config["process"]["terminal"] = False   # no terminal: the output goes where create's went
config["root"]["readonly"] = False      # so that touch may write
json.dump(config, open(path, "w"), indent=2)
print("edited:              ", "process.args", config["process"]["args"],
      "terminal", config["process"]["terminal"], "root", config["root"])
EOF
check "config.json has ociVersion, process.args and root.path" "1.0.2 sh rootfs" \
      "$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(c["ociVersion"], c["process"]["args"][0], c["root"]["path"])' "$bundle/config.json")"

step "2. create: the container is made, its process waits; the command has not run"
echo "\$ minict-oci --explain create --bundle $bundle lesson >lesson.out 2>create.err"
# create's stdout and stderr become the container's: files, not this terminal.
oci --explain create --bundle "$bundle" lesson </dev/null >"$work/lesson.out" 2>"$work/create.err" ||
    { cat "$work/create.err"; fatal "minict-oci create"; }
narration "$work/create.err" 'unshare|fork\(\)|pivot_root|sethostname|PR_SET_NO_NEW_PRIVS'
show state lesson
pid=$(oci state lesson | field pid)
check "state says created" "created" "$(oci state lesson | field status)"
check "... and gives a pid" "yes" "$([ "${pid:-0}" -gt 0 ] && echo yes || echo no)"
check "the command has not run: no /started in the rootfs" "absent" \
      "$([ -e "$bundle/rootfs/started" ] && echo there || echo absent)"
ls -l "$state/lesson"
echo "process $pid is still minict-oci, blocked in the kernel in $(cat "/proc/$pid/wchan"):"
tr '\0' ' ' < "/proc/$pid/cmdline"; echo
check "the waiting process is minict-oci's init, not yet sh" "minict-oci" \
      "$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -o minict-oci | head -1)"
echo "namespaces: the container's (process $pid) and this shell's:"
differ=""
for ns in pid mnt uts ipc net user cgroup; do
    theirs=$(readlink "/proc/$pid/ns/$ns")
    ours=$(readlink "/proc/$$/ns/$ns")
    printf '  %-7s %-22s %s\n' "$ns" "$theirs" "$ours"
    [ "$theirs" != "$ours" ] && differ="$differ $ns"
done
check "its own pid, mnt, uts, ipc and net namespaces (the config lists those five)" \
      " pid mnt uts ipc net" "$differ"

step "3. start: the runtime opens exec.fifo, and the waiting process execs the command"
echo "\$ minict-oci --explain start lesson"
oci --explain start lesson 2>&1 | sed 's|'"$state"'|$state|g' | unexplained
check "state says running" "running" "$(oci state lesson | field status)"
wait_for 5 test -e "$bundle/rootfs/started"
check "the command ran: /started is in the rootfs" "there" \
      "$([ -e "$bundle/rootfs/started" ] && echo there || echo absent)"
check "exec.fifo is gone (that is how state tells running from created)" "gone" \
      "$([ -e "$state/lesson/exec.fifo" ] && echo there || echo gone)"
wait_for 5 grep -q hello "$work/lesson.out"
echo "lesson.out (the container's stdout): $(cat "$work/lesson.out")"
check "its output went where create's stdout went" "hello from the container" "$(cat "$work/lesson.out")"
show exec lesson ps </dev/null
check "inside, the command is PID 1" "sleep 600" \
      "$(oci exec lesson ps -o pid,args </dev/null | awk '$1 == 1 {print $2, $3}')"
show ps lesson
check "ps lists it by its host pid" "$pid" "$(oci ps lesson | awk 'NR == 2 {print $2}')"
show list

step "4. kill, delete: PID 1 of a PID namespace gets only the signals it handles"
show --explain kill lesson TERM 2>&1 | unexplained
sleep 0.3
check "sleep has no handler for SIGTERM: the kernel dropped it, still running" "running" \
      "$(oci state lesson | field status)"
show --explain kill lesson KILL 2>&1 | unexplained
wait_for 5 test "$(oci state lesson | field status)" = stopped
check "SIGKILL from outside the namespace always arrives: stopped" "stopped" "$(oci state lesson | field status)"
show delete lesson
show state lesson 2>&1
oci state lesson >/dev/null 2>"$work/state.err"
code=$?
check "state of a deleted container fails with exit code 30" "30" "$code"
check "... in one line" "1" "$(wc -l < "$work/state.err")"
check "its state directory is gone" "gone" "$([ -e "$state/lesson" ] && echo there || echo gone)"

step "5. Hooks: programs the runtime runs at named moments, the state JSON on their stdin"
cat > "$work/save-state.sh" <<'EOF'
#!/bin/sh
# A hook: minict-oci gives it the container's state (JSON) on stdin.
cat > "$1"
EOF
chmod 755 "$work/save-state.sh"
cat "$work/save-state.sh"
python3 - "$bundle/config.json" "$work" <<'EOF'
import json, sys
path, work = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["process"]["args"] = ["sleep", "600"]
hook = lambda moment: [{"path": f"{work}/save-state.sh",
                        "args": ["save-state.sh", f"{work}/{moment}.json"],
                        "env": ["PATH=/usr/bin:/bin"]}]
config["hooks"] = {moment: hook(moment) for moment in ("createRuntime", "poststart", "poststop")}
json.dump(config, open(path, "w"), indent=2)
print('config.json "hooks":', json.dumps(config["hooks"]["createRuntime"]), "(and poststart, poststop)")
EOF
echo "\$ minict-oci create --bundle $bundle lesson >lesson.out 2>&1"
oci create --bundle "$bundle" lesson </dev/null >"$work/lesson.out" 2>&1 ||
    { cat "$work/lesson.out"; fatal "minict-oci create, with hooks"; }
pid=$(oci state lesson | field pid)
show start lesson
show delete --force lesson
for moment in createRuntime poststart poststop; do
    echo "$moment.json: $(cat "$work/$moment.json" 2>/dev/null)"
done
check "createRuntime got the container's id" "lesson" "$(field id < "$work/createRuntime.json")"
check "... and its pid, while it was being created" "creating $pid" \
      "$(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["status"], s["pid"])' \
         "$work/createRuntime.json")"
check "poststart ran after start" "running" "$(field status < "$work/poststart.json")"
check "poststop ran after delete" "stopped" "$(field status < "$work/poststop.json")"

step "6. What minict-oci refuses: one line naming the field, its own exit code, nothing made"
mkdir "$work/refused"
refuse() {  # refuse EXPECTED-CODE 'PYTHON that edits config'
    python3 - "$bundle/config.json" "$work/refused/config.json" "$bundle/rootfs" "$2" <<'EOF'
import json, sys
source, target, rootfs, edit = sys.argv[1:]
config = json.load(open(source))
config.pop("hooks")
config["root"]["path"] = rootfs     # an absolute root.path: the same rootfs
exec(edit)
json.dump(config, open(target, "w"), indent=2)
EOF
    echo "\$ minict-oci create --bundle refused refused    # with $2"
    oci create --bundle "$work/refused" refused </dev/null >/dev/null 2>"$work/refused.err"
    code=$?
    cat "$work/refused.err"
    check "exit code $1" "$1" "$code"
    check "... one line" "1" "$(wc -l < "$work/refused.err")"
    check "... and nothing left in the state directory" "" "$(ls "$state")"
}
refuse 81 'config["process"]["apparmorProfile"] = "lesson"'
check "... naming the field" "process.apparmorProfile" \
      "$(grep -o 'process.apparmorProfile' "$work/refused.err" | head -1)"
refuse 80 'config["process"]["cwd"] = "tmp"'
check "... naming the field" "process.cwd" "$(grep -o 'process.cwd' "$work/refused.err" | head -1)"

step "7. podman as the engine, minict-oci as its runtime"
if command -v podman >/dev/null; then
    echo "(in a mount namespace of its own: unshare --mount)"
    unshare --mount --propagation private -- "$here/walkthrough.sh" --podman-part "$work" "$podman_dir" ||
        failed=1
    check "no process of podman's is left" "" "$(processes_naming "$podman_dir/")"
else
    echo "(podman is not installed: apt-get install podman, then run this again)"
fi

all_checks_passed
