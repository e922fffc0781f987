"""`minict build`, for real: each test builds a Dockerfile on busybox and
checks the image from the outside (config, layer tars) and from the inside
(a container of it)."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def build(mt, context, *flags, ok=True):
    result = mt("build", *flags, context.path, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def image_config(mt, ref) -> dict:
    return json.loads(mt.out("image", "inspect", ref))[0]


def layer_names(mt, ref) -> list[list[str]]:
    """The entry names of each layer tar of the image, read from the store's blobs."""
    manifest = image_config(mt, ref)["Manifest"]
    out = []
    for layer in manifest["layers"]:
        blob = mt.root / "blobs" / "sha256" / layer["digest"].split(":")[1]
        with tarfile.open(fileobj=io.BytesIO(blob.read_bytes())) as tar:
            out.append(tar.getnames())
    return out


def test_config_instructions_reach_the_image(mt, context):
    context.write("Dockerfile", """
ARG BASE=busybox
FROM $BASE
ARG VERSION=1.0
ENV APP_HOME=/srv/app GREETING="hello world"
LABEL org.example.version=$VERSION maintainer="someone"
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
USER 1000:1000
WORKDIR $APP_HOME
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $GREETING; id -u; pwd"]
""")
    build(mt, context, "-t", "cfg:1", "--build-arg", "VERSION=2.5")
    cfg = image_config(mt, "cfg:1")["Config"]["config"]
    assert cfg["Labels"] == {"org.example.version": "2.5", "maintainer": "someone"}
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGINT"
    assert cfg["User"] == "1000:1000" and cfg["WorkingDir"] == "/srv/app"
    assert "GREETING=hello world" in cfg["Env"] and not any("VERSION" in e for e in cfg["Env"])
    assert mt.out("run", "--rm", "cfg:1").split("\n")[:3] == ["hello world", "1000", "/srv/app"]


def test_run_steps_see_env_args_workdir_and_user_and_make_layers(mt, context):
    context.write("Dockerfile", r"""
FROM busybox
ARG WHO=student
ENV PLACE=/work
WORKDIR /work
RUN echo "$WHO at $PLACE in $(pwd) as $(id -u)" > made.txt
RUN rm /bin/vi && rm -rf /home && mkdir /home && echo new > /home/only
SHELL ["/bin/sh", "-ec"]
RUN echo shell-form-runs-with-the-new-shell >> made.txt
""")
    build(mt, context, "-t", "runs:1", "--build-arg", "WHO=alice")
    out = mt.out("run", "--rm", "runs:1", "sh", "-c", "cat made.txt; ls /bin/vi; ls /home")
    assert out.splitlines()[:2] == ["alice at /work in /work as 0",
                                    "shell-form-runs-with-the-new-shell"]
    assert out.splitlines()[2:] == ["only"]
    layers = layer_names(mt, "runs:1")
    # busybox, WORKDIR /work, then one layer per RUN
    assert len(layers) == 5
    assert layers[1] == ["work"]
    assert "bin/.wh.vi" in layers[3]                            # a deleted file: a whiteout
    assert "home/.wh..wh..opq" in layers[3] and "home/only" in layers[3]   # a replaced dir: opaque
    # the mount points minict's runtime made are not part of any layer
    assert not any(n in ("etc/hosts", "etc/resolv.conf", "etc/hostname", "proc", "sys", "dev")
                   for layer in layers[1:] for n in layer)


def test_copy_and_add(mt, context, tmp_path):
    context.write("app/main.py", "print('hi')\n", mode=0o755)
    context.write("app/lib/util.py", "x = 1\n")
    context.write("app/cache.pyc", "junk")
    context.write("notes.txt", "notes\n")
    context.write("secret.key", "do not ship\n")
    context.write(".dockerignore", "secret.key\napp/*.pyc\n")
    with tarfile.open(context.path / "bundle.tar.gz", "w:gz") as tar:
        data = b"from the tar\n"
        info = tarfile.TarInfo("inner/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.write("Dockerfile", """
FROM busybox
RUN mkdir -p /usr/local/xbin && ln -s usr/local/xbin /xbin && ln -s /etc /etclink
COPY app /opt/app/
COPY notes.txt /opt/renamed.txt
COPY *.txt /opt/glob/
COPY --chown=1000:1000 notes.txt /xbin/
COPY notes.txt /etclink/from-build
ADD bundle.tar.gz /opt/unpacked/
ADD notes.txt /opt/added-as-file
""")
    build(mt, context, "-t", "copies:1")
    out = mt.out("run", "--rm", "copies:1", "sh", "-c",
                 "cd /opt; find . | sort; stat -c '%a %u:%g' app/main.py /usr/local/xbin/notes.txt;"
                 " readlink /xbin; cat /etc/from-build unpacked/inner/file.txt")
    lines = out.splitlines()
    assert "./app/main.py" in lines and "./app/lib/util.py" in lines
    assert "./app/cache.pyc" not in lines and not any("secret" in line for line in lines)
    assert "./renamed.txt" in lines and "./glob/notes.txt" in lines
    assert "./added-as-file" in lines and "./unpacked/inner/file.txt" in lines
    assert "755 0:0" in lines and "644 1000:1000" in lines
    assert "usr/local/xbin" in lines            # the image's symlink was followed, not replaced
    assert lines[-2:] == ["notes", "from the tar"]
    assert not Path("/etc/from-build").exists()   # followed inside the image, never on the host


def test_multi_stage_copy_from_and_target(mt, context):
    context.write("Dockerfile", """
FROM busybox AS builder
RUN mkdir /out && echo artifact > /out/result && echo tool > /out/tool
FROM scratch AS final
COPY --from=builder /out/result /result
COPY --from=0 /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/result"]
FROM busybox AS unused
RUN false
""")
    build(mt, context, "-t", "final:1", "--target", "final")
    assert mt.out("run", "--rm", "final:1") == "artifact\n"
    assert [n for layer in layer_names(mt, "final:1") for n in layer] == ["result", "bin",
                                                                          "bin/busybox"]


def test_second_build_is_all_cache_hits_and_a_changed_file_rebuilds_from_its_copy(mt, context):
    context.write("a.txt", "one\n")
    context.write("Dockerfile", """
FROM busybox
RUN echo first > /first
COPY a.txt /a.txt
RUN cat /a.txt > /copy
ENV DONE=1
""")
    first = build(mt, context, "-t", "cached:1")
    assert first.stdout.count("Using cache") == 0
    again = build(mt, context, "-t", "cached:2")
    assert again.stdout.count("Using cache") == 4
    assert image_config(mt, "cached:1")["Id"] == image_config(mt, "cached:2")["Id"]
    os.utime(context.path / "a.txt", (1, 1))          # a new mtime only: still a hit
    assert build(mt, context).stdout.count("Using cache") == 4
    context.write("a.txt", "two\n")
    changed = build(mt, context, "-t", "cached:3")
    steps = changed.stdout.split("STEP ")[1:]
    assert ["Using cache" in s for s in steps] == [False, True, False, False, False]
    assert mt.out("run", "--rm", "cached:3", "cat", "/copy") == "two\n"
    assert build(mt, context, "--no-cache").stdout.count("Using cache") == 0


def test_layers_are_the_same_bytes_when_built_twice(mt, context):
    context.write("f", "content\n")
    context.write("Dockerfile", "FROM busybox\nCOPY f /f\nRUN echo made > /made && touch /f && mkdir -p /d/e\n")
    build(mt, context, "-t", "det:1")
    build(mt, context, "-t", "det:2", "--no-cache")
    one, two = (image_config(mt, f"det:{n}")["Manifest"]["layers"] for n in (1, 2))
    assert one == two


@pytest.mark.parametrize("dockerfile, code, words", [
    ("FROM busybox\nFOO bar\n", 70, "Dockerfile:2: unknown instruction FOO"),
    ("RUN true\n", 70, "Dockerfile:1: RUN before any FROM"),
    ("# nothing\n", 70, "Dockerfile: no FROM instruction"),
    ("FROM busybox\nCOPY ../outside /x\n", 70, "Dockerfile:2: ../outside is outside the build context"),
    ("FROM busybox\nCOPY missing.txt /x\n", 71, "Dockerfile:2: missing.txt: no such file"),
    ("FROM busybox\nADD https://example.com/x /x\n", 70, "Dockerfile:2: ADD of a URL"),
    ("FROM busybox\nRUN echo partial > /p\nRUN echo out; exit 3\n", 71,
     "Dockerfile:3: RUN echo out; exit 3 exited with status 3"),
    ("FROM busybox\nCOPY --from=busybox /nope /x\n", 71, "Dockerfile:2: COPY --from=busybox: /nope does not exist"),
    ("FROM busybox AS a\nFROM busybox\n", 70, None),
])
def test_bad_dockerfiles_leave_nothing(mt, context, dockerfile, code, words):
    context.write("Dockerfile", dockerfile)
    before = sorted(os.listdir(mt.root / "layers"))
    flags = ["--target", "nosuchstage"] if words is None else []
    result = build(mt, context, "-t", "bad:1", *flags, ok=False)
    assert result.returncode == code, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"minict: {context.path}/Dockerfile")
    assert (words or "no stage named 'nosuchstage'") in line
    assert len([x for x in result.stderr.splitlines() if x.startswith("minict:")]) == 1
    assert mt("image", "inspect", "bad:1").returncode == 11        # no image
    assert mt.out("ps", "-a", "-q") == ""                          # no container
    assert sorted(os.listdir(mt.root / "layers")) == before        # no layer left
    assert os.listdir(mt.root / "tmp") == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(mt.root) not in mounts


def test_a_failed_run_shows_its_output_then_one_line(mt, context):
    context.write("Dockerfile", "FROM busybox\nRUN echo visible-output; exit 4\n")
    result = build(mt, context, ok=False)
    assert "visible-output" in result.stdout and result.returncode == 71
    assert "exited with status 4" in result.stderr


def test_build_needs_a_context_directory_and_a_known_network(mt, tmp_path):
    result = mt("build", tmp_path / "nope")
    assert result.returncode == 27 and "is not a directory" in result.stderr
    result = mt("build", "--network", "container:x", tmp_path)
    assert result.returncode == 27 and "bridge, host or none" in result.stderr


def test_other_tools_read_a_built_image(mt, context, tmp_path):
    """umoci applies our layers (whiteouts and opaque dirs included) as it
    would docker's, and skopeo reads the image's config."""
    context.write("f.txt", "copied\n")
    context.write("Dockerfile", """
FROM busybox
RUN rm /bin/vi && rm -rf /home && mkdir /home && echo new > /home/only
COPY f.txt /srv/
CMD ["cat", "/srv/f.txt"]
""")
    build(mt, context, "-t", "tools/built:1")
    mt.out("save", "--format", "oci", "-o", tmp_path / "built.tar", "tools/built:1")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(tmp_path / "built.tar") as tar:
        tar.extractall(layout)
    ref = "docker.io/tools/built:1"
    import subprocess
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", tmp_path / "bundle"],
                   check=True, capture_output=True)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "srv" / "f.txt").read_text() == "copied\n"
    assert not (rootfs / "bin" / "vi").exists() and (rootfs / "bin" / "sh").exists()
    assert sorted(os.listdir(rootfs / "home")) == ["only"]
    info = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}:{ref}"],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["config"]["Cmd"] == ["cat", "/srv/f.txt"]
    assert len(info["rootfs"]["diff_ids"]) == 3
