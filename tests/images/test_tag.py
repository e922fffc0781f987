"""`minict tag SOURCE TARGET`: another name for an image, as docker tag."""

import json

import pytest

from tests.images.conftest import index_names, store_state

pytestmark = pytest.mark.root


def image_id(minict, ref) -> str:
    result = minict("image", "inspect", ref)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]["Id"]


def tag(minict, source, target):
    result = minict("tag", source, target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""


@pytest.fixture
def two_images(minict, busybox_rootfs):
    """a (named a:1 and a:keep) and b (named b:1): one layer, two configs."""
    assert minict("import", busybox_rootfs, "a:1").returncode == 0
    tag(minict, "a:1", "a:keep")
    assert minict("import", "-c", 'CMD ["echo", "b"]', busybox_rootfs, "b:1").returncode == 0
    ids = {"a": image_id(minict, "a:1"), "b": image_id(minict, "b:1")}
    assert ids["a"] != ids["b"]
    return ids


def test_tag_by_name_and_by_id(minict, minict_root, two_images):
    tag(minict, "a:1", "course/app")               # no tag: latest, as docker
    tag(minict, two_images["b"][7:19], "localhost:5000/team/b:v2")  # an ID prefix
    names = index_names(minict_root)
    assert names["docker.io/course/app:latest"] == names["docker.io/library/a:1"]
    assert names["localhost:5000/team/b:v2"] == names["docker.io/library/b:1"]
    assert image_id(minict, "course/app:latest") == two_images["a"]
    assert image_id(minict, "localhost:5000/team/b:v2") == two_images["b"]
    rows = minict("images").stdout.splitlines()[1:]
    assert {tuple(r.split()[:2]) for r in rows} == {
        ("a", "1"), ("a", "keep"), ("course/app", "latest"), ("b", "1"),
        ("localhost:5000/team/b", "v2")}


def test_retag_moves_the_name(minict, minict_root, two_images):
    tag(minict, "b:1", "a:1")  # a:1 now names b; a keeps a:keep
    assert image_id(minict, "a:1") == two_images["b"]
    assert image_id(minict, "a:keep") == two_images["a"]
    tag(minict, "a:keep", "b:1")  # b:1 moves to a; b is left with a:1 only
    assert image_id(minict, "b:1") == two_images["a"]
    tag(minict, "a:keep", "a:1")  # b's last name goes: b stays, untagged
    rows = [json.loads(line) for line in minict("images", "--format", "json").stdout.splitlines()]
    assert {(r["Repository"], r["Tag"], r["ID"]) for r in rows} == {
        ("a", "1", two_images["a"][7:19]), ("a", "keep", two_images["a"][7:19]),
        ("b", "1", two_images["a"][7:19]), ("<none>", "<none>", two_images["b"][7:19])}
    assert image_id(minict, two_images["b"][7:19]) == two_images["b"]


@pytest.mark.parametrize("args, code, fragment", [
    (["tag", "nope:1", "x:1"], 11, "no image nope:1 in the store"),
    (["tag", "a:1", "Upper/Case"], 10, "must be lowercase"),
    (["tag", "a:1", "x@sha256:" + "0" * 64], 10, "cannot tag with a digest"),
    (["tag", "a:1", "x:bad!tag"], 10, "invalid tag"),
])
def test_bad_input(minict, minict_root, two_images, args, code, fragment):
    before = store_state(minict_root)
    result = minict(*args)
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minict: ") and "(" in lines[0], result.stderr
    assert fragment in lines[0], lines[0]
    assert store_state(minict_root) == before


def test_tag_in_a_store_that_does_not_exist(tmp_path, minict):
    root = tmp_path / "no-store"
    result = minict("tag", "a:1", "b:1", env={"MINICT_ROOT": str(root)})
    assert result.returncode == 11
    assert not root.exists()  # a failed tag creates no store
