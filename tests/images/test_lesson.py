"""The images-and-registries lesson runs as written, its checks pass, and it
leaves nothing: no container, no mount, no registry or token server still
running, no image of its own in the store, nothing in its temp dir."""

import json
import shutil
import subprocess

import pytest

from tests.helpers.lessons import processes_naming, readme_and_script, run_walkthrough
from tests.runtime.conftest import MINICT

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = "images-and-registries"


@pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("curl")),
                    reason="docker-registry (scripts/setup.sh) and curl are needed")
def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    out = run_walkthrough(LESSON, tmp_path, min_checks=30)
    # step 1-2: the archive's tree, a whiteout in the built layer
    assert '"mediaType": "application/vnd.oci.image.index.v1+json"' in out
    assert "bin/.wh.vi" in out and "RUN rm /bin/vi && echo hello > /etc/motd" in out
    # step 3: the overlay's lower dirs are the store's layer directories
    assert f"lowerdir={tmp_path}/root/layers/" in out
    # step 4: a real registry's challenge and a token's claims
    assert 'Www-Authenticate: Bearer realm="http://127.0.0.1:' in out
    assert '"access":[{"type":"repository","name":"lesson/busybox","actions":["pull","push"]}]' in out
    # step 5: the shared layer crossed once each way
    assert "Layer already exists" in out and "Already exists" in out
    assert processes_naming(str(tmp_path)) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    listed = subprocess.run([MINICT, "--root", str(tmp_path / "root"), "images", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    names = sorted(json.loads(line)["Repository"] for line in listed.splitlines())
    assert names == ["busybox"], names


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script(LESSON)
    for text in ("save -o", "tar -xf", "sha256sum", "build -t lesson-slim:1", "tar -tzvf",
                 "gzip -dc", "stat -c '%F %t:%T'", "--explain run --rm", "curl -si",
                 "/v2/", "Authorization: Bearer", "blobs/uploads/", "-X POST", "--data-binary",
                 "manifests/latest", "Accept: application/vnd.oci.image.manifest.v1+json",
                 "--password-stdin", "tag lesson-slim:1", "push", "--root", "pull"):
        assert text in readme and text in script, text
