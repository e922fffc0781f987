"""`minict pull` from a real registry (Debian's docker-registry on loopback)."""

import hashlib
import io
import subprocess

import pytest

from minicontainer.image.pull import pull
from minicontainer.image.store import Store
from tests.conftest import VENV_BIN
from tests.registry.conftest import needs_registry

pytestmark = [pytest.mark.unit, needs_registry]


def test_pull_by_tag_unpacks_and_names_the_image(minict, anon_registry, minict_root):
    ref = f"{anon_registry.host}/test/busybox:latest"
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ref and done.stderr == ""
    assert "Pull complete" in done.stdout and "Status: Downloaded newer image" in done.stdout

    image = Store(minict_root).resolve(ref)
    assert image.names == [ref]
    top_digest = done.stdout.split("Digest: ")[1].split()[0]
    assert image.repo_digests == [f"{anon_registry.host}/test/busybox@{top_digest}"]
    assert (image.layer_dirs[0] / "bin/busybox").is_file()
    assert (image.layer_dirs[0] / "bin/sh").is_symlink()
    assert image.config["config"]["Cmd"] == ["sh"]


def test_pulling_again_is_up_to_date_and_downloads_nothing(minict, anon_registry,
                                                           test_images):
    ref = f"{anon_registry.host}/test/busybox:latest"
    assert minict("pull", ref).returncode == 0
    before = anon_registry.blob_fetches(test_images.base_blob)
    again = minict("pull", ref)
    assert again.returncode == 0, again.stderr
    assert "Already exists" in again.stdout and "Image is up to date" in again.stdout
    assert anon_registry.blob_fetches(test_images.base_blob) == before


def test_pull_by_digest_gets_no_tag(minict, anon_registry, minict_root):
    manifest = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{anon_registry.host}/test/busybox:latest"],
        capture_output=True, check=True).stdout
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    ref = f"{anon_registry.host}/test/busybox@{digest}"
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    image = Store(minict_root).resolve(ref)
    assert image.manifest_digest == digest
    assert image.names == []                      # like docker: <none> tag
    assert image.repo_digests == [ref]


def test_layers_already_present_are_not_downloaded(minict, anon_registry, test_images,
                                                   minict_root):
    base_before = anon_registry.blob_fetches(test_images.base_blob)
    plus_before = anon_registry.blob_fetches(test_images.plus_blob)
    assert minict("pull", f"{anon_registry.host}/test/busybox").returncode == 0
    done = minict("pull", f"{anon_registry.host}/test/busybox-plus:1.0")
    assert done.returncode == 0, done.stderr
    short = test_images.base_blob[7:19]
    assert f"{short}: Already exists" in done.stdout
    # The shared base layer crossed the network once; the new one once.
    assert anon_registry.blob_fetches(test_images.base_blob) == base_before + 1
    assert anon_registry.blob_fetches(test_images.plus_blob) == plus_before + 1
    store = Store(minict_root)
    plus = store.resolve(f"{anon_registry.host}/test/busybox-plus:1.0")
    assert len(plus.layer_dirs) == 2
    assert plus.layer_dirs[0] == store.resolve(f"{anon_registry.host}/test/busybox").layer_dirs[0]
    # The zstd layer unpacked, and its blob is kept.
    assert (plus.layer_dirs[1] / "etc/motd").read_text() == "zstd layer\n"
    assert store.blob_path(test_images.plus_blob).is_file()
    assert len(list((minict_root / "layers").iterdir())) == 2


@pytest.mark.parametrize("platform, arch", [("linux/arm64", "arm64"), ("linux/amd64", "amd64")])
def test_multi_arch_index_picks_the_platform(minict, anon_registry, test_images, minict_root,
                                             platform, arch):
    ref = f"{anon_registry.host}/test/multi:latest"
    done = minict("pull", "--platform", platform, ref)
    assert done.returncode == 0, done.stderr
    image = Store(minict_root).resolve(ref)
    assert image.manifest_digest == test_images.multi_digests[arch]
    assert image.config["architecture"] == arch
    assert (image.layer_dirs[1] / "etc/arch").read_text() == f"{arch}\n"
    # The repo digest is the index's: what the tag points at.
    assert image.repo_digests == [f"{anon_registry.host}/test/multi@"
                                  f"{test_images.multi_digests['index']}"]


def test_multi_arch_by_index_digest(minict, anon_registry, test_images, minict_root):
    ref = f"{anon_registry.host}/test/multi@{test_images.multi_digests['index']}"
    done = minict("pull", "--platform", "linux/arm64", ref)
    assert done.returncode == 0, done.stderr
    assert Store(minict_root).resolve(ref).config["architecture"] == "arm64"


def test_concurrent_pulls_of_one_image_both_succeed_and_share_layers(minict_env, anon_registry,
                                                                     minict_root):
    ref = f"{anon_registry.host}/test/busybox-plus:1.0"
    procs = [subprocess.Popen([str(VENV_BIN / "minict"), "pull", ref], env=minict_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0], results
    store = Store(minict_root)
    image = store.resolve(ref)
    assert len(store.images()) == 1
    assert sorted(p.name for p in (minict_root / "layers").iterdir()) == \
        sorted(d.partition(":")[2] for d in image.diff_ids)
    assert list((minict_root / "tmp").iterdir()) == []


def test_library_pull_shows_progress_bars_on_a_terminal(anon_registry, minict_root):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    image = pull(Store(minict_root), f"{anon_registry.host}/test/busybox-plus:1.0", out=out)
    assert len(image.layer_dirs) == 2
    text = out.getvalue()
    assert "B/s" in text or "100%" in text        # tqdm drew a bar
    assert "Pull complete" in text


def test_library_pull_is_quiet_off_a_terminal(anon_registry, minict_root):
    out = io.StringIO()
    pull(Store(minict_root), f"{anon_registry.host}/test/busybox:latest", out=out)
    assert "%|" not in out.getvalue() and "Pull complete" in out.getvalue()


def test_quiet_flag_prints_only_the_name(minict, anon_registry):
    ref = f"{anon_registry.host}/test/busybox:latest"
    done = minict("pull", "-q", ref)
    assert done.returncode == 0
    assert done.stdout == ref + "\n" and done.stderr == ""
