#!/usr/bin/env bash
# From `docker run --gpus all` on a laptop to `sbatch` + `srun hpcshim exec
# --gpu` across two nodes: the same image, its GPUs injected by minict on
# your machine, by hpcshim on one node, then on every rank of a Slurm job.
# Each step checks what it shows ("check: ..."). Read README.md alongside.
# Run as root: sudo ./walkthrough.sh. Set EXPLAIN=0 to hide the --explain narration.
#
# The whole lesson runs in a network and mount namespace of its own (the
# script starts itself again under `unshare --net --mount`): the cluster's
# bridge (mct-cluster, 10.77.0.0/24) and its nodes live and die in there,
# so the lesson can run beside another cluster (or the test suite's).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lesson.sh"
require_root
for tool in slurmctld slurmd srun sbatch munged mungekey ch-run umoci unshare nsenter; do
    command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/setup.sh" >&2; exit 1; }
done
# hpcshim sits beside minict (HPCSHIM may name it), else on PATH; both must be on
# PATH for what hpcshim and Slurm's tasks run (hpcshim runs `minict`, srun runs `hpcshim`).
HPCSHIM=${HPCSHIM:-$(dirname "$MINICT")/hpcshim}
[ -x "$HPCSHIM" ] || HPCSHIM=$(command -v hpcshim) || { echo "hpcshim not found: run scripts/setup.sh" >&2; exit 1; }
export PATH="$(dirname "$HPCSHIM"):$(dirname "$MINICT"):$PATH"
for name in NVIDIA_VISIBLE_DEVICES CUDA_VISIBLE_DEVICES SLURM_JOB_ID SLURM_STEP_GPUS SLURM_JOB_GPUS \
            GPU_DEVICE_ORDINAL HPCSHIM_HOST_ROOT; do
    unset "$name"          # no GPU choice from the shell that started the lesson
done

fatal() {  # a step the rest depends on failed: say so, and stop (the traps tidy up)
    echo "check: $*: FAILED (the walk-through cannot go on)"
    exit 1
}

processes_in_netns() {  # processes_in_netns INODE-LINK: pids whose network namespace it is
    local dir
    for dir in /proc/[0-9]*; do
        [ "$(readlink "$dir/ns/net" 2>/dev/null)" = "$1" ] && echo "${dir#/proc/}"
    done
}

alive() {  # alive PID: running (a zombie, ended and waiting to be reaped, is not)
    local state
    state=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2)
    [ -n "$state" ] && [ "$state" != Z ]
}

sorted_lines() {  # stdin's lines, sorted, joined with " | "
    sort | sed 's/ *$//' | paste -sd'|' | sed 's/|/ | /g'
}

# ---- steps 1-6: in the lesson's own namespaces --------------------------------------------------

inside() {
    cluster_up=0       # (not local: the EXIT trap reads it)
    # In here: only a loopback interface, and mounts of our own (private: none leaks out).
    ip link set lo up
    readlink /proc/self/ns/net > "$work/netns"
    export HPCSHIM_CACHE_DIR=$work/hpcshim-cache   # hpcshim's cache: the lesson's own
    export MINICT_CLUSTER_DIR=$work/cluster        # cluster.sh's default: /run/minict-cluster
    tidy_inside() {
        if [ "$cluster_up" = 1 ]; then
            (cd "$repo" && scripts/cluster.sh down) >/dev/null 2>&1
        fi
    }
    trap tidy_inside EXIT
    trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
    cd "$work" || exit 1     # Slurm's jobs start in the directory sbatch ran in
    # A job that cannot start waits for resources for ever: give each srun and sbatch
    # two minutes, so that a broken cluster fails the lesson instead of hanging it.
    srun() { timeout --foreground 120 env srun "$@"; }
    sbatch() { timeout --foreground 120 env sbatch "$@"; }

    step "1. On a laptop: minict run --gpus all, as docker run --gpus all"
    ensure_busybox_image
    # A laptop with two GPUs, as hpcshim's tests build one (tests/hpcshim/drivertree.py):
    # real device nodes (mknod, major 195), /proc/driver/nvidia, driver libraries
    # with the driver's sonames, an ld.so.cache made by ldconfig, nvidia-smi.
    (cd "$repo" && .venv/bin/python - "$work" <<'EOF'
import sys
from pathlib import Path
from tests.hpcshim.drivertree import LibraryStore, build_driver_tree
work = Path(sys.argv[1])
gpus = (("0000:01:00.0", 0, "GPU-6c0a5e1d-0b1e-4c3a-9f1a-1a7f0b0c0000", "NVIDIA RTX A1000 Laptop GPU"),
        ("0000:02:00.0", 1, "GPU-6c0a5e1d-0b1e-4c3a-9f1a-1a7f0b0c0001", "NVIDIA RTX A1000 Laptop GPU"))
build_driver_tree(work / "laptop", LibraryStore(work / "libraries"), gpus)
EOF
    ) || fatal "the laptop's fake driver tree"
    export HPCSHIM_HOST_ROOT=$work/laptop
    echo "the laptop's driver, as GPU discovery reads it (HPCSHIM_HOST_ROOT=$HPCSHIM_HOST_ROOT; a real machine: /):"
    ls -l "$HPCSHIM_HOST_ROOT/dev" | grep nvidia
    echo "\$ minict run --rm --network none --gpus all busybox sh -c 'ls /dev | grep nvidia; echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES; nvidia-smi -L'"
    "$MINICT" run --rm --network none --gpus all busybox \
        sh -c 'ls /dev | grep nvidia; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L' ||
        fatal "minict run --gpus all"
    check "--gpus all: the container's /dev holds both GPUs' nodes and the driver's" \
          "nvidia-modeset nvidia-uvm nvidia-uvm-tools nvidia0 nvidia1 nvidiactl" \
          "$("$MINICT" run --rm --network none --gpus all busybox ls /dev | grep nvidia | sort | tr '\n' ' ' | sed 's/ $//')"
    check "... CUDA_VISIBLE_DEVICES names both" "0,1" \
          "$("$MINICT" run --rm --network none --gpus all busybox sh -c 'echo $CUDA_VISIBLE_DEVICES')"
    check "... and libcuda.so.1 is there, bound from the host's driver" "/.hpcshim/lib/libcuda.so.1" \
          "$("$MINICT" run --rm --network none --gpus all busybox sh -c 'ls /.hpcshim/lib/libcuda.so.1')"
    echo "\$ minict run --rm --network none --gpus device=1 busybox sh -c 'ls /dev | grep \"^nvidia[0-9]\"; echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES'"
    one=$("$MINICT" run --rm --network none --gpus device=1 busybox \
          sh -c 'ls /dev | grep "^nvidia[0-9]"; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES')
    echo "$one"
    check "--gpus device=1: only /dev/nvidia1, and inside it is GPU 0" "nvidia1 CUDA_VISIBLE_DEVICES=0" \
          "$(echo $one)"
    check "without --gpus: no GPU node at all" "0" \
          "$("$MINICT" run --rm --network none busybox sh -c 'ls /dev | grep -c nvidia')"
    echo "\$ minict --explain run --rm --network none --gpus device=1 busybox true    # (a few of its lines)"
    if [ "${EXPLAIN:-1}" = 1 ]; then     # the container's directory in the store, shortened
        "$MINICT" --explain run --rm --network none --gpus device=1 busybox true 2>&1 >/dev/null |
            grep -E 'GPU plan|device node|driver libraries|makedev\(195, 1\)' |
            sed 's|"/[^"]*/containers/[0-9a-f]*/merged/|".../merged/|g' | cut -c1-220
    fi

    step "2. One node of a cluster: hpcshim exec --gpu, in front of the site's runtime"
    echo "\$ hpcshim doctor          (less its list of what it skipped)"
    "$HPCSHIM" doctor | awk '/^Skipped/ {skip = 1} /^Runtimes on PATH/ {skip = 0} !skip'
    check "doctor found both GPUs" "2" "$("$HPCSHIM" doctor | grep -c '^  GPU [0-9]:')"
    echo "\$ hpcshim exec --gpu --runtime minict --dry-run minict:busybox true"
    "$HPCSHIM" exec --gpu --runtime minict --dry-run minict:busybox true 2>&1
    check "for minict, hpcshim hands over a GPU plan (on fd 3)" "--gpu-plan /dev/fd/3" \
          "$("$HPCSHIM" exec --gpu --runtime minict --dry-run minict:busybox true 2>/dev/null | grep -o -- '--gpu-plan /dev/fd/3')"
    echo "\$ hpcshim exec --gpu --runtime minict minict:busybox sh -c 'ls /dev | grep \"^nvidia[0-9]\"; echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES'"
    said=$("$HPCSHIM" exec --gpu --runtime minict minict:busybox \
           sh -c 'ls /dev | grep "^nvidia[0-9]"; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES')
    echo "$said"
    check "the same as --gpus all: both GPUs" "nvidia0 nvidia1 CUDA_VISIBLE_DEVICES=0,1" "$(echo $said)"
    echo "\$ CUDA_VISIBLE_DEVICES=1 hpcshim exec --gpu --runtime minict minict:busybox sh -c '...'   # as Slurm sets it"
    said=$(CUDA_VISIBLE_DEVICES=1 "$HPCSHIM" exec --gpu --runtime minict minict:busybox \
           sh -c 'ls /dev | grep "^nvidia[0-9]"; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES')
    echo "$said"
    check "hpcshim follows the job's CUDA_VISIBLE_DEVICES: GPU 1 only, 0 inside" \
          "nvidia1 CUDA_VISIBLE_DEVICES=0" "$(echo $said)"
    echo "\$ hpcshim exec --gpu --runtime ch-run minict:busybox true    # ch-run runs a directory: unpacked once"
    "$HPCSHIM" exec --gpu --runtime ch-run minict:busybox true || fatal "hpcshim exec --runtime ch-run"
    img=$(echo "$HPCSHIM_CACHE_DIR"/images/*)
    check "the image, unpacked once into hpcshim's cache" "yes" \
          "$([ -x "$img/bin/busybox" ] && echo yes || echo no)"
    echo "ch-run's image directory (from now on: \$img): $img"
    echo "\$ hpcshim exec --gpu --runtime ch-run --dry-run \$img true"
    "$HPCSHIM" exec --gpu --runtime ch-run --dry-run "$img" true 2>&1 |
        sed "s|$img|\$img|g; s|$work|\$work|g; /^env /s| --|\n    --|g" | grep -vE 'firmware|icd.d|egl_vendor|persistenced'
    echo "    (and binds of the firmware, the ICD files and nvidia-persistenced's socket)"
    check "ch-run is told the GPUs by --set-env" "--set-env=CUDA_VISIBLE_DEVICES=0,1" \
          "$("$HPCSHIM" exec --gpu --runtime ch-run --dry-run "$img" true 2>/dev/null | grep -o -- '--set-env=CUDA_VISIBLE_DEVICES=[0-9,]*')"
    echo "\$ hpcshim exec --gpu --runtime ch-run \$img sh -c 'echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES; nvidia-smi -L; ls /dev | grep -c nvidia'"
    said=$("$HPCSHIM" exec --gpu --runtime ch-run "$img" \
           sh -c 'echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; ls /dev | grep -c nvidia')
    echo "$said"
    check "in ch-run's container: CUDA_VISIBLE_DEVICES and the driver's nvidia-smi" \
          "CUDA_VISIBLE_DEVICES=0,1 2" \
          "$(echo "$said" | head -1) $(echo "$said" | grep -c '^GPU [0-9]: ')"
    check "... and the host's own /dev (ch-run makes none): its nvidia nodes, as many as the host's" \
          "$(ls /dev | grep -c nvidia)" "$(echo "$said" | tail -1)"

    step "3. A cluster of two nodes: scripts/cluster.sh up 2, then srun"
    unset HPCSHIM_HOST_ROOT      # the cluster says where its GPUs are
    echo "\$ export MINICT_CLUSTER_DIR=$MINICT_CLUSTER_DIR"
    echo "\$ eval \"\$(scripts/cluster.sh up 2)\""
    cluster_up=1       # from now on, whatever happens, the EXIT trap brings it down
    exports=$(cd "$repo" && scripts/cluster.sh up 2) || fatal "scripts/cluster.sh up 2"
    echo "$exports"
    eval "$exports"
    cp "$MINICT_CLUSTER_DIR/pids.json" "$work/pids.json"     # for step 6
    check "cluster.sh up printed SLURM_CONF, HPCSHIM_HOST_ROOT and MINICT_CLUSTER_DIR" \
          "$MINICT_CLUSTER_DIR/slurm.conf $MINICT_CLUSTER_DIR/gpu-host" "$SLURM_CONF $HPCSHIM_HOST_ROOT"
    echo "\$ sinfo"
    sinfo
    check "two nodes, idle" "node1 idle|node2 idle" "$(sinfo -h -N -p cluster -o '%N %T' | sort | paste -sd'|')"
    echo "\$ srun -N2 hostname"
    srun -N2 hostname
    check "srun ran one task on each node" "node1 node2" "$(srun -N2 hostname | sort | paste -sd' ')"
    echo "\$ srun -N2 sh -c '\$HPCSHIM_HOST_ROOT/usr/bin/nvidia-smi -L | sed \"s/^/\$(hostname): /\"'"
    gpus=$(srun -N2 sh -c '$HPCSHIM_HOST_ROOT/usr/bin/nvidia-smi -L | sed "s/^/$(hostname): /"' | sort)
    echo "$gpus"
    check "one path, HPCSHIM_HOST_ROOT, and each node sees its own 4 GPUs (UUIDs per node)" \
          "4 4" "$(echo "$gpus" | grep -c '^node1: .*GPU-00000001-') $(echo "$gpus" | grep -c '^node2: .*GPU-00000002-')"

    step "4. srun across both nodes: each rank one GPU of its own node"
    probe='echo "rank $SLURM_PROCID $(hostname) local $SLURM_LOCALID CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES $(nvidia-smi -L | grep "^GPU $CUDA_VISIBLE_DEVICES:" | sed "s/.*UUID: //; s/)//")"'
    echo "what Slurm gives each task, before hpcshim:"
    echo "\$ srun -N2 --ntasks-per-node=2 --gres=gpu:2 sh -c 'echo rank \$SLURM_PROCID \$(hostname) local \$SLURM_LOCALID CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES'"
    given=$(srun -N2 --ntasks-per-node=2 --gres=gpu:2 \
            sh -c 'echo rank $SLURM_PROCID $(hostname) local $SLURM_LOCALID CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES' | sort)
    echo "$given"
    check "--gres=gpu:2: both ranks of a node are given both of its GPUs" "4" \
          "$(echo "$given" | grep -c 'CUDA_VISIBLE_DEVICES=0,1$')"
    echo "\$ srun -N2 --ntasks-per-node=2 --gres=gpu:2 hpcshim exec --gpu --gpu-bind=local-rank --runtime ch-run \$img sh -c '$probe'"
    ranks=$(srun -N2 --ntasks-per-node=2 --gres=gpu:2 "$HPCSHIM" exec --gpu --gpu-bind=local-rank \
            --runtime ch-run "$img" sh -c "$probe" | sort)
    echo "$ranks"
    expected="rank 0 node1 local 0 CUDA_VISIBLE_DEVICES=0 GPU-00000001-1111-2222-3333-000000000000 | rank 1 node1 local 1 CUDA_VISIBLE_DEVICES=1 GPU-00000001-1111-2222-3333-000000000001 | rank 2 node2 local 0 CUDA_VISIBLE_DEVICES=0 GPU-00000002-1111-2222-3333-000000000000 | rank 3 node2 local 1 CUDA_VISIBLE_DEVICES=1 GPU-00000002-1111-2222-3333-000000000001"
    check "--gpu-bind=local-rank: each rank one GPU of its own node (the UUIDs say which node)" \
          "$expected" "$(echo "$ranks" | sorted_lines)"
    check "... two ranks on a node, two different GPUs" "node1 2|node2 2" \
          "$(echo "$ranks" | awk '{print $3, $NF}' | sort -u | awk '{n[$1]++} END {for (h in n) print h, n[h]}' | sort | paste -sd'|')"

    step "5. The same as a batch job: sbatch --wait gpu-job.sbatch"
    cat "$here/gpu-job.sbatch"
    echo "\$ sbatch --wait gpu-job.sbatch \$img       # (in $work: the job's output lands there)"
    sbatch --wait "$here/gpu-job.sbatch" "$img" > "$work/sbatch.out" 2>&1
    code=$?
    cat "$work/sbatch.out"
    check "sbatch --wait returned the job's exit code" "0" "$code"
    job=$(grep -o 'Submitted batch job [0-9]*' "$work/sbatch.out" | grep -o '[0-9]*$')
    out=$work/gpu-job-$job.out
    echo "$out:"
    cat "$out" 2>/dev/null
    check "its output file: the batch script ran on the first node" "node1" \
          "$(sed -n 's/^batch script on \([^:]*\):.*/\1/p' "$out" 2>/dev/null)"
    check "... and every rank got the same GPU as under srun in step 4" "$expected" \
          "$(grep '^rank ' "$out" 2>/dev/null | sorted_lines)"

    step "6. scripts/cluster.sh down: the cluster is gone"
    echo "\$ scripts/cluster.sh down"
    (cd "$repo" && scripts/cluster.sh down) || fatal "scripts/cluster.sh down"
    cluster_up=0
    left=""
    for pid in $(python3 -c 'import json, sys; print(*json.load(open(sys.argv[1])).values())' "$work/pids.json"); do
        alive "$pid" && left="$left $pid"
    done
    echo "the cluster's processes were (pids.json): $(cat "$work/pids.json")"
    check "none of them is left (munged, slurmctld, the slurmds, the nodes' namespaces)" "" "$left"
    check "the bridge mct-cluster is gone" "gone" \
          "$(ip link show mct-cluster >/dev/null 2>&1 && echo there || echo gone)"
    check "... and the cluster's directory" "gone" "$([ -e "$MINICT_CLUSTER_DIR" ] && echo there || echo gone)"
    exit "$failed"
}

if [ "${1:-}" = --inside ]; then
    work=$2
    inside
fi

# ---- the lesson: steps 1-6 in namespaces of its own, then what is left --------------------------

tidy() {  # whatever is left in the lesson's network namespace (after a failure), then the files
    local pid
    if [ -s "$work/netns" ]; then
        for pid in $(processes_in_netns "$(cat "$work/netns")"); do kill -KILL "$pid" 2>/dev/null; done
    fi
    rm -rf "$work"
}
# In /tmp itself, whatever TMPDIR says: a unix socket's path has at most 107
# bytes, and munge's socket and each node's fake nvidia-persistenced socket
# are a few directories down in here.
work=$(mktemp -d /tmp/hpc-cluster.XXXXXX) || exit 1
trap tidy EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
echo "(the whole lesson runs in a network and mount namespace of its own: unshare --net --mount)"
unshare --net --mount --propagation private -- "$here/walkthrough.sh" --inside "$work" || failed=1
echo
echo "(back outside the lesson's namespaces)"
check "no process is left in the lesson's network namespace: it is gone with the last of them" "" \
      "$([ -s "$work/netns" ] && processes_in_netns "$(cat "$work/netns")")"

all_checks_passed
