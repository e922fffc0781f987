"""examples/README.md is the classroom's index: every example directory is
listed there, and every lesson says near its top how long it takes and
what to show on the projector (the track: each level, in its README's table)."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def unlisted(examples: Path) -> list[str]:
    index = (examples / "README.md").read_text()
    return [p.name for p in sorted(examples.iterdir())
            if p.is_dir() and not p.name.startswith(("_", ".")) and f"]({p.name}/)" not in index]


def lessons(examples: Path) -> list[Path]:
    """The directories with a walk-through script (cgroups: one per step)."""
    return sorted(p for p in examples.iterdir() if any(p.glob("walkthrough*.sh")) or
                  (p / "memory-hog.sh").exists())


def lessons_without_time_or_projector(examples: Path) -> list[str]:
    missing = []
    for lesson in lessons(examples):
        head = "\n".join((lesson / "README.md").read_text().splitlines()[:60])
        if "**Time:**" not in head or "**On the projector:**" not in head:
            missing.append(lesson.name)
    return missing


def test_every_example_directory_is_listed():
    assert unlisted(EXAMPLES) == []


def test_every_lesson_says_its_time_and_what_to_show():
    assert len(lessons(EXAMPLES)) >= 10
    assert lessons_without_time_or_projector(EXAMPLES) == []
    track = (EXAMPLES / "build-your-own/README.md").read_text()
    assert "| Level | Goal | Minutes | On the projector |" in track


def test_the_checks_can_fail(tmp_path):
    (tmp_path / "README.md").write_text("# index\n- [a/](a/)\n")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "walkthrough.sh").write_text("")
        (tmp_path / name / "README.md").write_text("**Time:** 5 min\n")
    assert unlisted(tmp_path) == ["b"]
    assert lessons_without_time_or_projector(tmp_path) == ["a", "b"]
