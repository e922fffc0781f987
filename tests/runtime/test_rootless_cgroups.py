"""Limits without root (cgroups/delegated.py), decided on a fake tree.

Which cgroup minict without root may use, and the one-line refusals when
there is none, are plain file reads: a temp directory holds a fake
/sys/fs/cgroup and /proc/self/cgroup. "Delegated to uid 1000" is faked the
way systemd does it, by owning the files: these tests run as root, so
os.access is replaced by an ownership check and geteuid by 1000. The real
kernel's side (a delegated cgroup, limits, removal) is the VM tier's:
test_rootless_vm.py.
"""

import os
from pathlib import Path

import pytest

from minicontainer.cgroups import delegated
from minicontainer.cgroups.hierarchy import Cgroup, container_path
from minicontainer.cgroups.limits import Limits
from minicontainer.errors import CgroupUnavailable
from tests.cgroups.fakes import MOUNTS_HYBRID, PROC_CGROUPS_HYBRID, fake_proc

USER = 1000
DELEGATED_DIR = "user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chowns files to fake a delegation")


@pytest.fixture
def as_user(monkeypatch):
    """Pretend to be uid 1000, for whom a file is writable when it owns it."""
    monkeypatch.setattr(os, "geteuid", lambda: USER)
    monkeypatch.setattr(os, "access",
                        lambda path, mode, effective_ids=False: os.stat(path).st_uid == USER)


def make_cgroup(path: Path, controllers: str, owner: int = 0, procs: str = "") -> Path:
    """A fake non-top cgroup directory with the files delegation is about."""
    path.mkdir(parents=True)
    files = {"cgroup.controllers": controllers + "\n", "cgroup.subtree_control": "",
             "cgroup.procs": procs, "cgroup.threads": "", "cgroup.type": "domain\n"}
    for name, text in files.items():
        (path / name).write_text(text)
    if owner:
        for p in [path, *(path / name for name in files if name != "cgroup.controllers")]:
            os.chown(p, owner, owner)
    return path


def tree(tmp_path: Path, own: str, controllers: str = "cpu memory pids", owner: int = USER):
    """(cgroup root, proc, the delegated cgroup): a v2 root, and the caller
    in <root>/DELEGATED_DIR + `own` (e.g. "/init")."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    cgroup = make_cgroup(root / DELEGATED_DIR, controllers, owner, procs="4242\n")
    proc = fake_proc(tmp_path)
    (proc / "self").mkdir()
    (proc / "self" / "cgroup").write_text(f"0::/{DELEGATED_DIR}{own}\n")
    return root, proc, cgroup


def refusal(flags, root, proc) -> CgroupUnavailable:
    with pytest.raises(CgroupUnavailable) as caught:
        delegated.check_flags(flags, root, proc)
    error = caught.value
    assert error.exit_code == 40 and "\n" not in error.one_line()
    return error


# ---- where minict without root may make cgroups -----------------------------------------

def test_a_delegated_cgroup_is_found(tmp_path, as_user):
    root, proc, cgroup = tree(tmp_path, "")
    assert delegated.find(root, proc).cgroup == cgroup
    assert delegated.check_flags(["memory", "pids_limit", "cpus"], root, proc) == cgroup
    assert delegated.cgroup_root(root, proc) == cgroup


def test_from_the_init_leaf_an_earlier_run_made_the_parent_is_the_delegated_cgroup(tmp_path,
                                                                                   as_user):
    root, proc, cgroup = tree(tmp_path, "/init")
    make_cgroup(cgroup / "init", "", owner=USER)
    assert delegated.find(root, proc).cgroup == cgroup


def test_a_cgroup_the_user_cannot_write_is_not_delegated(tmp_path, as_user):
    root, proc, cgroup = tree(tmp_path, "", owner=0)
    error = refusal(["memory"], root, proc)
    assert error.message.startswith("--memory needs a cgroup, and without root")
    assert f"your cgroup {cgroup} is not delegated to you (uid {USER}" in error.message
    assert "systemd-run --user --scope -p Delegate=yes" in error.hint
    assert "run minict as root" in error.hint
    assert delegated.cgroup_root(root, proc) == root


def test_one_file_systemd_would_hand_over_missing_means_not_delegated(tmp_path, as_user):
    root, proc, cgroup = tree(tmp_path, "")
    os.chown(cgroup / "cgroup.subtree_control", 0, 0)
    assert delegated.find(root, proc).cgroup is None


def test_no_cgroup_v2_at_all_is_said_so(tmp_path, as_user):
    """Our build machines: /sys/fs/cgroup is a tmpfs of v1 hierarchies."""
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    (proc / "self").mkdir()
    (proc / "self" / "cgroup").write_text("4:memory:/\n0::/\n")
    error = refusal(["pids_limit"], root, proc)
    assert error.message.startswith("--pids-limit needs a cgroup")
    assert f"there is no cgroup v2 hierarchy at {root}" in error.message
    assert "run minict as root" in error.hint


def test_a_controller_that_is_not_delegated_is_named_with_the_fix(tmp_path, as_user):
    root, proc, cgroup = tree(tmp_path, "", controllers="memory pids")
    error = refusal(["memory", "cpus"], root, proc)
    assert error.message == (f"--cpus needs the cpu controller, and the cgroup delegated to you "
                             f"({cgroup}) does not have it (its cgroup.controllers: memory pids)")
    assert "Delegate=memory pids cpu" in error.hint and "run minict as root" in error.hint
    error = refusal(["device_read_bps"], root, proc)
    assert "needs the io controller" in error.message and "Delegate=memory pids io" in error.hint


# ---- making the container's cgroup there ----------------------------------------------------

def test_no_limit_makes_no_cgroup_and_explain_says_why(tmp_path, as_user):
    root, proc, cgroup = tree(tmp_path, "")
    said = []
    assert delegated.delegated_home(None, lambda s, call=None: said.append(s), root, proc) is None
    assert "only for a limit" in said[0]
    assert sorted(p.name for p in cgroup.iterdir() if p.is_dir()) == []


def test_limits_go_under_the_delegated_cgroup_after_its_processes_moved_to_a_leaf(tmp_path,
                                                                                  as_user):
    root, proc, cgroup = tree(tmp_path, "")
    calls = []
    limits = Limits(memory=64 << 20, pids_limit=20)
    explain = lambda s, call=None: calls.append(call or s)   # noqa: E731
    home = delegated.delegated_home(limits, explain, root, proc)      # the engine: where
    assert home == cgroup
    made = Cgroup.create_at(container_path(home, "c1"), limits, home, explain, proc)  # the runtime
    assert made.path == cgroup / "minict" / "c1"
    assert (cgroup / "init" / "cgroup.procs").read_text() == "4242"     # moved first...
    assert "+memory" in (cgroup / "cgroup.subtree_control").read_text()  # ...then enabled
    assert "+pids" in (cgroup / "minict" / "cgroup.subtree_control").read_text()
    assert (made.path / "memory.max").read_text() == str(64 << 20)
    assert (made.path / "pids.max").read_text() == "20"
    writes = [c for c in calls if c and c.startswith(("mkdir", "write"))]
    assert writes.index(f"write '4242' to {cgroup}/init/cgroup.procs") < \
        writes.index(f"mkdir {cgroup}/minict")
    assert not (root / "minict").exists()     # nothing in the tree above the delegation


def test_without_a_delegation_creating_refuses_too(tmp_path, as_user):
    root, proc, _ = tree(tmp_path, "", owner=0)
    with pytest.raises(CgroupUnavailable, match="delegated to you"):
        delegated.delegated_home(Limits(pids_limit=5), lambda *a, **k: None, root, proc)
