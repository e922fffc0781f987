"""A real single-node Slurm (slurmctld + slurmd + munge) hands GPUs to hpcshim.

The fixture starts munged, slurmctld and slurmd from Debian's packages in a
temp dir with their own slurm.conf and gres.conf, on loopback ports that were
free a moment before. gres.conf's GPUs are the fake driver tree's
/dev/nvidiaN nodes (real char 195:N nodes made with mknod). No cgroup plugin
(this host's controllers are cgroup v1 and shared), so this is the
"no device constraint" case: Slurm numbers CUDA_VISIBLE_DEVICES with host
indices. The constrained case is covered with a devices.list in
test_discovery. Everything started here is stopped by its pid.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.hpcshim.drivertree import build_driver_tree

pytestmark = [pytest.mark.root, pytest.mark.slow]

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")
NEEDED = ("slurmctld", "slurmd", "srun", "munged", "mungekey", "ch-run")
# PCI order == minor order here, so Slurm's gres order and CUDA's agree.
GPUS = (("0000:3b:00.0", 0, "GPU-00000000-1111-2222-3333-000000000000", "Tesla T4"),
        ("0000:5e:00.0", 1, "GPU-00000000-1111-2222-3333-000000000001", "Tesla T4"),
        ("0000:86:00.0", 2, "GPU-00000000-1111-2222-3333-000000000002", "Tesla T4"),
        ("0000:af:00.0", 3, "GPU-00000000-1111-2222-3333-000000000003", "Tesla T4"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, base: Path, tree):
        self.base, self.tree = base, tree
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, SLURM_CONF=str(base / "slurm.conf"), USER="root",
                        HPCSHIM_HOST_ROOT=str(tree.root), HPCSHIM_CACHE_DIR=str(base / "cache"))
        for name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
            self.env.pop(name, None)

    def start(self, argv, log):
        self.procs.append(subprocess.Popen(argv, stdout=open(self.base / log, "w"), stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True))

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.base.glob("*.log")))

    def srun(self, *args, env=None, timeout=90):
        return subprocess.run(["srun", *map(str, args)], env=env or self.env, capture_output=True, text=True,
                              timeout=timeout)

    def wait_idle(self, timeout=40) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if out.stdout.strip() == "idle":
                return True
            time.sleep(0.5)
        return False

    def stop(self):
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run(["squeue", "-h"], env=self.env, capture_output=True, text=True)
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.5)
        for proc in reversed(self.procs):     # slurmd, slurmctld, then munged
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory, library_store):
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Slurm test needs {', '.join(missing)} (scripts/setup.sh installs them)")
    base = tmp_path_factory.mktemp("slurm")
    tree = build_driver_tree(base / "host", library_store, GPUS)
    munge = base / "munge"
    munge.mkdir(mode=0o700)
    subprocess.run(["mungekey", "-c", "-k", str(munge / "munge.key")], check=True, capture_output=True)
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    host = socket.gethostname()
    (base / "slurm.conf").write_text(f"""\
ClusterName=hpcshimtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}/sock
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
NodeName=hpcshimnode NodeHostname={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 2} Gres=gpu:4 State=UNKNOWN
PartitionName=test Nodes=hpcshimnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
    (base / "gres.conf").write_text(f"NodeName=hpcshimnode Name=gpu File={tree.root}/dev/nvidia[0-3]\n")
    cluster = Cluster(base, tree)
    cluster.start(["munged", "-F", "--force", f"--socket={munge}/sock", f"--key-file={munge}/munge.key",
                   f"--pid-file={munge}/pid", f"--log-file={base}/munged.log", f"--seed-file={munge}/seed"],
                  "munged.out.log")
    for _ in range(50):
        if (munge / "sock").exists():
            break
        time.sleep(0.1)
    cluster.start(["slurmctld", "-D", "-f", str(base / "slurm.conf")], "slurmctld.out.log")
    cluster.start(["slurmd", "-D", "-f", str(base / "slurm.conf"), "-N", "hpcshimnode"], "slurmd.out.log")
    try:
        if not cluster.wait_idle():
            pytest.skip("single-node Slurm did not come up here:\n" + cluster.logs())
        yield cluster
    finally:
        cluster.stop()
        alive = [p.pid for p in cluster.procs if p.poll() is None]
        assert not alive, f"daemons still running: {alive}"


@pytest.fixture
def image(tmp_path, busybox_rootfs):
    dest = tmp_path / "img"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    return dest


def test_srun_gres_reaches_the_container(slurm, image):
    result = slurm.srun("--gres=gpu:2", HPCSHIM, "exec", "--gpu", "--runtime", "ch-run", image,
                        "sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES JOB=$SLURM_JOB_ID; exit 6")
    assert result.returncode == 6, result.stderr + slurm.logs()
    assert "CVD=0,1 JOB=" in result.stdout and "JOB= " not in result.stdout
    doctor = slurm.srun("--gres=gpu:3", HPCSHIM, "doctor", "--json")
    plan = json.loads(doctor.stdout)
    assert [g["minor"] for g in plan["gpus"]] == [0, 1, 2]
    assert any("CUDA_VISIBLE_DEVICES='0,1,2'" in f["reason"] for f in plan["findings"])


def test_second_job_gets_the_next_gpus(slurm, image, tmp_path):
    holder = subprocess.Popen(["srun", "--gres=gpu:1", "sleep", "60"], env=slurm.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = subprocess.run(["squeue", "-h", "-t", "R"], env=slurm.env, capture_output=True, text=True)
            if running.stdout.strip():
                break
            time.sleep(0.3)
        # Slurm now hands out GRES 1 and 2; CUDA_VISIBLE_DEVICES=1,2 with host numbering.
        shared = slurm.srun("--gres=gpu:2", HPCSHIM, "exec", "--gpu", "--runtime", "ch-run", image,
                            "sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES STEP=$SLURM_STEP_GPUS")
        assert shared.returncode == 0, shared.stderr + slurm.logs()
        assert "CVD=1,2 STEP=1,2" in shared.stdout
        # An isolating runtime (the real Apptainer with --contain) sees only GPUs 1 and 2,
        # renumbered 0,1; -v names the nodes of exactly those two (the tree's nodes
        # themselves cannot be devices in a container: see backends/apptainer.py).
        env = find_apptainer().env(slurm.env, tmp_path)
        isolated = slurm.srun("--gres=gpu:2", HPCSHIM, "exec", "-v", "--gpu", "--contain", "--runtime", "apptainer",
                              image, "sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES", env=env)
        assert isolated.returncode == 0, isolated.stderr
        assert isolated.stdout.strip() == "CVD=0,1"
        nodes = next(line for line in isolated.stderr.splitlines() if "device node(s) of the --host-root" in line)
        assert nodes.endswith(": /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia-modeset, "
                              "/dev/nvidia1, /dev/nvidia2"), nodes
    finally:
        holder.terminate()
        holder.wait(timeout=30)


def rank_lines(result) -> list[str]:
    return sorted(line for line in result.stdout.splitlines() if line.startswith("R="))


@pytest.mark.parametrize("runtime", ["ch-run", "apptainer"])
@pytest.mark.parametrize("gpus, expected", [(2, ["R=0 CVD=0", "R=1 CVD=1"]),
                                            (4, ["R=0 CVD=0,1", "R=1 CVD=2,3"])])
def test_gpu_bind_local_rank_gives_each_task_its_share(slurm, image, tmp_path, runtime, gpus, expected):
    # ch-run and Apptainer without --contain share the host's /dev: CUDA counts among
    # all GPUs, so task 1 of --gres=gpu:2 sees host GPU 1 as "1" (an isolating runtime would say 0)
    env = find_apptainer().env(slurm.env, tmp_path) if runtime == "apptainer" else slurm.env
    result = slurm.srun("--ntasks=2", f"--gres=gpu:{gpus}", HPCSHIM, "exec", "--gpu", "--gpu-bind=local-rank",
                        "--runtime", runtime, image, "sh", "-c", "echo R=$SLURM_LOCALID CVD=$CUDA_VISIBLE_DEVICES",
                        env=env)
    assert result.returncode == 0, result.stderr + slurm.logs()
    assert rank_lines(result) == expected


def test_srun_gres_reaches_an_apptainer_container(slurm, image, tmp_path):
    env = find_apptainer().env(slurm.env, tmp_path)
    script = "echo CVD=$CUDA_VISIBLE_DEVICES JOB=$SLURM_JOB_ID; ls /.singularity.d/libs | wc -l; exit 6"
    result = slurm.srun("--gres=gpu:2", HPCSHIM, "exec", "--gpu", "--cleanenv", "--runtime", "apptainer", image,
                        "sh", "-c", script, env=env)
    assert result.returncode == 6, result.stderr + slurm.logs()
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CVD=0,1 JOB=") and lines[0] != "CVD=0,1 JOB=" and lines[1] == "8"


def test_gpu_bind_local_rank_refuses_an_uneven_split(slurm, image):
    result = slurm.srun("--ntasks=2", "--gres=gpu:3", HPCSHIM, "exec", "--gpu", "--gpu-bind=local-rank",
                        "--runtime", "ch-run", image, "echo", "ran")
    assert result.returncode != 0 and "ran" not in result.stdout
    refusals = [line for line in result.stderr.splitlines() if line.startswith("hpcshim:")]
    assert len(refusals) == 2 and all(line.startswith(
        "hpcshim: --gpu-bind=local-rank: 3 GPU(s) do not divide among 2 task(s) on this node") for line in refusals)
    assert "exit code 11" in result.stderr


def test_gpu_bind_local_rank_with_minict_nodes_shm_and_memlock(slurm, busybox_rootfs, tmp_path):
    """Real minict containers under srun: each rank sees only its own /dev/nvidiaN
    (numbered 0 inside), both share the host's /dev/shm, memlock is the caller's."""
    from tests.runtime.test_gpu_plan import import_gpu_images
    store = import_gpu_images(tmp_path / "images", busybox_rootfs)
    marker = Path("/dev/shm") / f"hpcshim-test-{os.getpid()}"
    marker.write_text("shared\n")
    env = dict(slurm.env, MINICT_ROOT=str(store), MINICT_STATE=str(tmp_path / "state"),
               PATH=f"{Path(sys.executable).parent}:{slurm.env['PATH']}")
    script = (f"echo R=$SLURM_LOCALID CVD=$CUDA_VISIBLE_DEVICES NODES=$(ls /dev | grep '^nvidia[0-9]' | tr '\\n' ' ')"
              f"SHM=$(cat {marker}) MEMLOCK=$(ulimit -l)")
    try:
        result = slurm.srun("--ntasks=2", "--gres=gpu:2", HPCSHIM, "exec", "--gpu", "--gpu-bind=local-rank",
                            "--runtime", "minict", "busybox", "sh", "-c", script, env=env, timeout=180)
    finally:
        marker.unlink()
    assert result.returncode == 0, result.stderr + slurm.logs()
    import resource
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft // 1024)
    assert rank_lines(result) == [f"R=0 CVD=0 NODES=nvidia0 SHM=shared MEMLOCK={limit}",
                                  f"R=1 CVD=0 NODES=nvidia1 SHM=shared MEMLOCK={limit}"]
