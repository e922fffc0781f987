"""hpcshim on the real Apptainer as an ordinary user: Apptainer's user namespace mode.

The kit's Apptainer is installed without its setuid starter, so a user's
container is an unprivileged user namespace, as on sites that allow them
(Apptainer's default since 1.1). The tests run as root and drop to `nobody`
with setpriv (tests/helpers/rootless.py), in a directory nobody owns: the
image, the fake driver tree, HOME and every cache.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.helpers.rootless import NOBODY, nobody_argv, user_namespaces_allowed
from tests.hpcshim.drivertree import DRIVER_VERSION, build_driver_tree
from tests.hpcshim.test_apptainer_real import NUL_SEPARATED, nasty_values, printed_values
from tests.hpcshim.test_images import builder

pytestmark = [pytest.mark.root]

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")


@pytest.fixture(scope="module")
def home(busybox_rootfs, library_store):
    """(base, env): nobody's directory with a busybox sandbox (img), a driver tree
    (host) and an OCI archive (demo.tar), and the environment to run hpcshim in."""
    refused = user_namespaces_allowed()
    if refused is not None:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {refused!r}")
    apptainer = find_apptainer()
    base = Path(tempfile.mkdtemp(prefix="hpcshim-apptainer-user-"))
    try:
        shutil.copytree(busybox_rootfs, base / "img", symlinks=True)
        build_driver_tree(base / "host", library_store)
        builder(busybox_rootfs).write_oci_archive(base / "demo.tar", "demo:1")
        (base / "data").mkdir()
        (base / "data" / "in.txt").write_text("from the host\n")
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(base)], check=True)
        base.chmod(0o755)
        env = {"PATH": f"{apptainer.bindir}:/usr/bin:/bin", "HOME": str(base), "USER": "nobody",
               "HPCSHIM_CACHE_DIR": str(base / "hpcshim-cache"), "APPTAINER_CACHEDIR": str(base / "acache")}
        yield base, env
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(env, *args, timeout=120):
    return subprocess.run(nobody_argv(env, HPCSHIM, *args), capture_output=True, text=True, timeout=timeout)


def test_exec_as_a_user_maps_only_that_user(home):
    base, env = home
    script = "id -u; cat /proc/self/uid_map; cat /data/in.txt; touch /data/x || echo ro-refused; exit 9"
    result = as_nobody(env, "exec", "--runtime", "apptainer", "-B", f"{base}/data:/data:ro", base / "img",
                       "sh", "-c", script)
    assert result.returncode == 9, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(NOBODY) and lines[1].split() == [str(NOBODY), str(NOBODY), "1"]
    assert lines[2:] == ["from the host", "ro-refused"]


def test_cleanenv_values_arrive_byte_for_byte_as_a_user(home):
    base, env = home
    kept = nasty_values()
    script = NUL_SEPARATED.replace('"$@"', " ".join(f'"${n}"' for n in sorted(kept)))
    result = as_nobody(dict(env, **kept), "exec", "--cleanenv", "--runtime", "apptainer", base / "img",
                       "sh", "-c", script)
    assert printed_values(result) == [kept[n] for n in sorted(kept)]


def test_gpu_injection_as_a_user(home):
    base, env = home
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(base / "host"), CUDA_VISIBLE_DEVICES="2")
    script = ("head -c 0 /.singularity.d/libs/libcuda.so.1 && echo libcuda; echo CVD=$CUDA_VISIBLE_DEVICES; "
              "nvidia-smi -L | wc -l; ls /lib/firmware/nvidia/")
    result = as_nobody(gpu_env, "exec", "--gpu", "--contain", "--runtime", "apptainer", base / "img", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["libcuda", "CVD=0", "4", DRIVER_VERSION]


def test_an_archive_converted_and_run_as_a_user(home):
    base, env = home
    result = as_nobody(env, "run", "--runtime", "apptainer", base / "demo.tar")
    assert (result.returncode, result.stdout) == (0, "hello from layer 2\n"), result.stderr
    # converted by nobody's Apptainer into nobody's cache: a SIF under oci-tmp/
    sifs = [p for p in (base / "acache" / "cache" / "oci-tmp").rglob("*") if p.is_file()]
    assert sifs and all(p.stat().st_uid == NOBODY for p in sifs)


def test_a_real_dev_node_under_contain_as_a_user(home):
    base, env = home
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse here")
    result = as_nobody(env, "exec", "--contain", "--runtime", "apptainer", "-B", "/dev/fuse", base / "img",
                       "sh", "-c", "exec 3<>/dev/fuse && echo opened")
    assert (result.returncode, result.stdout) == (0, "opened\n"), result.stderr
