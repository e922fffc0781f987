#!/usr/bin/env bash
# What `--nv` / `hpcshim exec --gpu` really does, on a fake NVIDIA driver
# tree built from the real formats (no GPU needed): the device nodes, the
# libraries found through ld.so.cache (and why the ELF class matters), the
# binaries, firmware and sockets; which GPUs a job gets (CUDA_VISIBLE_DEVICES,
# Slurm); what each runtime is handed (--dry-run, -v, doctor); and what
# Apptainer's own --nv list leaves out. Each step checks what it shows
# ("check: ..."). Read README.md alongside. Run as root: sudo ./walkthrough.sh
# The driver tree lives in a temp dir (HPCSHIM_HOST_ROOT points hpcshim at
# it), as does hpcshim's cache; both are removed at the end.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lesson.sh"
require_root
for tool in gcc ldconfig od; do
    command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/setup.sh" >&2; exit 1; }
done
# hpcshim sits beside minict (HPCSHIM may name it); both go on PATH: hpcshim runs `minict`.
HPCSHIM=${HPCSHIM:-$(dirname "$MINICT")/hpcshim}
[ -x "$HPCSHIM" ] || HPCSHIM=$(command -v hpcshim) || { echo "hpcshim not found: run scripts/setup.sh" >&2; exit 1; }
export PATH="$(dirname "$HPCSHIM"):$(dirname "$MINICT"):$PATH"
for name in NVIDIA_VISIBLE_DEVICES CUDA_VISIBLE_DEVICES SLURM_JOB_ID SLURM_STEP_GPUS SLURM_JOB_GPUS \
            GPU_DEVICE_ORDINAL HPCSHIM_HOST_ROOT; do
    unset "$name"          # no GPU choice from the shell that started the lesson
done

# In /tmp itself, whatever TMPDIR says: a unix socket's path has at most 107
# bytes, and the tree holds nvidia-persistenced's.
work=$(mktemp -d /tmp/gpu-injection.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
echo "the lesson's files, removed at its end: $work"
export HPCSHIM_CACHE_DIR=$work/cache
ensure_busybox_image

words() {  # stdin's lines, sorted, on one line
    sort | tr '\n' ' ' | sed 's/ $//'
}
elf_class() {  # byte 4 of an ELF header (EI_CLASS): 01 = 32-bit, 02 = 64-bit
    od -An -tx1 -j4 -N1 "$1" | tr -d ' '
}
in_container() {  # in_container [VAR=VALUE...] -- SHELL-COMMAND: through hpcshim, with minict
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    env "${vars[@]}" "$HPCSHIM" exec --gpu --runtime minict minict:busybox sh -c "$1"
}

step "1. A node with the NVIDIA driver: device nodes and /proc/driver/nvidia"
# Four GPUs, as hpcshim's tests build them (tests/hpcshim/drivertree.py): real
# nodes (mknod), the driver's /proc text, libraries compiled by gcc with the
# driver's sonames (and 32-bit copies), an ld.so.cache written by ldconfig,
# firmware files, a real unix socket, and nvidia-smi (a script: the one stand-in).
(cd "$repo" && .venv/bin/python - "$work" <<'EOF'
import sys
from pathlib import Path
from tests.hpcshim.drivertree import LibraryStore, build_driver_tree
work = Path(sys.argv[1])
build_driver_tree(work / "host", LibraryStore(work / "libraries"))
EOF
) || { echo "check: the fake driver tree: FAILED (the walk-through cannot go on)"; exit 1; }
export HPCSHIM_HOST_ROOT=$work/host
host=$HPCSHIM_HOST_ROOT
echo "the driver tree (HPCSHIM_HOST_ROOT=\$host; a real node: /):"
ls -l "$host/dev" | grep nvidia
check "one node per GPU, character major 195 (the nvidia module's)" "195 195 195 195" \
      "$(stat -c '%t' "$host"/dev/nvidia[0-9] | while read -r hex; do echo $((16#$hex)); done | words)"
check "nvidiactl is 195:255, the control node every CUDA program opens" "195:255" \
      "$(stat -c '%t:%T' "$host/dev/nvidiactl" | awk -F: '{print (("0x"$1)+0)":"(("0x"$2)+0)}')"
check "nvidia-uvm has another major (given when the module loads)" "235" \
      "$((16#$(stat -c '%t' "$host/dev/nvidia-uvm")))"
cat "$host/proc/driver/nvidia/version"
echo "\$ grep -E 'Bus Location|Device Minor' \$host/proc/driver/nvidia/gpus/*/information"
grep -E 'Bus Location|Device Minor' "$host"/proc/driver/nvidia/gpus/*/information | sed "s|$host|\$host|"
check "PCI order is not minor order: the GPU at 0000:86:00.0 is /dev/nvidia3" "3" \
      "$(awk '/Device Minor/ {print $3}' "$host/proc/driver/nvidia/gpus/0000:86:00.0/information")"

step "2. hpcshim doctor: what this node has, and what would be injected"
"$HPCSHIM" doctor | sed "s|$host|\$host|g" | tee "$work/doctor.txt"
check "four GPUs, numbered in PCI bus order (nvidia-smi's)" "4" "$(grep -c '^  GPU [0-9]:' "$work/doctor.txt")"
check "GPU 2 is /dev/nvidia3" "/dev/nvidia3" "$(grep '^  GPU 2:' "$work/doctor.txt" | grep -o '/dev/nvidia[0-9]')"
check "eight device nodes: four GPUs, ctl, modeset, uvm, uvm-tools" "8" \
      "$(grep -o '^Device nodes ([0-9]*)' "$work/doctor.txt" | tr -dc 0-9)"
check "firmware, ICD files and the persistenced socket are bound too" "firmware firmware icd icd socket" \
      "$(grep -o '\[\(firmware\|icd\|socket\)' "$work/doctor.txt" | tr -d '[' | words)"

step "3. Libraries: found through ld.so.cache, kept only in the right ELF class"
echo "\$ ldconfig -p -C \$host/etc/ld.so.cache | grep -E 'libcuda|libnvidia-ml'"
ldconfig -p -C "$host/etc/ld.so.cache" | grep -E 'libcuda|libnvidia-ml'
check "the cache lists libcuda.so.1 twice: one tagged x86-64, one plain ELF" "2" \
      "$(ldconfig -p -C "$host/etc/ld.so.cache" | grep -c 'libcuda\.so\.1 ')"
for dir in x86_64-linux-gnu i386-linux-gnu; do
    echo "\$ od -An -tx1 -j4 -N1 \$host/usr/lib/$dir/libcuda.so.1    # EI_CLASS: $(elf_class "$host/usr/lib/$dir/libcuda.so.1")"
done
check "byte 4 of the ELF header: 02 (64-bit) and 01 (32-bit)" "02 01" \
      "$(elf_class "$host/usr/lib/x86_64-linux-gnu/libcuda.so.1") $(elf_class "$host/usr/lib/i386-linux-gnu/libcuda.so.1")"
check "hpcshim binds the 64-bit libcuda (a 64-bit program cannot load the other)" \
      "$host/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14" \
      "$(sed -n "s|^  libcuda.so.1 *<- ||p" "$work/doctor.txt" | sed "s|\\\$host|$host|")"
check "and says why it left the 32-bit copies out" "2 32-bit libraries" \
      "$(grep -o '2 32-bit libraries' "$work/doctor.txt")"
check "--compat32 adds them, in a directory of their own" "/.hpcshim/lib32" \
      "$("$HPCSHIM" doctor --compat32 | grep -o '^32-bit libraries (2) -> /.hpcshim/lib32' | grep -o '/.hpcshim/lib32')"
check "a library in no name list, found because it ends in the driver version" \
      "ends in the driver version 550.54.14 (directory scan)" \
      "$(grep -A1 '^  libnvidia-futurething' "$work/doctor.txt" | tail -1 | sed 's/^ *//')"
check "and a library of the same directory that is not the driver's is not taken" "0" \
      "$(grep -c libunrelated "$work/doctor.txt")"

step "4. Inside the container (hpcshim exec --gpu, with minict)"
probe='ls /dev | grep nvidia | tr "\n" " "; echo
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
ls /.hpcshim/lib | tr "\n" " "; echo
echo "libcuda.so.1 class: $(od -An -tx1 -j4 -N1 /.hpcshim/lib/libcuda.so.1)"
nvidia-smi -L | head -1
ls /lib/firmware/nvidia/*/ | tr "\n" " "; echo
test -S /run/nvidia-persistenced/socket && echo "persistenced socket: a socket"'
echo "\$ hpcshim exec --gpu --runtime minict minict:busybox sh -c '...'"
in_container -- "$probe" | tee "$work/inside.txt"
check "device nodes: the GPUs' and the driver's" \
      "nvidia-modeset nvidia-uvm nvidia-uvm-tools nvidia0 nvidia1 nvidia2 nvidia3 nvidiactl" \
      "$(sed -n 1p "$work/inside.txt" | tr ' ' '\n' | grep . | words)"
check "libraries under their sonames, first on LD_LIBRARY_PATH" "LD_LIBRARY_PATH=/.hpcshim/lib" \
      "$(grep -o 'LD_LIBRARY_PATH=[^ ]*' "$work/inside.txt")"
check "libcuda.so.1 in there is the 64-bit one" "02" "$(sed -n 's/^libcuda.so.1 class: *//p' "$work/inside.txt")"
check "the driver's nvidia-smi runs" "GPU 0: Tesla V100-PCIE-16GB (UUID: GPU-8a41a3a5-2a7b-5d6a-7d8a-0f2c1c5e9a3b)" \
      "$(grep '^GPU 0' "$work/inside.txt")"
check "the GSP firmware, at the path the driver loads it from" "gsp_ga10x.bin gsp_tu10x.bin" \
      "$(grep gsp "$work/inside.txt" | sed 's/ $//')"
check "nvidia-persistenced's socket" "persistenced socket: a socket" "$(grep persistenced "$work/inside.txt")"

step "5. Which GPUs: the job's variables, read as the job's launcher meant them"
gpu_nodes='echo "$(ls /dev | grep "^nvidia[0-9]" | tr "\n" " ")CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"'
echo "\$ CUDA_VISIBLE_DEVICES=1 hpcshim exec --gpu ... sh -c 'ls /dev; echo \$CUDA_VISIBLE_DEVICES'"
said=$(in_container CUDA_VISIBLE_DEVICES=1 -- "$gpu_nodes"); echo "$said"
check "CUDA_VISIBLE_DEVICES=1 (PCI order): only nvidia1, GPU 0 inside" "nvidia1 CUDA_VISIBLE_DEVICES=0" "$said"
echo "\$ SLURM_STEP_GPUS=2,3 hpcshim exec --gpu ..."
said=$(in_container SLURM_STEP_GPUS=2,3 -- "$gpu_nodes"); echo "$said"
check "SLURM_STEP_GPUS=2,3 (Slurm's gres index, by /dev number): nvidia2 and nvidia3, renumbered in PCI order" \
      "nvidia2 nvidia3 CUDA_VISIBLE_DEVICES=1,0" "$said"
check "doctor says how it read them" "SLURM_STEP_GPUS='2,3' -> GPU 3, GPU 2" \
      "$(SLURM_STEP_GPUS=2,3 "$HPCSHIM" doctor | sed -n 's/^  GPUs: //p')"
echo "\$ NVIDIA_VISIBLE_DEVICES=GPU-e953 hpcshim exec --gpu ...    # a UUID prefix, as nvidia-docker takes"
said=$(in_container NVIDIA_VISIBLE_DEVICES=GPU-e953 -- "$gpu_nodes"); echo "$said"
check "NVIDIA_VISIBLE_DEVICES=GPU-e953 (a UUID): nvidia3" "nvidia3 CUDA_VISIBLE_DEVICES=0" "$said"
echo "\$ CUDA_VISIBLE_DEVICES=7 hpcshim exec --gpu ...    # this node has no 8th GPU"
CUDA_VISIBLE_DEVICES=7 "$HPCSHIM" exec --gpu --runtime minict minict:busybox true > "$work/error.txt" 2>&1
status=$?
cat "$work/error.txt"
check "a value that names no GPU is an error, in one line, and nothing runs" "1 1" \
      "$(wc -l < "$work/error.txt") $([ "$status" != 0 ] && echo 1)"

step "6. What each runtime is handed: --dry-run prints it, -v says what was injected and why"
echo "\$ hpcshim exec --gpu --runtime minict --dry-run -v minict:busybox true"
"$HPCSHIM" exec --gpu --runtime minict --dry-run -v minict:busybox true > "$work/minict.txt" 2> "$work/minict-v.txt"
cat "$work/minict.txt"; echo
sed "s|$host|\$host|g" "$work/minict-v.txt"
check "minict gets the whole plan as JSON on fd 3" "--gpu-plan /dev/fd/3" "$(grep -o -- '--gpu-plan /dev/fd/3' "$work/minict.txt")"
check "-v: minict makes the nodes in the container's own /dev" "8 device node(s) made in the container's own /dev" \
      "$(grep -o '8 device node(s) made in the container.s own /dev' "$work/minict-v.txt")"
if command -v ch-run >/dev/null; then
    echo "\$ hpcshim exec --gpu --runtime ch-run --dry-run -v minict:busybox true    (binds shortened)"
    "$HPCSHIM" exec --gpu --runtime ch-run --dry-run -v minict:busybox true > "$work/chrun.txt" 2> "$work/chrun-v.txt"
    sed "s|$host|\$host|g; s|$HPCSHIM_CACHE_DIR|\$cache|g; s| --|\n    --|g" "$work/chrun.txt" | grep -vE '^(mkdir|touch) ' | head -8
    echo "    ..."
    grep 'ch-run:' "$work/chrun-v.txt"
    check "ch-run: each library bound under its soname" \
          "--bind=$host/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14:/.hpcshim/lib/libcuda.so.1" \
          "$(grep -o -- "--bind=[^ ]*:/.hpcshim/lib/libcuda.so.1" "$work/chrun.txt")"
    check "ch-run: the GPUs and the library path by --set-env" "--set-env=CUDA_VISIBLE_DEVICES=0,1,2,3" \
          "$(grep -o -- '--set-env=CUDA_VISIBLE_DEVICES=[0-9,]*' "$work/chrun.txt")"
    check "-v: ch-run gets no device node (it shows the host's own /dev)" "1" \
          "$(grep -c 'device node(s) of the --host-root tree NOT in the container' "$work/chrun-v.txt")"
else
    echo "ch-run is not installed (scripts/setup.sh installs charliecloud-runtime): skipped ch-run's command line"
fi

# Apptainer: on PATH, else the one the tests use ($HPCSHIM_TEST_APPTAINER, or the
# build of scripts/apptainer.sh: tests/helpers/apptainer.py says which).
apptainer=$(command -v apptainer || (cd "$repo" && .venv/bin/python -c \
    'from tests.helpers.apptainer import given, built; print(given() or built() or "")' 2>/dev/null))
step "7. Apptainer: what hpcshim hands it, and what its own --nv leaves out"
if [ -z "$apptainer" ]; then
    echo "Apptainer is not installed (scripts/apptainer.sh builds one): skipped this step"
else
    nvliblist=$(dirname "$(dirname "$apptainer")")/etc/apptainer/nvliblist.conf
    [ -e "$nvliblist" ] || nvliblist=/etc/apptainer/nvliblist.conf
    echo "$("$apptainer" --version), its list: $nvliblist"
    echo "\$ hpcshim exec --gpu --runtime apptainer --dry-run minict:busybox true    (shortened)"
    PATH="$(dirname "$apptainer"):$PATH" "$HPCSHIM" exec --gpu --runtime apptainer --dry-run minict:busybox true \
        > "$work/apptainer.txt" 2>/dev/null
    sed "s|$host|\$host|g; s|$HPCSHIM_CACHE_DIR|\$cache|g; s| --|\n    --|g" "$work/apptainer.txt" |
        sed '/--containlibs=/s|,|,\n        |g' | head -6
    echo "    ..."
    check "hpcshim does not use --nv: it names the libraries itself (--containlibs)" "0 1" \
          "$(grep -c -- ' --nv ' "$work/apptainer.txt") $(grep -c -- '--containlibs=' "$work/apptainer.txt")"
    check "the GPUs travel as APPTAINERENV_ variables" "APPTAINERENV_CUDA_VISIBLE_DEVICES=0,1,2,3" \
          "$(grep -o 'APPTAINERENV_CUDA_VISIBLE_DEVICES=[0-9,]*' "$work/apptainer.txt")"
    # --nv binds the libraries whose names its nvliblist.conf lists (libcuda.so ~ libcuda.so.1).
    listed=$(grep -v '^#' "$nvliblist" | grep '\.so' | sed 's/ *$//')
    injected=$(sed -n 's/^  \(lib[^ ]*\.so[^ ]*\) *<- .*/\1/p' "$work/doctor.txt")
    missed=$(for soname in $injected; do
        found=no
        for name in $listed; do
            case "$soname" in "$name"|"$name".*) found=yes;; esac
        done
        [ $found = no ] && echo "$soname"
    done | words)
    echo "hpcshim binds $(echo $injected | wc -w) libraries; not in $nvliblist: $missed"
    check "--nv would leave out nvvm, gpucomp and the unlisted one" \
          "libnvidia-futurething.so.1 libnvidia-gpucomp.so.550.54.14 libnvidia-nvvm.so.4" "$missed"
    check "its list names libraries and binaries only: no firmware, which hpcshim binds" "0" "$(grep -c -i firmware <<<"$listed")"
fi

all_checks_passed
