"""Root filesystem logic against the recording kernel: what would be
mounted where, in which order, with which options (no root needed)."""

import errno
import os
import stat
from pathlib import Path

import pytest

from minicontainer import syscalls as sc
from minicontainer.errors import RunFailed
from minicontainer.runtime import command, devices, mounts, rootfs
from minicontainer.runtime.flags import Bind, DeviceNode, Tmpfs
from tests.helpers.kernels import TreeKernel, build_root, where

pytestmark = pytest.mark.unit


def test_overlay_lowerdir_lists_the_top_layer_first(tmp_path):
    kernel = sc.RecordingKernel()
    rootfs.mount_overlay(kernel, ["/l/base", "/l/mid", "/l/top"], str(tmp_path), "/target")
    [(source, target, fstype, flags, data)] = kernel.named("mount")
    assert (source, target, fstype, flags) == ("overlay", "/target", "overlay", 0)
    assert data == (f"lowerdir=/l/top:/l/mid:/l/base,upperdir={tmp_path}/upper,"
                    f"workdir={tmp_path}/work")


def test_overlay_options_escape_separators():
    assert rootfs.overlay_options(["/a:b", "/c,d"], "/u", "/w") == \
        "lowerdir=/a\\:b:/c\\,d,upperdir=/u,workdir=/w"


def test_many_layers_use_short_relative_links(tmp_path):
    layers = [f"/var/lib/minict/layers/{i:064x}/fs" for i in range(120)]   # ~40 bytes over a page each
    assert len(rootfs.overlay_options(layers, "/u", "/w")) > rootfs.MOUNT_DATA_MAX
    kernel = sc.RecordingKernel()
    rootfs.mount_overlay(kernel, layers, str(tmp_path), "/target")
    links = kernel.named("symlink")
    assert links[0] == (layers[-1], f"{tmp_path}/lower/0")      # lower/0 is the top layer
    assert links[-1] == (layers[0], f"{tmp_path}/lower/119")
    assert kernel.named("chdir") == [(str(tmp_path),)]          # relative paths resolve from here
    data = kernel.named("mount")[0][4]
    assert len(data) <= rootfs.MOUNT_DATA_MAX
    assert data.startswith("lowerdir=lower/0:lower/1:") and data.endswith(",upperdir=upper,workdir=work")


def test_no_layers_get_an_empty_lower_dir(tmp_path):
    kernel = sc.RecordingKernel()
    rootfs.mount_overlay(kernel, [], str(tmp_path), "/target")
    assert kernel.named("mkdir") == [(f"{tmp_path}/empty-lower", 0o755)]
    assert kernel.named("mount")[0][4].startswith(f"lowerdir={tmp_path}/empty-lower,")


@pytest.fixture
def hostile_root(tmp_path) -> Path:
    """An image root whose symlinks try to lead outside it."""
    root = tmp_path / "root"
    (root / "usr/etc").mkdir(parents=True)
    (root / "etc").symlink_to("/usr/etc")                  # absolute: must stay inside root
    (root / "escape").symlink_to("../../../../../../tmp")  # climbs: must stop at root
    (root / "loop").symlink_to("loop")
    return root


@pytest.mark.parametrize("destination, lands", [
    ("/etc/hosts", "usr/etc/hosts"),            # an absolute link restarts at the root
    ("/escape/x", "tmp/x"),                     # a climbing link stops at the root
    ("/../../etc/passwd", "usr/etc/passwd"),    # so does a climbing destination
    ("/new/dir", "new/dir"),
])
@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_mount_points_resolve_symlinks_inside_the_root(hostile_root, monkeypatch, destination,
                                                       lands, openat2):
    from baselib import inroot
    monkeypatch.setattr(inroot, "_openat2_missing", not openat2)   # a kernel before 5.6
    kernel = TreeKernel()
    with rootfs.mountpoint(kernel, str(hostile_root), destination, directory=True) as target:
        assert where(target) == f"{hostile_root}/{lands}"
    with pytest.raises(RunFailed, match="too many symlinks resolving /loop/x"):
        rootfs.open_mountpoint(kernel, str(hostile_root), "/loop/x", True)


def test_a_dangling_symlink_in_the_image_is_followed_inside_the_root(tmp_path):
    """An image's /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf:
    the bind lands where the link points, made inside the root, as with docker."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    kernel = TreeKernel()
    with rootfs.mountpoint(kernel, str(root), "/etc/resolv.conf", directory=False) as target:
        assert where(target) == f"{root}/run/systemd/resolve/stub-resolv.conf"
    assert [c[0] for c in kernel.named("mkdir")] == [f"{root}/run", f"{root}/run/systemd",
                                                     f"{root}/run/systemd/resolve"]


def test_mountpoints_are_created_inside_the_root(hostile_root):
    kernel = TreeKernel()
    root = str(hostile_root)
    with rootfs.mountpoint(kernel, root, "/escape/a/b", directory=True) as target:
        assert target.startswith("/proc/self/fd/")
        assert where(target) == f"{root}/tmp/a/b"
    assert [c[0] for c in kernel.named("mkdir")] == [f"{root}/tmp", f"{root}/tmp/a", f"{root}/tmp/a/b"]
    assert (hostile_root / "tmp/a/b").is_dir()
    kernel = TreeKernel()
    with rootfs.mountpoint(kernel, root, "/etc/hostname", directory=False) as target:
        assert where(target) == f"{root}/usr/etc/hostname"
    assert kernel.named("write_file") == [(f"{root}/usr/etc/hostname", b"", 0o644)]
    assert (hostile_root / "usr/etc/hostname").read_bytes() == b""


@pytest.fixture
def shared_volume(tmp_path):
    """A root with /data/sub, and a host directory outside it to aim at."""
    root = tmp_path / "root"
    (root / "data/sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return root, outside


def open_handles() -> set[tuple[str, str]]:
    """(fd, what it points to) for each descriptor of this process. (The
    listing's own descriptor is closed by the time it would be read.)"""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("destination", ["/data/sub/x", "/data/sub"])
@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_a_symlink_swapped_in_never_leads_out_of_the_root(shared_volume, monkeypatch, destination,
                                                          openat2):
    """CVE-2021-30465: another container sharing the volume at /data swaps
    /data/sub for a symlink to a host directory while minict looks up its
    mount point. Whatever minict then does, nothing may be created or
    mounted outside the root: the link is resolved inside it."""
    from baselib import inroot
    monkeypatch.setattr(inroot, "_openat2_missing", not openat2)
    root, outside = shared_volume
    looked_up = inroot.open_in_root

    def swap_after_the_first_lookup(*args, **kwargs):
        fd = looked_up(*args, **kwargs)
        if not (root / "data/sub-before").exists():
            os.rename(root / "data/sub", root / "data/sub-before")
            os.symlink(outside, root / "data/sub")
        return fd

    monkeypatch.setattr(inroot, "open_in_root", swap_after_the_first_lookup)
    kernel = TreeKernel()
    before = open_handles()
    try:
        with rootfs.mountpoint(kernel, str(root), destination, directory=True) as target:
            assert where(target).startswith(f"{root}/")
    except RunFailed as refused:
        assert "while minict was mounting" in refused.message
    assert list(outside.iterdir()) == []
    made = [call.args[0] for call in kernel.calls if call.name in ("mkdir", "write_file")]
    assert all(path.startswith(f"{root}/") for path in made), made
    # The handles taken on the way are closed: no descriptor this test did not
    # have before points into the tree. (The whole list is no guide: other
    # objects of the test process may close or open descriptors meanwhile.)
    assert [target for _, target in open_handles() - before
            if target.startswith(f"{root.parent}/")] == []


class FifoPutThereFirst(TreeKernel):
    def _do_write_file(self, path, data, mode):
        os.mkfifo(path)           # the other process, just before our create
        super()._do_write_file(path, data, mode)


@pytest.mark.timeout(5, method="signal")   # a blocked open(2) fails the test, not the run
def test_a_fifo_raced_in_at_a_file_mount_point_does_not_stall_the_start(shared_volume):
    """A FIFO made at the name between minict's look and its create: opening
    it for writing would wait for a reader for ever. The create is
    exclusive, so minict takes a handle on whatever is there instead, and
    the bind covers it."""
    root, _ = shared_volume
    kernel = FifoPutThereFirst()
    with rootfs.mountpoint(kernel, str(root), "/data/sub/file", directory=False) as target:
        assert where(target) == f"{root}/data/sub/file"
    assert stat.S_ISFIFO(os.lstat(root / "data/sub/file").st_mode)


class RemovedRightAfterMkdir(TreeKernel):
    def _do_mkdir(self, path, mode):
        os.mkdir(path, mode)
        os.rmdir(path)            # the other process, just after our mkdir


class ParentDeletedBeforeMkdir(TreeKernel):
    def _do_mkdir(self, path, mode):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)


@pytest.mark.parametrize("kernel,words", [
    (RemovedRightAfterMkdir, "/data/sub/new vanished while minict was mounting /data/sub/new"),
    (ParentDeletedBeforeMkdir, "/data/sub vanished while minict was mounting /data/sub/new"),
])
def test_a_tree_changing_under_the_walk_is_one_clear_error(shared_volume, kernel, words):
    root, _ = shared_volume
    with pytest.raises(RunFailed, match=words) as caught:
        with rootfs.mountpoint(kernel(), str(root), "/data/sub/new", True):
            pass
    assert "another container sharing the volume" in caught.value.hint


def test_mount_points_under_a_file_or_a_read_only_volume_are_one_clear_error(shared_volume):
    root, _ = shared_volume
    (root / "data/file").write_text("")
    with pytest.raises(RunFailed, match="cannot use /data/file/x in the container: /data/file is "
                                        "not a directory there"):
        with rootfs.mountpoint(TreeKernel(), str(root), "/data/file/x", True):
            pass

    read_only = TreeKernel()
    read_only.fail_next("mkdir", errno.EROFS)
    with pytest.raises(RunFailed, match="cannot create /data/new to mount /data/new/y on: "
                                        "/data is read-only") as caught:
        with rootfs.mountpoint(read_only, str(root), "/data/new/y", True):
            pass
    assert "create it in the volume's source first" in caught.value.hint


def test_read_only_bind_is_made_read_only_before_it_is_attached(tmp_path, monkeypatch):
    kernel = TreeKernel()
    (tmp_path / "root").mkdir()
    rootfs.bind_mount(kernel, str(tmp_path / "root"), str(tmp_path), "/data", True, "why")
    [(source, target, readonly, nodev)] = kernel.named("bind_with_attributes")
    assert (source, target, readonly, nodev) == (str(tmp_path), f"{tmp_path}/root/data", True, False)
    assert kernel.named("mount") == []


def test_without_mount_setattr_a_read_only_bind_is_a_second_remount(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "has_mount_setattr", lambda: False)   # a kernel before 5.12
    kernel = TreeKernel()
    (tmp_path / "root").mkdir()
    rootfs.bind_mount(kernel, str(tmp_path / "root"), str(tmp_path), "/data", True, "why")
    first, second = kernel.named("mount")
    assert first[3] == sc.MS_BIND | sc.MS_REC
    assert second[1] == first[1] and second[3] & (sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY) == \
        sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY


def test_build_root_order(tmp_path):
    """Overlay first (bound onto itself for pivot_root), then the kernel
    filesystems, /etc files, and the volumes shallow-first (so /data is
    mounted before /data/sub)."""
    root = tmp_path / "merged"
    root.mkdir()
    src = tmp_path / "src"
    src.mkdir()

    class Spec:
        layer_dirs = ["/l/0"]
        devices = [DeviceNode("/dev/nvidia0", "c", 195, 0)]
        privileged = False
        binds = [Bind(str(src), "/data/sub"), Bind(str(src), "/data", True)]
        tmpfs = [Tmpfs("/run", "noexec,nosuid,nodev,size=1m")]
        ipc, shm_size = "private", 64 << 20

    kernel = TreeKernel()
    build_root(kernel, Spec, str(tmp_path), str(root))
    # every mount in call order: mount(2)'s, and binds made with their flags set first
    mounts = [args[1] for call, args in kernel.calls if call in ("mount", "bind_with_attributes")]
    targets = [os.path.relpath(m, root) if m else None for m in mounts]
    assert targets[:3] == [".", ".", "proc"]
    assert kernel.named("mount")[0][2] == "overlay"
    assert targets.index("dev") < targets.index("dev/pts") < targets.index("sys")
    assert targets.index("data") < targets.index("data/sub")
    assert "run" in targets and "etc/hostname" in targets
    nodes = {os.path.relpath(n[0], root): n for n in kernel.named("mknod")}
    assert set(nodes) == {"dev/null", "dev/zero", "dev/full", "dev/random", "dev/urandom",
                          "dev/tty", "dev/nvidia0"}
    assert nodes["dev/nvidia0"][2] == os.makedev(195, 0)
    links = {os.path.relpath(link, root): text for text, link in kernel.named("symlink")}
    assert links["dev/stdin"] == "/proc/self/fd/0" and links["dev/fd"] == "/proc/self/fd"
    tmpfs = next(m for m in kernel.named("mount") if m[1] == f"{root}/run")
    assert tmpfs[3] == sc.MS_NOEXEC | sc.MS_NOSUID | sc.MS_NODEV and tmpfs[4] == "size=1m"


@pytest.mark.parametrize("ipc, shared, expected", [
    ("private", None, ("shm", "tmpfs", "mode=1777,size=1048576k")),
    ("host", None, ("/dev/shm", None, None)),
    ("container:donor", "fd", ("attach_mount",)),
])
def test_dev_shm_is_its_own_or_the_one_it_shares(tmp_path, ipc, shared, expected):
    root = tmp_path / "merged"
    root.mkdir()

    class Spec:
        layer_dirs = ["/l/0"]
        devices, binds, tmpfs, privileged = [], [], [], False
        shm_size = 1 << 30
    Spec.ipc = ipc
    if shared == "fd":   # the detached copy of the donor's /dev/shm (here: any fd)
        shared = os.open("/dev/null", os.O_RDONLY)
    kernel = TreeKernel()
    build_root(kernel, Spec, str(tmp_path), str(root), shm=shared)
    shm = f"{root}/dev/shm"
    if shared is not None:
        assert kernel.named("attach_mount") == [(shared, shm)]
        assert not [m for m in kernel.named("mount") if m[1] == shm]
    else:
        (mounted,) = [m for m in kernel.named("mount") if m[1] == shm]
        assert (mounted[0], mounted[2], mounted[4]) == expected
        assert bool(mounted[3] & sc.MS_BIND) == (ipc == "host")


@pytest.mark.parametrize("privileged", [False, True])
def test_own_cgroup_is_mounted_over_sys_fs_cgroup(tmp_path, privileged):
    root = tmp_path / "merged"
    (root / "sys" / "fs" / "cgroup").mkdir(parents=True)

    class Spec:
        layer_dirs = ["/l/0"]
        devices, binds, tmpfs = [], [], []
        ipc, shm_size = "private", 64 << 20

    Spec.privileged = privileged
    kernel = TreeKernel()
    build_root(kernel, Spec, str(tmp_path), str(root), own_cgroup=True)
    mounted = kernel.named("mount")
    targets = [os.path.relpath(m[1], root) for m in mounted]
    assert targets.index("sys") < targets.index("sys/fs/cgroup")
    cgroup = mounted[targets.index("sys/fs/cgroup")]
    assert cgroup[0] == cgroup[2] == "cgroup2"
    assert bool(cgroup[3] & sc.MS_RDONLY) is not privileged
    kernel = TreeKernel()
    root = tmp_path / "merged-again"      # (TreeKernel made the first tree's mount points for real)
    (root / "sys" / "fs" / "cgroup").mkdir(parents=True)
    build_root(kernel, Spec, str(tmp_path), str(root))     # no cgroup of its own
    assert "cgroup2" not in [m[2] for m in kernel.named("mount")]


def test_a_process_outside_minicts_cgroups_is_not_in_its_own():
    # (the VM tier checks the other answer: a container sees its cgroup at /sys/fs/cgroup)
    from minicontainer.runtime.mounts import in_own_cgroup
    assert in_own_cgroup("f" * 64) is False


def test_masked_and_readonly_paths_skip_what_the_kernel_lacks():
    kernel = sc.RecordingKernel()
    mounts.mask_paths(kernel, ["/proc/self/status", "/proc", "/nonexistent-minict"])
    assert kernel.named("mount") == [("/dev/null", "/proc/self/status", None, sc.MS_BIND, None),
                                     ("tmpfs", "/proc", "tmpfs", sc.MS_RDONLY, None)]
    kernel = sc.RecordingKernel()
    mounts.readonly_paths(kernel, ["/proc/sys", "/nonexistent-minict"])
    bind, remount = kernel.named("mount")
    assert bind == ("/proc/sys", "/proc/sys", None, sc.MS_BIND | sc.MS_REC, None)
    assert remount[3] & sc.MS_RDONLY and remount[3] & sc.MS_REMOUNT


def test_default_device_list_matches_runc():
    assert [d[0] for d in devices.DEFAULT_DEVICES] == ["null", "zero", "full", "random", "urandom", "tty"]


def test_command_lookup_codes(tmp_path):
    from minicontainer.errors import CommandNotExecutable, CommandNotFound
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/tool").write_text("#!/bin/sh\n")
    (tmp_path / "bin/tool").chmod(0o755)
    (tmp_path / "bin/data").write_text("x")
    env = [f"PATH=/nonexistent:{tmp_path}/bin"]
    assert command.find_command("tool", env) == f"{tmp_path}/bin/tool"
    with pytest.raises(CommandNotFound):
        command.find_command("missing", env)
    with pytest.raises(CommandNotExecutable):
        command.find_command("data", env)
    with pytest.raises(CommandNotExecutable):
        command.find_command(str(tmp_path / "bin"), env)


def test_a_working_directory_outside_the_root_is_refused(tmp_path):
    """CVE-2024-21626: if the cwd ends up somewhere getcwd cannot name from
    the root (here: a directory deleted under us), refuse to run."""
    from minicontainer.errors import RunFailed
    from minicontainer.runtime import security
    here = os.getcwd()
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    os.chdir(doomed)
    try:
        doomed.rmdir()
        with pytest.raises(RunFailed, match="outside the container"):
            security.enter_workdir(sc.RecordingKernel(), "/work")
    finally:
        os.chdir(here)
    security.enter_workdir(sc.RecordingKernel(), "/work")   # a normal cwd passes
