"""The Dockerfile reader, variables and .dockerignore: unit tests."""

import pytest

from minicontainer.build.context import Context
from minicontainer.build.dockerfile import parse
from minicontainer.build.words import expand, split_words
from minicontainer.errors import BadDockerfile


def test_continuations_comments_and_lines():
    df = parse("# comment\n\nFROM busybox AS base\nRUN echo a && \\\n# a comment inside\n\n"
               "    echo b\nrun echo c\n", "Df")
    assert [(i.keyword, i.line) for i in df.instructions] == [("FROM", 3), ("RUN", 4), ("RUN", 8)]
    assert df.instructions[1].args == "echo a &&     echo b"
    assert df.instructions[1].where == "Df:4: "


def test_escape_directive_changes_the_continuation_character():
    df = parse("# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n")
    assert df.escape == "`"
    assert df.instructions[1].args == "dir c:\\   && echo x"


def test_a_directive_after_an_instruction_is_a_comment():
    df = parse("FROM busybox\n# escape=`\nRUN echo a \\\n b\n")
    assert df.escape == "\\" and df.instructions[1].args == "echo a  b"


def test_exec_form_and_shell_form():
    df = parse('FROM x\nCMD ["sh", "-c", "echo hi"]\nCMD echo hi\nRUN [not json\n')
    assert df.instructions[1].json == ["sh", "-c", "echo hi"]
    assert df.instructions[2].json is None
    assert df.instructions[3].json is None      # docker falls back to the shell form


def test_flags():
    df = parse("FROM --platform=linux/amd64 busybox\nCOPY --from=base --chown=1:2 /a /b\n")
    assert df.instructions[0].flags == {"platform": "linux/amd64"}
    assert df.instructions[1].flags == {"from": "base", "chown": "1:2"}
    assert df.instructions[1].args == "/a /b"


@pytest.mark.parametrize("text, words", [
    ("FROM busybox\nFROB x\n", "Dockerfile:2: unknown instruction FROB"),
    ("FROM busybox\nHEALTHCHECK CMD true\n", "Dockerfile:2: HEALTHCHECK is not supported"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", "Dockerfile:2: RUN does not take"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", "Dockerfile:2: COPY does not take the flag --bogus=1"),
    ("FROM busybox\nSHELL /bin/bash\n", "Dockerfile:2: SHELL needs a JSON array"),
    ("FROM busybox\nENV\n", "Dockerfile:2: ENV needs an argument"),
    ("# escape=x\nFROM busybox\n", "Dockerfile:1: invalid escape character"),
])
def test_bad_lines_name_the_file_and_line(text, words):
    with pytest.raises(BadDockerfile) as err:
        parse(text)
    assert err.value.message.startswith(words)


@pytest.mark.parametrize("text, expected", [
    ("$A/x", "1/x"),
    ("${A}y", "1y"),
    ("${NOPE:-dflt}", "dflt"),
    ("${A:-dflt}", "1"),
    ("${A:+alt}", "alt"),
    ("${NOPE:+alt}", ""),
    ("'$A'", "'$A'"),            # single quotes: not expanded
    ('"$A"', '"1"'),
    ("\\$A", "\\$A"),            # escaped
    ("cost $", "cost $"),
])
def test_expand(text, expected):
    assert expand(text, {"A": "1"}) == expected


def test_split_words_removes_quotes_and_escapes():
    assert split_words('A="hello world" B=\'$X y\' C=a\\ b D=$X', {"X": "1"}) == \
        ["A=hello world", "B=$X y", "C=a b", "D=1"]
    with pytest.raises(BadDockerfile, match="unmatched"):
        split_words('A="open', {})
    with pytest.raises(BadDockerfile, match="bad substitution"):
        expand("${A:?x}", {})


def test_dockerignore(tmp_path):
    (tmp_path / ".dockerignore").write_text(
        "# comment\n*.pyc\n**/*.log\nsecret/\n!secret/keep.txt\n/build\ndocs/*.md\n")
    ctx = Context(tmp_path)
    assert ctx.ignored("a.pyc") and not ctx.ignored("d/a.pyc")     # * stays in one directory
    assert ctx.ignored("x.log") and ctx.ignored("d/e/x.log")        # ** crosses them
    assert ctx.ignored("secret/key") and not ctx.ignored("secret/keep.txt")   # last match wins
    assert ctx.ignored("build/out/x")                               # a directory takes its contents
    assert ctx.ignored("docs/a.md") and not ctx.ignored("docs/sub/a.md")
    assert not ctx.ignored("src/main.py")


def test_copy_sources_stay_in_the_context(tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "outside").write_text("secret")
    (tmp_path / "ctx" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "ctx" / "a.txt").write_text("a")
    ctx = Context(tmp_path / "ctx")
    with pytest.raises(BadDockerfile, match="outside the build context"):
        ctx.sources("../outside", "Df:2: ")
    with pytest.raises(Exception, match="leads outside the build context"):
        ctx.sources("link", "Df:2: ")
    assert ctx.sources("*.txt", "") == [tmp_path / "ctx" / "a.txt"]


def test_the_cache_digest_is_content_not_mtime(tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "f"
    f.write_text("one")
    ctx = Context(tmp_path)
    first = ctx.digest_of([tmp_path / "d"])
    import os
    os.utime(f, (1, 1))
    assert ctx.digest_of([tmp_path / "d"]) == first
    f.write_text("two")
    assert ctx.digest_of([tmp_path / "d"]) != first
    f.chmod(0o700)
    f.write_text("one")
    assert ctx.digest_of([tmp_path / "d"]) != first      # the mode counts
