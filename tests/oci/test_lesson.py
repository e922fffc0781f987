"""The engine-and-runtime lesson runs as written, its checks pass, and it
leaves nothing: no container in minict-oci's state (its own --root, nor
/run/minict-oci, where podman's containers go), no process, no mount, no
temp files."""

import fnmatch
import glob
import json
import shutil

import pytest

from minicontainer.oci.state import DEFAULT_ROOT
from tests.helpers.lessons import processes_naming, readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = "engine-and-runtime"
PODMAN = shutil.which("podman")
# Where the walk-through keeps podman's store (it removes it): in /tmp itself,
# podman refuses a --runroot of more than 50 characters.
PODMAN_DIRS = "/tmp/minict-engine-and-runtime.*"


def containers_under(top) -> list[str]:
    """minict-oci containers in /run/minict-oci whose bundle is under `top` (a
    glob pattern allowed)."""
    found = []
    for state in DEFAULT_ROOT.glob("*/state.json"):
        try:
            bundle = json.loads(state.read_text()).get("bundle", "")
        except (OSError, ValueError):
            continue
        if fnmatch.fnmatch(bundle, str(top)) or fnmatch.fnmatch(bundle, f"{top}/*"):
            found.append(state.parent.name)
    return found


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    podman_dirs_before = set(glob.glob(PODMAN_DIRS))
    out = run_walkthrough(LESSON, tmp_path, min_checks=35 if PODMAN else 30,
                          owned_mounts=[PODMAN_DIRS])
    # step 1-2: a bundle, then create's narration from the real calls
    assert "$ minict-oci spec --bundle " in out
    assert "unshare(CLONE_NEWPID)" in out and 'pivot_root(".", ".")' in out
    assert '"status": "created"' in out
    # step 3: start through exec.fifo, the command's output where create's went
    assert "exec.fifo\", O_RDONLY|O_NONBLOCK)" in out
    assert "lesson.out (the container's stdout): hello from the container" in out
    # step 4: TERM dropped by PID 1, KILL arrives; a deleted container is one line
    assert "kill(" in out and "SIGTERM)" in out and "SIGKILL)" in out
    assert "minict-oci: container lesson does not exist" in out
    # step 5: hooks got the state
    assert '"status": "creating"' in out
    # step 6: one line naming the field
    assert "process.apparmorProfile: AppArmor is not supported by minict-oci" in out
    assert "process.cwd 'tmp' is not an absolute path" in out
    if PODMAN:
        assert "podman ran the command with minict-oci as its runtime: ok" in out
        assert "conmon: minict-oci --cgroup-manager disabled create --bundle $pw/" in out
        assert "podman: minict-oci start <id>" in out
        assert "podman: minict-oci kill <id> 9" in out
    else:
        assert "podman is not installed" in out
    # nothing left: its temp dir (minict-oci's --root, podman's store) is gone...
    assert list((tmp_path / "tmp").iterdir()) == []
    # ... no container of its own in root's minict-oci state, no process
    assert set(glob.glob(PODMAN_DIRS)) == podman_dirs_before
    assert containers_under(tmp_path) == [] and containers_under(PODMAN_DIRS) == []
    assert processes_naming(str(tmp_path)) == [] and processes_naming(PODMAN_DIRS[:-1]) == []


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script(LESSON)
    for text in ("save --format oci", "spec --bundle", "--explain create --bundle", "state",
                 "/wchan", "/cmdline", "--explain start", "exec.fifo", "ps -o pid,args",
                 "kill", "TERM", "KILL", "delete --force", "createRuntime", "poststart",
                 "poststop", "cat > \"$1\"", "apparmorProfile", "\"tmp\"",
                 "podman import --change", "'CMD [\"sh\"]'", "--cgroups=disabled --network=none",
                 "default_ulimits = []", "runtime_supports_nocgroup = [\"minict-oci\"]",
                 "--storage-driver overlay", "CONTAINERS_CONF", "unshare --mount",
                 "podman stop -t 1", "--pid-file"):
        assert text in readme and text in script, text
