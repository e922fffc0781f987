"""hierarchy.py against fake control-file trees (the VM tier runs the real kernel)."""

import pytest

from minicontainer.cgroups import hierarchy
from minicontainer.cgroups.hierarchy import (Cgroup, find_orphans, home_for_container,
                                             prepare_subtree, remove_orphans)
from minicontainer.cgroups.limits import Limits, limits_from_cli
from minicontainer.errors import BadArgument, CgroupUnavailable
from tests.cgroups.fakes import (MOUNTS_HYBRID, PROC_CGROUPS_HYBRID, Narration, fake_proc,
                                 fake_root)

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path):
    return fake_root(tmp_path), fake_proc(tmp_path)


def test_create_enables_controllers_top_down_and_writes_limits(tree):
    root, proc = tree
    said = Narration()
    limits = limits_from_cli(memory="64m", pids_limit="20", cpus="0.5", host_cpus=2)
    cg = Cgroup.create("abc", limits, root, said, proc)
    assert cg.path == root / "minict" / "abc" and cg.path.is_dir()
    # stats controllers (cpu io memory pids) are enabled even where no limit needs them
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert (root / "minict" / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert (cg.path / "memory.max").read_text() == "67108864"
    assert (cg.path / "memory.swap.max").read_text() == "67108864"
    assert (cg.path / "pids.max").read_text() == "20"
    assert (cg.path / "cpu.max").read_text() == "50000 100000"
    # every kernel-facing step is narrated, in order, with the exact file
    assert said.lines == [
        f"Let child cgroups of {root} use the cpu, io, memory, pids controllers: "
        f"write '+cpu +io +memory +pids' to {root}/cgroup.subtree_control",
        f"Make minict's own subtree of the cgroup hierarchy: mkdir {root}/minict",
        f"Let child cgroups of {root}/minict use the cpu, io, memory, pids controllers: "
        f"write '+cpu +io +memory +pids' to {root}/minict/cgroup.subtree_control",
        f"Create the cgroup of container abc: mkdir {root}/minict/abc",
        f"Limit memory to 64 MiB: write '67108864' to {root}/minict/abc/memory.max",
        f"Allow as much swap as memory (64 MiB, docker's default): "
        f"write '67108864' to {root}/minict/abc/memory.swap.max",
        f"Allow at most 20 processes: write '20' to {root}/minict/abc/pids.max",
        f"Limit CPU time to 0.5 CPUs (50000 us in every 100000 us): "
        f"write '50000 100000' to {root}/minict/abc/cpu.max",
    ]


def test_controllers_already_enabled_are_not_written_again(tmp_path):
    root = fake_root(tmp_path, subtree_control="cpu io memory pids")
    (root / "minict").mkdir()
    (root / "minict" / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    said = Narration()
    Cgroup.create("c1", Limits(), root, said, fake_proc(tmp_path))
    assert said.calls() == [f"mkdir {root}/minict/c1"]


def test_cpuset_is_enabled_only_when_asked_for(tree):
    root, proc = tree
    Cgroup.create("c1", limits_from_cli(cpuset_cpus="1"), root, None, proc)
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    assert (root / "minict" / "c1" / "cpuset.cpus").read_text() == "1"


def test_real_top_keeps_its_processes(tmp_path):
    # The top of the hierarchy is exempt from the no-internal-processes rule.
    root = fake_root(tmp_path, procs=(1, 42))
    said = Narration()
    prepare_subtree(root, {"memory"}, said)
    assert not (root / "init").exists()
    assert not any("move process" in line for line in said.lines)


def test_namespace_root_with_processes_moves_them_to_a_leaf_first(tmp_path):
    # minict inside another container: its "/" is an ordinary cgroup holding
    # processes, so they must go to a leaf before controllers can be enabled.
    root = fake_root(tmp_path, procs=(1, 42), real_root=False)
    said = Narration()
    prepare_subtree(root, {"memory", "pids"}, said)
    assert (root / "init").is_dir()
    calls = said.calls()
    assert calls[:3] == [f"mkdir {root}/init",
                         f"write '1' to {root}/init/cgroup.procs",
                         f"write '42' to {root}/init/cgroup.procs"]
    assert calls[3] == f"write '+memory +pids' to {root}/cgroup.subtree_control"


def test_nothing_is_created_when_a_controller_is_bound_to_v1(tmp_path):
    root = fake_root(tmp_path, controllers="")
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    said = Narration()
    with pytest.raises(CgroupUnavailable, match="memory controller is bound to a cgroup v1"):
        Cgroup.create("abc", limits_from_cli(memory="64m"), root, said, proc)
    assert said.lines == []
    assert not (root / "minict").exists()
    assert (root / "cgroup.subtree_control").read_text() == "\n"


def test_no_limits_on_a_host_without_cgroup_v2_makes_no_cgroup(tmp_path):
    root = tmp_path / "tmpfs-not-cgroup2"
    root.mkdir()
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    said = Narration()
    assert home_for_container(Limits(), root, said, proc) is None
    assert list(root.iterdir()) == []
    assert said.lines == [f"No cgroup was made (no limits asked, and no cgroup v2 hierarchy at "
                          f"{root} (nothing is mounted there)): the container stays in "
                          "minict's own cgroup"]
    with pytest.raises(CgroupUnavailable):
        home_for_container(limits_from_cli(pids_limit="10"), root, said, proc)
    assert list(root.iterdir()) == []


def test_no_limits_on_a_cgroup_v2_host_still_makes_a_cgroup_for_stats(tree):
    root, proc = tree
    assert home_for_container(Limits(), root, None, proc) == root
    assert not (root / "minict").exists()   # it only reads: the runtime makes the cgroup


def test_create_at_makes_each_level_down_to_a_deeper_cgroups_path(tree):
    """minict-oci's cgroupsPath may name any depth (podman: /libpod_parent/libpod-ID)."""
    root, proc = tree
    said = Narration()
    cg = Cgroup.create_at(root / "a" / "b" / "c", limits_from_cli(pids_limit="5"), root, said,
                          proc)
    assert cg.path.is_dir() and (cg.path / "pids.max").read_text() == "5"
    for level in (root, root / "a", root / "a" / "b"):
        assert "+pids" in (level / "cgroup.subtree_control").read_text()
    assert said.calls()[1:4] == [f"mkdir {root}/a", f"write '+cpu +io +memory +pids' to "
                                 f"{root}/a/cgroup.subtree_control", f"mkdir {root}/a/b"]
    with pytest.raises(CgroupUnavailable, match="already exists"):
        Cgroup.create_at(root / "a" / "b" / "c", None, root, None, proc)


@pytest.mark.parametrize("bad_id", ["", "../escape", "a/b", ".hidden", "x" * 200])
def test_bad_container_ids_are_refused_before_anything(tree, bad_id):
    root, proc = tree
    with pytest.raises(BadArgument, match="invalid container id"):
        Cgroup.create(bad_id, Limits(), root, None, proc)
    assert not (root / "minict").exists()


def test_unknown_cpu_is_refused_before_anything(tree):
    root, proc = tree
    with pytest.raises(BadArgument, match=r"CPU 4 is not available") as caught:
        Cgroup.create("abc", limits_from_cli(cpuset_cpus="0,4"), root, None, proc)
    assert caught.value.hint == "this machine offers CPUs 0-1"
    assert not (root / "minict").exists()


def test_existing_cgroup_is_a_leftover_not_overwritten(tree):
    root, proc = tree
    Cgroup.create("abc", Limits(), root, None, proc)
    with pytest.raises(CgroupUnavailable, match="already exists") as caught:
        Cgroup.create("abc", limits_from_cli(memory="64m"), root, None, proc)
    assert "crashed minict" in caught.value.hint
    assert not (root / "minict" / "abc" / "memory.max").exists()


def test_update_turns_docker_swap_total_into_swap_only(tree):
    root, proc = tree
    cg = Cgroup.create("abc", limits_from_cli(memory="64m"), root, None, proc)
    cg.update(limits_from_cli(memory_swap="96m", updating=True))
    assert (cg.path / "memory.swap.max").read_text() == str(32 << 20)
    cg.update(limits_from_cli(memory="128m", pids_limit="-1", updating=True))
    assert (cg.path / "memory.max").read_text() == str(128 << 20)
    assert (cg.path / "memory.swap.max").read_text() == str(32 << 20)  # untouched
    assert (cg.path / "pids.max").read_text() == "max"


def test_stats_and_oom_from_kernel_formatted_files(tree):
    root, proc = tree
    cg = Cgroup.create("abc", limits_from_cli(memory="64m"), root, None, proc)
    (cg.path / "memory.current").write_text("1048576\n")
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"
                                           "oom_group_kill 0\n")
    (cg.path / "pids.current").write_text("3\n")
    (cg.path / "pids.max").write_text("max\n")
    (cg.path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n"
                                      "system_usec 500000\nnr_periods 10\nnr_throttled 4\n"
                                      "throttled_usec 120000\n")
    (cg.path / "io.stat").write_text("7:0 rbytes=4096 wbytes=3145728 rios=1 wios=48 dbytes=0 "
                                     "dios=0\n254:0 rbytes=100 wbytes=0 rios=1 wios=0\n")
    sample = cg.stats()
    assert (sample.memory_current, sample.memory_max) == (1 << 20, 64 << 20)
    assert (sample.pids_current, sample.pids_max) == (3, None)
    assert sample.cpu_usage_usec == 2_500_000 and sample.cpu["nr_throttled"] == 4
    assert (sample.io_read_bytes, sample.io_write_bytes) == (4196, 3145728)
    assert cg.oom_killed() and sample.memory_events["oom_kill"] == 1
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert not cg.oom_killed()


def test_orphans_are_found_and_removed(tree):
    root, proc = tree
    said = Narration()
    for cid in ("alive", "dead1", "dead2"):
        # empty directories: rmdir of a fake works only when it holds no files
        (root / "minict" / cid).mkdir(parents=True)
    (root / "minict" / ".not-a-container").mkdir()
    live = {"alive"}
    assert [p.name for p in find_orphans(live.__contains__, root)] == ["dead1", "dead2"]
    assert remove_orphans(live.__contains__, root, said) == ["dead1", "dead2"]
    assert sorted(p.name for p in (root / "minict").iterdir()) == [".not-a-container", "alive"]
    assert said.calls() == [f"rmdir {root}/minict/dead1", f"rmdir {root}/minict/dead2"]
    assert find_orphans(live.__contains__, tmp_root := root / "nowhere") == [] and not tmp_root.exists()


def test_destroy_of_a_missing_cgroup_is_a_no_op(tmp_path):
    said = Narration()
    Cgroup(tmp_path / "gone", said).destroy()
    assert said.lines == []


def test_preflight_refuses_before_the_runtime_makes_anything(tmp_path):
    root = fake_root(tmp_path, controllers="")
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    with pytest.raises(CgroupUnavailable, match="pids controller is bound to a cgroup v1"):
        hierarchy.preflight(limits_from_cli(pids_limit="5"), root, proc)
    ok_root = fake_root(tmp_path / "v2")
    assert "memory" in hierarchy.preflight(limits_from_cli(memory="64m"), ok_root, fake_proc(tmp_path))
    with pytest.raises(BadArgument, match="CPU 7 is not available"):
        hierarchy.preflight(limits_from_cli(cpuset_cpus="7"), ok_root, fake_proc(tmp_path))


def test_oom_report_names_the_limit(tree):
    root, proc = tree
    cg = Cgroup.create("abc", limits_from_cli(memory="64m"), root, None, proc)
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert cg.oom_report() is None
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_report() == ("the kernel's OOM killer ended the container: it reached its "
                               "memory limit of 64 MiB (memory.max)")


def test_of_names_an_existing_containers_cgroup(tree):
    root, proc = tree
    made = Cgroup.create("abc", Limits(), root, None, proc)
    found = Cgroup.of("abc", root)
    assert found.path == made.path and found.exists()
    assert not Cgroup.of("other", root).exists()


@pytest.mark.parametrize("name, ok", [
    ("f" * 64, True), ("test-abc.1_x", True), ("a", True), ("x" * 128, True),
    ("", False), ("x" * 129, False), (".hidden", False), ("-dash", False), ("a/b", False),
    ("..", False), ("caf\u00e9", False), ("sp ace", False),
])
def test_valid_container_ids(name, ok):
    assert hierarchy.valid_id(name) is ok
