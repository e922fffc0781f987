"""Fixtures for the runtime tests: a store with busybox images, a runner,
and snapshots of what a container could leak (mounts, processes, state).

Images are imported once per session into a shared root; each test gets
its own state dir, and tests that count leftovers use a fresh root.
"""

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
MINICT = str(VENV_BIN / "minict")

# The image config of "student": what the tests check comes from the image.
STUDENT_CHANGES = ['USER student', 'WORKDIR /home/student', 'ENV GREETING=hello-from-image',
                   'CMD ["sh"]']


# In the VM tier (scripts/vm-test.sh) every Python start reads its modules
# over the shared root under an emulated CPU: pyroute2's import alone costs
# there ~8 s, which would double the tier's time. That tier is about cgroup
# v2, and the host tier runs these same tests with the default bridge
# network, so in the VM a container gets --network none unless the test
# names a network itself.
IN_VM_TIER = os.environ.get("MINICT_VM_TIER") == "1"


def without_bridge_in_vm(args) -> list[str]:
    """args, with `--network none` after `run`/`create` in the VM tier."""
    args = [str(a) for a in args]
    if not IN_VM_TIER:
        return args
    for i, arg in enumerate(args):
        if arg in ("run", "create"):
            rest = args[i + 1:]
            if any(a in ("--network", "--net") or a.startswith(("--network=", "--net="))
                   for a in rest):
                return args
            return args[:i + 1] + ["--network", "none"] + rest
        if not arg.startswith("-"):
            break   # another command
    return args


def minict_cmd(env: dict, *args, input=None, timeout=60, check=False):
    return subprocess.run([MINICT, *without_bridge_in_vm(args)], input=input, capture_output=True,
                          text=True, env=env, timeout=timeout, check=check)


def make_env(root: Path, state: Path) -> dict:
    env = dict(os.environ)
    env.update(MINICT_ROOT=str(root), MINICT_STATE=str(state))
    env.pop("MINICT_EXPLAIN", None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def import_images(env: dict, rootfs: Path) -> None:
    minict_cmd(env, "import", "-c", 'CMD ["sh"]', rootfs, "busybox:latest", check=True)
    args = []
    for change in STUDENT_CHANGES:
        args += ["-c", change]
    minict_cmd(env, "import", *args, rootfs, "student:latest", check=True)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory, busybox_rootfs) -> Path:
    """A store root holding busybox:latest and student:latest."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = tmp_path_factory.mktemp("runtime-images") / "root"
    import_images(make_env(root, root.parent / "import-state"), busybox_rootfs)
    return root


class Minict:
    """`minict` against one root and state dir: mt("run", "--rm", ...)."""

    def __init__(self, root: Path, state: Path):
        self.root = root
        self.state = state
        self.env = make_env(root, state)

    def __call__(self, *args, input=None, timeout=60, check=False, env=None):
        return minict_cmd(dict(self.env, **(env or {})), *args, input=input, timeout=timeout,
                          check=check)

    def popen(self, *args, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([MINICT, *without_bridge_in_vm(args)], env=self.env, text=True,
                                **kw)

    def out(self, *args, **kw) -> str:
        """stdout of a run that must succeed."""
        result = self(*args, **kw)
        assert result.returncode == 0, (args, result.returncode, result.stderr)
        return result.stdout


@pytest.fixture
def mt(image_root, tmp_path) -> Minict:
    """minict with the shared image root and a state dir of this test's own."""
    return Minict(image_root, tmp_path / "state")


@pytest.fixture
def fresh_mt(tmp_path, image_root) -> Minict:
    """minict with a root of this test's own (for tests that count leftovers).

    Its store is a copy of the shared one (the store keeps only paths
    relative to its root), without the shared root's containers: copying
    a few files is much cheaper than importing the images again, which
    matters in the VM tier, where every minict start is slow."""
    m = Minict(tmp_path / "root", tmp_path / "state")
    shutil.copytree(image_root, m.root, symlinks=True,
                    ignore=lambda d, names: ["containers"] if Path(d) == image_root else [])
    return m


# ---- what a container could leave behind ------------------------------------------------------

def mount_table() -> list[str]:
    """The host's mount points (mount ids change; what is mounted where must not)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


def mounts_under(*paths) -> list[str]:
    """The host's mounts (root and mount point) at or below any of `paths` (glob
    patterns allowed): what a test made itself, apart from what other containers
    do on the host meanwhile."""
    patterns = [str(p).rstrip("/") for p in paths]
    return [entry for entry in mount_table()
            if any(fnmatch.fnmatch(entry.split()[1], p) or fnmatch.fnmatch(entry.split()[1], p + "/*")
                   for p in patterns)]


def descendants_of(pid: int) -> list[int]:
    import psutil
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def processes_of(root: Path, hostname_prefix: str | None = None) -> list[str]:
    """minict processes working on `root` (their environment names it), and
    container processes whose HOSTNAME starts with `hostname_prefix` (minict
    sets HOSTNAME in every container's environment)."""
    import psutil
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        env = proc.info.get("environ") or {}
        mine = env.get("MINICT_ROOT") == str(root)
        boxed = hostname_prefix and env.get("HOSTNAME", "").startswith(hostname_prefix)
        if (mine or boxed) and proc.info["pid"] != os.getpid():
            found.append(f"{proc.info['pid']} {' '.join(proc.info.get('cmdline') or [])}")
    return found


def tree(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def container_dirs(root: Path) -> list[Path]:
    """Every entry of ROOT/containers (dot-dirs included: they are leftovers too)."""
    path = root / "containers"
    return sorted(path.iterdir()) if path.exists() else []
