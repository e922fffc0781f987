"""`minict run` starts fast because it imports little (bench/start times it).

Speed itself is not tested (no timed tests); what makes it is: the modules
a `minict run --rm IMAGE true` loads. Each module named in SLOW cost
milliseconds of every start when it was there (measured with
`python -X importtime`), and each is needed only by other commands or
other options (click: every command but `run`; tarfile, hashlib,
tempfile: load and pull; socket, termios: -t; the cgroups limit
parsers: --memory and friends).
"""

import json
import subprocess
import sys

import pytest

from tests.helpers.probe import probe_run

SLOW = {
    "click", "dataclasses", "inspect", "ast", "typing", "pyroute2", "requests", "urllib3",
    "tarfile", "hashlib", "tempfile", "shutil", "bz2", "lzma", "zlib", "socket", "termios",
    "subprocess", "datetime", "calendar",
    "minicontainer.cgroups.limits", "minicontainer.runtime.tty", "minicontainer.pull",
    "minicontainer.registry",
}

def modules_loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    code += "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out))


@pytest.mark.unit
def test_run_path_modules_import_nothing_slow():
    """Importing everything `minict run` imports (as the fast path does) pulls
    in none of the slow modules. Needs no root: nothing is started."""
    loaded = modules_loaded_by(
        "from minicontainer.entry import parse_run\n"
        "import minicontainer.runtime.lifecycle, minicontainer.spec, minicontainer.store, "
        "minicontainer.runtime.exec, minicontainer.cgroups.hierarchy")
    assert "minicontainer.runtime.lifecycle" in loaded     # the probe saw the imports
    assert sorted(SLOW & loaded) == []


@pytest.mark.unit
def test_the_cgroup_of_a_run_without_limits_imports_nothing_slow(tmp_path):
    """On a cgroup v2 host every container gets a cgroup (for `minict
    stats`), limits or not, and its OOM record is read when it ends: that
    must not pull in the limit parsers (or dataclasses). A fake v2 root
    stands in for /sys/fs/cgroup (this host's controllers are held by v1)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    loaded = modules_loaded_by(
        "from pathlib import Path\n"
        "from minicontainer.cgroups.hierarchy import create_for_container\n"
        f"cg = create_for_container('c1', None, root=Path({str(root)!r}))\n"
        "(cg.path / 'memory.events').write_text('oom_kill 0\\n')\n"
        "assert cg.oom_report() is None")
    assert (root / "minict" / "c1").is_dir()                 # the cgroup was made
    assert "minicontainer.cgroups.stats" in loaded           # and its OOM record read
    assert sorted(SLOW & loaded) == []


@pytest.mark.root
@pytest.mark.vmtier
def test_a_real_run_imports_nothing_slow(mt, tmp_path):
    """The whole of `minict run --rm busybox true`, container included (in
    the VM tier also with the cgroup every container gets on cgroup v2)."""
    report = probe_run(["run", "--rm", "busybox", "true"], mt.env, tmp_path / "probe.json")
    loaded = set(report["modules"])
    assert {"minicontainer.runtime.lifecycle", "minicontainer.store", "prctl",
            "minicontainer.runtime.syscall_filter", "seccomp"} <= loaded
    assert sorted(SLOW & loaded) == []
    # The collector is back on for the rest of a foreground run (which may
    # last hours, relaying a terminal).
    assert report["gc"] is True
