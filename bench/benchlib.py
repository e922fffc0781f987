"""What the benchmarks under bench/ share: timing a command, summing up,
and running in namespaces of their own (so that what they time never
touches the machine's network or cgroups)."""

import os
import statistics
import subprocess
import sys
import time


def timed(argv, env=None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(argv)} failed ({result.returncode}): "
                 f"{result.stderr.decode(errors='replace').strip()}")
    return elapsed


PRIVATE_MARK = "BENCH_PRIVATE_NAMESPACES"


def in_private_namespaces() -> None:
    """Re-run this script under `unshare --mount --net` (once), bring up the
    new network namespace's loopback, then remount every cgroup filesystem
    read-only in the private mount namespace (and move a hybrid host's v2
    tree out of crun's sight)."""
    if os.environ.get(PRIVATE_MARK) != "1":
        os.execvpe("unshare", ["unshare", "--mount", "--net", "--propagation", "private",
                               sys.executable, *sys.argv], dict(os.environ, **{PRIVATE_MARK: "1"}))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[2] in ("cgroup", "cgroup2")]
    for target in ["/sys/fs/cgroup", *targets]:
        if os.path.ismount(target):
            subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)
    # crun refuses to run at all on a "hybrid" host (v1 controllers plus a
    # cgroup2 at /sys/fs/cgroup/unified), even with its cgroup manager off:
    # move that cgroup2 out of its sight, to /mnt/cgroup2 on a tmpfs of this
    # namespace's own. It stays mounted (read-only), as the v2 tree is on any
    # host: minict-oci binds it for a container that has no cgroup namespace
    # (oci/mounts.py), where hidden it would have to mount a new one.
    if "/sys/fs/cgroup/unified" in targets:
        subprocess.run(["mount", "-t", "tmpfs", "none", "/mnt"], check=True)
        os.mkdir("/mnt/cgroup2")
        subprocess.run(["mount", "--move", "/sys/fs/cgroup/unified", "/mnt/cgroup2"], check=True)


def summary(name: str, times: list[float]) -> dict:
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"name": name, "median": statistics.median(times), "mean": statistics.mean(times),
            "p10": pick(0.1), "p90": pick(0.9)}
