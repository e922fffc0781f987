#!/usr/bin/env python3
"""A multi-node Slurm cluster on one machine (scripts/cluster.sh is the front).

    scripts/cluster.sh up [N]     slurmctld and N nodes (default 2); prints the
                                  `export ...` lines that point srun/sbatch at it
    scripts/cluster.sh down       stops it, leaving nothing outside its directory
    scripts/cluster.sh status     what runs

Each node is a network, UTS and mount namespace of its own, held open by a
`sleep` started with `unshare`: its own hostname (node1, node2...), an
address on a bridge of the cluster's own (mct-cluster, 10.77.0.0/24; the
controller is 10.77.0.1), its own slurmd and spool directory, and its own
fake GPU driver tree (4 GPUs with UUIDs of its own, built as
tests/hpcshim/drivertree.py builds one), bound in its mount namespace at
one path, DIR/gpu-host: the same HPCSHIM_HOST_ROOT on every node shows each
node its own GPUs. Its TmpFS (DIR/node-tmp) is its own the same way. Slurm is Debian's (slurm-wlm) with munge, as the
single-node tests run it; GRES hands out the GPUs.

A node's login environment is the site's, as on a real cluster, where the
compute nodes' /etc/profile.d puts the site's tools on PATH: DIR/profile.d
(the host's scripts, plus minict-cluster.sh: the venv's bin, hpcshim's
HPCSHIM_HOST_ROOT and cache) is bound over /etc/profile.d in each node's
mount namespace. A job sent with `sbatch --export=NONE` gets exactly that
(Slurm loads the user's login environment on the node: `su - USER`), and
still finds hpcshim and its node's GPUs.

Why namespaces and not containers: slurmd must see the host's /sys (its
cgroup probes) and run jobs with the host's tools and the project's venv,
as a real node's slurmd runs the site's software; only the network, the
name and the GPUs differ between nodes. Entered with nsenter, not `ip netns
exec`, which remounts /sys (slurmd then finds no cgroup filesystem).

Everything is in DIR (default /run/minict-cluster, or $MINICT_CLUSTER_DIR):
pids, configs, logs, the munge key and socket, spools, the GPU trees. The
only things outside it are the bridge and the veths (named mct-*), which
`down` removes with the namespaces (the bridge only when it is the one
`up` made, by its index in DIR/bridge: not another cluster's).
"""

import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hpcshim.drivertree import LibraryStore, build_driver_tree  # noqa: E402

DIR = Path(os.environ.get("MINICT_CLUSTER_DIR", "/run/minict-cluster"))
BRIDGE, SUBNET, CONTROLLER = "mct-cluster", "10.77.0", "10.77.0.1"
GPUS_PER_NODE = 4
NEEDED = ("slurmctld", "slurmd", "srun", "munged", "mungekey", "ip", "nsenter", "unshare")


def node_address(n: int) -> str:
    return f"{SUBNET}.{10 + n}"


def gpus_of(n: int):
    """(PCI bus id, minor, UUID, model) of node n's GPUs: UUIDs unique per node."""
    return tuple((f"0000:{0x3b + 0x23 * g:02x}:00.0", g,
                  f"GPU-{n:08d}-1111-2222-3333-{g:012d}", "Tesla T4")
                 for g in range(GPUS_PER_NODE))


def run(*argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def started(pids: dict) -> dict:
    return {name: pid for name, pid in pids.items() if alive(pid)}


def spawn(argv, log: Path, **kw) -> int:
    with open(log, "w") as out:
        return subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, **kw).pid


def slurm_conf(nodes: int, cpus: int) -> str:
    names = f"node[1-{nodes}]"
    lines = [
        "ClusterName=minict", f"SlurmctldHost={socket.gethostname()}({CONTROLLER})",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={DIR}/munge/sock",
        f"StateSaveLocation={DIR}/state", f"SlurmdSpoolDir={DIR}/%n/spool",
        f"SlurmctldPidFile={DIR}/slurmctld.pid", f"SlurmdPidFile={DIR}/%n/slurmd.pid",
        f"SlurmctldLogFile={DIR}/slurmctld.log", f"SlurmdLogFile={DIR}/%n/slurmd.log",
        "ProctrackType=proctrack/pgid", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "SchedulerParameters=batch_sched_delay=0", "MinJobAge=5",
        "SlurmdParameters=config_overrides", f"PlugStackConfig={DIR}/plugstack.conf",
        "MailProg=/bin/true", "GresTypes=gpu", "ReturnToService=2",
        # Each node's TmpFS is its own (bound at one path, as its GPUs): the
        # PMIx plugin makes its per-step directories there, which nodes
        # sharing /tmp would collide on.
        f"TmpFS={DIR}/node-tmp",
        # What the course material asks of a node (--cpus-per-task=10, --mem=50000):
        # declared, not real (SlurmdParameters=config_overrides); nothing here
        # limits memory or CPUs anyway (no cgroup plugin on a cgroup v1 host).
        f"NodeName=DEFAULT CPUs={cpus} RealMemory=64000 Gres=gpu:{GPUS_PER_NODE} State=UNKNOWN",
    ]
    lines += [f"NodeName=node{n} NodeHostname=node{n} NodeAddr={node_address(n)}"
              for n in range(1, nodes + 1)]
    for partition, default in (("cluster", "YES"), ("alpha", "NO")):   # alpha: ZIH's GPU one
        lines.append(f"PartitionName={partition} Nodes={names} Default={default} "
                     f"MaxTime=INFINITE State=UP OverSubscribe=YES")
    return "\n".join(lines) + "\n"


def up(nodes: int) -> None:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        sys.exit(f"cluster.sh: {', '.join(missing)} missing (scripts/setup.sh installs them)")
    if os.geteuid() != 0:
        sys.exit("cluster.sh: run it as root (it makes namespaces, a bridge and device nodes)")
    if (DIR / "pids.json").exists() and started(json.loads((DIR / "pids.json").read_text())):
        sys.exit(f"cluster.sh: a cluster is up already in {DIR} (scripts/cluster.sh down first)")
    if nodes < 1 or nodes > 50:
        sys.exit("cluster.sh: give between 1 and 50 nodes")
    shutil.rmtree(DIR, ignore_errors=True)
    DIR.mkdir(parents=True)
    pids: dict[str, int] = {}
    try:
        _up(nodes, pids)
    except BaseException:
        (DIR / "pids.json").write_text(json.dumps(pids))
        down(quiet=True, keep_logs=True)
        raise
    for line in (f"export SLURM_CONF={DIR}/slurm.conf", f"export HPCSHIM_HOST_ROOT={DIR}/gpu-host",
                 f"export MINICT_CLUSTER_DIR={DIR}"):
        print(line)


PROFILE = """\
# scripts/cluster.py: this cluster's site environment, for login shells on its
# nodes (sbatch --export=NONE): its tools on PATH, each node's GPUs (its own
# tree, bound at one path) and hpcshim's cache inside the cluster's directory.
export PATH="{bin}:$PATH"
export HPCSHIM_HOST_ROOT={dir}/gpu-host
export HPCSHIM_CACHE_DIR={dir}/hpcshim-cache
"""


def write_profile() -> bool:
    """DIR/profile.d: the host's /etc/profile.d (copied, so that binding it over
    /etc/profile.d hides nothing) and the cluster's own script. False without
    an /etc/profile.d to bind it over."""
    if not Path("/etc/profile.d").is_dir():
        return False
    shutil.copytree("/etc/profile.d", DIR / "profile.d", symlinks=True)
    # the venv's bin, as started (not resolved: .venv/bin/python may link to /usr/bin)
    (DIR / "profile.d" / "minict-cluster.sh").write_text(
        PROFILE.format(bin=Path(sys.executable).parent, dir=DIR))
    return True


def _up(nodes: int, pids: dict) -> None:
    store = LibraryStore(DIR / "libraries")
    profile = write_profile()
    (DIR / "gpu-host").mkdir()
    (DIR / "node-tmp").mkdir()
    (DIR / "plugstack.conf").write_text("")
    (DIR / "state").mkdir()
    munge = DIR / "munge"
    munge.mkdir(mode=0o700)
    run("mungekey", "-c", "-k", munge / "munge.key")
    pids["munged"] = spawn(["munged", "-F", "--force", f"--socket={munge}/sock",
                            f"--key-file={munge}/munge.key", f"--pid-file={munge}/pid",
                            f"--log-file={DIR}/munged.log", f"--seed-file={munge}/seed"],
                           DIR / "munged.out")
    (DIR / "pids.json").write_text(json.dumps(pids))
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    (DIR / "bridge").write_text(ifindex(BRIDGE))   # ours: `down` removes only this one
    run("ip", "addr", "add", f"{CONTROLLER}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for n in range(1, nodes + 1):
        node = DIR / f"node{n}"
        (node / "spool").mkdir(parents=True)
        (node / "tmp").mkdir(mode=0o1777)
        build_driver_tree(node / "host", store, gpus_of(n))
        pids[f"node{n}"] = holder = spawn(["unshare", "--net", "--uts", "--mount",
                                           "--propagation", "private", "sleep", "infinity"],
                                          node / "holder.out")
        (DIR / "pids.json").write_text(json.dumps(pids))
        enter = ["nsenter", f"--target={holder}", "--net", "--uts", "--mount"]
        for _ in range(100):   # until unshare has made them
            if os.readlink(f"/proc/{holder}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        run("ip", "link", "add", f"mct-n{n}", "type", "veth", "peer", "name", "eth0", "netns",
            f"/proc/{holder}/ns/net")
        run("ip", "link", "set", f"mct-n{n}", "master", BRIDGE, "up")
        run(*enter, "sh", "-c", f"hostname node{n} && ip link set lo up && "
            f"ip addr add {node_address(n)}/24 dev eth0 && ip link set eth0 up && "
            f"mount --bind {node}/host {DIR}/gpu-host && mount --bind {node}/tmp {DIR}/node-tmp"
            + (f" && mount --bind {DIR}/profile.d /etc/profile.d" if profile else ""))
    (DIR / "slurm.conf").write_text(slurm_conf(nodes, max(16, os.cpu_count() or 2)))
    (DIR / "gres.conf").write_text(f"NodeName=node[1-{nodes}] Name=gpu "
                                   f"File={DIR}/gpu-host/dev/nvidia[0-{GPUS_PER_NODE - 1}]\n")
    env = dict(os.environ, SLURM_CONF=str(DIR / "slurm.conf"))
    pids["slurmctld"] = spawn(["slurmctld", "-D", "-i", "-f", DIR / "slurm.conf"],
                              DIR / "slurmctld.out", env=env)
    for n in range(1, nodes + 1):
        pids[f"slurmd{n}"] = spawn(["nsenter", f"--target={pids[f'node{n}']}", "--net", "--uts",
                                    "--mount", "slurmd", "-D", "-N", f"node{n}", "-f",
                                    DIR / "slurm.conf"], DIR / f"node{n}" / "slurmd.out", env=env)
    (DIR / "pids.json").write_text(json.dumps(pids))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=env, capture_output=True,
                              text=True).stdout.split("\n")
        states = dict(row.split() for row in rows if row.strip())   # (a node per partition)
        if len(states) == nodes and set(states.values()) == {"idle"}:
            return
        time.sleep(0.3)
    logs = "\n".join(f"== {p}\n{p.read_text()[-800:]}" for p in sorted(DIR.rglob("*.log")))
    raise SystemExit(f"cluster.sh: the nodes did not become idle within 60 s\n{logs}")


def down(quiet: bool = False, keep_logs: bool = False) -> None:
    pids = json.loads((DIR / "pids.json").read_text()) if (DIR / "pids.json").exists() else {}
    if not pids and not quiet:
        print(f"cluster.sh: no cluster in {DIR}", file=sys.stderr)
    env = dict(os.environ, SLURM_CONF=str(DIR / "slurm.conf"))
    if "slurmctld" in started(pids):
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
    # slurmds first, then the controller, munge, and the namespace holders
    order = sorted(pids, key=lambda name: (not name.startswith("slurmd"), name == "munged",
                                           name.startswith("node")))
    for name in order:
        stop(pids[name])
    made = DIR / "bridge"
    if made.exists() and ifindex(BRIDGE) == made.read_text():
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    if keep_logs:
        (DIR / "pids.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(DIR, ignore_errors=True)


def ifindex(link: str) -> str | None:
    """The link's index in this network namespace (None: there is none):
    what tells the bridge `up` made from one of the same name made since
    by someone else."""
    shown = subprocess.run(["ip", "-o", "link", "show", "dev", link], capture_output=True,
                           text=True)   # (ip, not /sys/class/net: that is the netns /sys is of)
    return shown.stdout.split(":", 1)[0] if shown.returncode == 0 else None


def stop(pid: int, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL; our own children are reaped."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def status() -> None:
    pids = json.loads((DIR / "pids.json").read_text()) if (DIR / "pids.json").exists() else {}
    for name, pid in sorted(pids.items()):
        print(f"{name}\t{pid}\t{'running' if alive(pid) else 'gone'}")


def main(argv) -> None:
    if not argv or argv[0] not in ("up", "down", "status"):
        sys.exit("usage: scripts/cluster.sh up [N] | down | status")
    if argv[0] == "up":
        up(int(argv[1]) if len(argv) > 1 else 2)
    elif argv[0] == "down":
        down()
    else:
        status()


if __name__ == "__main__":
    main(sys.argv[1:])
