"""Bad or hostile input to every minict command: one line on stderr that
says what was wrong and what to do, the exit code of its kind
(minicontainer/errors.py; 2 for a malformed command line, as click and
docker use), and nothing left behind."""

import pytest

from tests.runtime.conftest import container_dirs, mount_table

pytestmark = pytest.mark.root

CASES = [
    # command line itself (click's usage errors, made one line)
    (("nosuchcommand",), 2, "No such command 'nosuchcommand'"),
    (("run", "--bogus", "escape"), 2, "No such option '--bogus'"),
    (("run",), 2, "Missing argument 'IMAGE'"),
    (("images", "--format", "xml"), 2, "'xml' is not one of"),
    (("ps", "--format", "xml"), 2, "'xml' is not one of"),
    (("cleanup", "extra"), 2, "unexpected extra argument"),
    (("update", "escape-missing"), 2, "give at least one limit"),
    (("load", "-i", "/nonexistent-minict"), 2, "does not exist"),
    (("import", "/nonexistent-minict", "x"), 2, "does not exist"),
    # images
    (("image", "inspect", "nosuch"), 11, "no image nosuch:latest"),
    (("rmi", "nosuch"), 11, "no image nosuch:latest"),
    (("pull", "UPPER/Case"), 10, "must be lowercase"),
    (("run", "--rm", "../../etc", "true"), 10, "invalid registry '..'"),
    (("run", "--rm", "escape@sha256:xyz", "true"), 10, "digest"),
    (("login", "-u", "x", "--password-stdin", "127.0.0.1:1"), 27, "no password given"),
    # containers
    (("stop", "missing"), 30, "no such container: missing"),
    (("kill", "missing"), 30, "no such container: missing"),
    (("rm", "missing"), 30, "no such container: missing"),
    (("start", "missing"), 30, "no such container: missing"),
    (("exec", "missing", "true"), 30, "no such container: missing"),
    (("logs", "missing"), 30, "no such container: missing"),
    (("inspect", "missing"), 30, "no such container: missing"),
    (("stats", "--no-stream", "missing"), 30, "no such container: missing"),
    (("update", "--memory", "64m", "missing"), 30, "no such container: missing"),
    # hostile values for run
    (("run", "--rm", "--name", "../../x", "escape", "true"), 27, "invalid container name"),
    (("run", "--rm", "--hostname", "a\nb", "escape", "true"), 27, "invalid hostname"),
    (("run", "--rm", "-w", "relative", "escape", "true"), 27, "not an absolute path"),
    (("run", "--rm", "-v", "../etc:/x", "escape", "true"), 27, "invalid volume name '../etc'"),
    (("run", "--rm", "-v", "/tmp:/", "escape", "true"), 27, "other than /"),
    (("run", "--rm", "-e", "A B=1", "escape", "true"), 27, "invalid environment variable"),
    (("run", "--rm", "--memory", "lots", "escape", "true"), 27, "not a size"),
    (("run", "--rm", "--cap-add", "CAP_NOPE", "escape", "true"), 27, "CAP_NOPE"),
    (("run", "--rm", "--device", "/etc/hostname", "escape", "true"), 27, "is not a device node"),
    (("run", "--rm", "--device", "/dev/null:/tmp/x", "escape", "true"), 27, "must be under /dev/"),
    (("run", "--rm", "-u", "nobody2", "escape", "true"), 35, "unable to find user"),
    (("run", "--rm", "escape", "/no/such/command"), 127, "no such file or directory"),
    (("run", "--rm", "escape", "/etc/passwd"), 126, "not executable"),
]


@pytest.mark.parametrize("args, code, words", CASES, ids=[" ".join(c[0])[:40] for c in CASES])
def test_bad_input_is_one_line_with_the_code_of_its_kind(box, args, code, words):
    before = mount_table(), container_dirs(box.root)
    result = box(*args, input="")
    assert result.returncode == code, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("minict: ") and words in line, line
    assert (mount_table(), container_dirs(box.root)) == before
