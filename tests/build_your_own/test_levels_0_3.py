"""The build-your-own track, levels 0-3: `check.sh N` passes every reference
solution (examples/build-your-own/solutions/) and fails every untouched
skeleton with the hint that says what to do next; neither leaves anything
behind (conftest.run_check: mounts, temp dirs, processes; the image's digest
here)."""

import subprocess

import pytest

from .conftest import TRACK, tree_digest

pytestmark = [pytest.mark.root, pytest.mark.slow]

LEVEL0 = ["the command's output comes back", "its exit status comes back",
          "killed by SIGTERM, it exits 128+15", "a missing command exits 127",
          "the parent waited for the child", "the command ran in a child"]


def test_level0_solution_passes(run_check):
    run = run_check(0, "solutions/level0.py")
    assert run.code == 0, run.out
    assert "level 0: all checks passed" in run.out
    for what in LEVEL0:
        assert any(line.startswith(f"check: {what}") and line.endswith(": ok")
                   for line in run.lines("check:")), (what, run.out)


def test_level0_skeleton_fails_with_a_hint(run_check):
    run = run_check(0)
    assert run.code == 1, run.out
    assert "FAILED" in run.out and "hint:" in run.out
    assert "note: your file stopped at a TODO: TODO level 0: fork, exec" in run.out
    assert run.hint_after("the command's output comes back") == \
        "hint: the command never ran: os.fork(), then os.execvp(argv[0], argv) in the child (pid 0)"
    assert "level 0: 6 checks failed" in run.out


def test_level1_solution_passes(run_check):
    run = run_check(1, "solutions/level1.py")
    assert run.code == 0, run.out
    assert "level 1: all checks passed" in run.out
    for what in ("hostname inside is level1", "the host's hostname is unchanged",
                 "echo $$ inside prints 1", "the exit status still comes back"):
        assert any(line.startswith(f"check: {what}") and line.endswith(": ok")
                   for line in run.lines("check:")), (what, run.out)


def test_level1_skeleton_fails_with_a_hint(run_check):
    run = run_check(1)
    assert run.code == 1, run.out
    assert run.hint_after("hostname inside is level1") == (
        "hint: the hostname inside is the host's: call sethostname after "
        "unshare(CLONE_NEWUTS), in the child")
    assert run.hint_after("echo $$ inside prints 1").startswith(
        "hint: kernel.unshare(sc.CLONE_NEWPID, ...) in the parent before the fork")
    assert "check: the host's hostname is unchanged: ok" in run.out
    assert "level 1: 2 checks failed" in run.out


def test_level2_solution_passes(run_check, byo_image):
    before = tree_digest(byo_image)
    run = run_check(2, "solutions/level2.py", image=byo_image)
    assert run.code == 0, run.out
    assert "level 2: all checks passed" in run.out
    for what in ("ls / shows the image's top directories (chroot)",
                 "a mount namespace of its own (chroot)",
                 "ls / shows the image's top directories (pivot_root)",
                 "a mount namespace of its own (pivot_root)",
                 "the old root is gone (pivot_root)", "the host's mount table is unchanged"):
        assert any(line.startswith(f"check: {what}") and line.endswith(": ok")
                   for line in run.lines("check:")), (what, run.out)
    # the why of pivot_root, shown: after a chroot the host's root is still reachable
    assert "note: after the chroot, nsenter -m into the container's own mount namespace " \
           "reached the host's" in run.out
    assert tree_digest(byo_image) == before


def test_level2_skeleton_fails_with_a_hint(run_check, byo_image):
    before = tree_digest(byo_image)
    run = run_check(2, image=byo_image)
    assert run.code == 1, run.out
    assert "note: your file stopped at a TODO: TODO level 2: own_mount_namespace" in run.out
    assert run.hint_after("a mount namespace of its own (chroot)").startswith(
        "hint: kernel.unshare(sc.CLONE_NEWNS, ...) in the child, then make / private")
    assert run.hint_after("ls / shows the image's top directories (chroot)") == (
        'hint: os.chroot(image_dir), then kernel.chdir("/", ...), in the child before exec '
        '(enter_with_chroot)')
    assert "check: the host's mount table is unchanged: ok" in run.out
    assert "level 2: 5 checks failed" in run.out
    assert tree_digest(byo_image) == before


def test_level3_solution_passes(run_check, byo_image):
    before = tree_digest(byo_image)
    run = run_check(3, "solutions/level3.py", image=byo_image)
    assert run.code == 0, run.out
    assert "level 3: all checks passed" in run.out
    for what in ("ls / shows the image's top directories and the new file",
                 "a file written inside lands in the upper dir",
                 "a changed file is copied up into the upper dir",
                 "a removed file is a whiteout in the upper dir",
                 "the image directory is unchanged (tree_digest)", "the overlay is unmounted after"):
        assert f"check: {what}: ok" in run.out, (what, run.out)
    assert tree_digest(byo_image) == before


def test_level3_skeleton_fails_with_a_hint(run_check, byo_image):
    before = tree_digest(byo_image)
    run = run_check(3, image=byo_image)
    assert run.code == 1, run.out
    assert "note: your file stopped at a TODO: TODO level 3: overlay_root" in run.out
    assert run.hint_after("a file written inside lands in the upper dir") == (
        'hint: mount("overlay", CONTAINER_DIR/merged, "overlay", 0, "lowerdir=IMAGE_DIR,'
        'upperdir=CONTAINER_DIR/upper,workdir=CONTAINER_DIR/work"), then pivot_root into '
        'merged (overlay_root)')
    assert "check: the image directory is unchanged (tree_digest): ok" in run.out
    assert "check: the overlay is unmounted after: ok" in run.out
    assert "level 3: 4 checks failed" in run.out
    assert tree_digest(byo_image) == before


@pytest.mark.parametrize("args, message", [
    (["9"], "check.sh: no level '9': the levels are 0 to 7"),
    (["one"], "check.sh: no level 'one': the levels are 0 to 7"),
    ([], "usage: check.sh LEVEL [FILE]"),
    (["1", "/nonexistent/level1.py"], "check.sh: no such file: /nonexistent/level1.py"),
])
def test_check_sh_refuses_bad_arguments(args, message):
    result = subprocess.run([str(TRACK / "check.sh"), *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
