"""create.py: image config merged with flags the way docker merges them,
into config.json and the engine's record; bad input rejected before
anything exists."""

import os
import signal
from pathlib import Path

import pytest

from minicontainer.errors import BadArgument, UnknownUser
from minicontainer.runtime import capabilities as caps
from minicontainer.runtime.users import find_in_layers, resolve_user
from minicontainer.runtime.create import container_from
from minicontainer.runtime.engine_record import EngineRecord
from minicontainer.runtime.flags import DeviceNode, parse_tmpfs, parse_volume
from minicontainer.runtime.gpu import GpuInjection
from minicontainer.runtime.request import RunRequest
from minicontainer.image.store import Image

PASSWD = "root:x:0:0:root:/root:/bin/sh\nstudent:x:1000:1000::/home/student:/bin/sh\n"
GROUP = "root:x:0:\nusers:x:100:student\nstudent:x:1000:\nwheel:x:10:student,other\n"


def make_image(tmp_path: Path, config: dict, layers: int = 1) -> Image:
    dirs = []
    for i in range(layers):
        d = tmp_path / f"layer{i}"
        (d / "etc").mkdir(parents=True)
        dirs.append(d)
    (dirs[0] / "etc/passwd").write_text(PASSWD)
    (dirs[0] / "etc/group").write_text(GROUP)
    return Image(manifest_digest="sha256:" + "1" * 64, config_digest="sha256:" + "2" * 64,
                 manifest={}, config={"config": config}, diff_ids=[], layer_dirs=dirs)


def made(tmp_path, config=None, devices=(), **flags):
    """(EngineRecord, config.json) of a container of a test image made with
    `flags` (RunRequest's names); `devices`: a GPU plan's nodes."""
    image = make_image(tmp_path, config if config is not None else {"Cmd": ["sh"]})
    gpu = GpuInjection([], list(devices), [], []) if devices else None
    return container_from(image, RunRequest(image="test", **flags), tmp_path / "containers",
                          gpu=gpu, host_env={"FROM_HOST": "h"})


def process_of(tmp_path, config=None, **flags) -> dict:
    return made(tmp_path, config, **flags)[1]["process"]


def ids_of(process) -> tuple:
    user = process["user"]
    return user["uid"], user["gid"], sorted(user["additionalGids"])


@pytest.mark.unit
class TestCommand:
    def test_cmd_from_image(self, tmp_path):
        assert process_of(tmp_path, {"Cmd": ["sh", "-c", "true"]})["args"] == ["sh", "-c", "true"]

    def test_cli_command_replaces_cmd_but_keeps_entrypoint(self, tmp_path):
        p = process_of(tmp_path, {"Entrypoint": ["/init"], "Cmd": ["default"]},
                       command=("echo", "x"))
        assert p["args"] == ["/init", "echo", "x"]

    def test_entrypoint_flag_drops_image_cmd(self, tmp_path):
        p = process_of(tmp_path, {"Entrypoint": ["/init"], "Cmd": ["default"]},
                       entrypoint="/bin/ls")
        assert p["args"] == ["/bin/ls"]

    def test_empty_entrypoint_flag_clears_it(self, tmp_path):
        p = process_of(tmp_path, {"Entrypoint": ["/init"]}, entrypoint="", command=("id",))
        assert p["args"] == ["id"]

    def test_no_command_at_all_is_an_error(self, tmp_path):
        with pytest.raises(BadArgument, match="no command"):
            made(tmp_path, {})


@pytest.mark.unit
class TestEnvironment:
    def test_image_env_then_env_file_then_flags(self, tmp_path):
        env_file = tmp_path / "env"
        env_file.write_text("# comment\n\nA=file\nB=file\nFROM_HOST\n")
        engine, container = made(tmp_path, {"Cmd": ["sh"], "Env": ["A=image", "C=image", "PATH=/bin"]},
                                 env_file=(env_file,), env=("B=flag", "D"))
        env = dict(e.split("=", 1) for e in container["process"]["env"])
        assert env["A"] == "file" and env["B"] == "flag" and env["C"] == "image"
        assert env["FROM_HOST"] == "h"           # NAME alone copies the caller's value
        assert "D" not in env                    # ... and is dropped if the caller has none
        assert env["PATH"] == "/bin"
        assert env["HOSTNAME"] == container["hostname"] == engine.id[:12]
        assert env["HOME"] == "/root"

    def test_defaults_path_and_term(self, tmp_path):
        env = dict(e.split("=", 1) for e in process_of(tmp_path, tty=True)["env"])
        assert env["PATH"].startswith("/usr/local/sbin:")
        assert env["TERM"] == "xterm"

    @pytest.mark.parametrize("bad", ["=value", "", "A B=c"])
    def test_bad_env_spec(self, tmp_path, bad):
        with pytest.raises(BadArgument, match="environment variable"):
            made(tmp_path, env=(bad,))

    def test_missing_env_file(self, tmp_path):
        with pytest.raises(BadArgument, match="cannot read env file"):
            made(tmp_path, env_file=(tmp_path / "nope",))


@pytest.mark.unit
class TestUser:
    def test_name_from_image_passwd_with_groups_and_home(self, tmp_path):
        engine, container = made(tmp_path, {"Cmd": ["sh"], "User": "student"})
        assert ids_of(container["process"]) == (1000, 1000, [10, 100])
        assert "HOME=/home/student" in container["process"]["env"]
        assert engine.user == "student"              # as given, for inspect

    def test_flag_overrides_image_user(self, tmp_path):
        p = process_of(tmp_path, {"Cmd": ["sh"], "User": "student"}, user="0")
        assert ids_of(p)[:2] == (0, 0)

    def test_numeric_uid_gid_need_no_passwd_entry(self, tmp_path):
        p = process_of(tmp_path, user="4242:4343")
        assert ids_of(p) == (4242, 4343, [])
        assert "HOME=/" in p["env"]

    def test_group_by_name(self, tmp_path):
        assert ids_of(process_of(tmp_path, user="student:users"))[1] == 100

    @pytest.mark.parametrize("bad", ["nobody2", "student:nogroup", "ghost:0"])
    def test_unknown_user_or_group(self, tmp_path, bad):
        with pytest.raises(UnknownUser):
            made(tmp_path, user=bad)


@pytest.mark.unit
class TestMountsAndFlags:
    def test_volume_forms(self, tmp_path):
        assert parse_volume(f"{tmp_path}:/data").readonly is False
        ro = parse_volume(f"{tmp_path}/./:/data/../srv:ro")
        assert (ro.source, ro.destination, ro.readonly) == (str(tmp_path), "/srv", True)

    @pytest.mark.parametrize("bad,reason", [
        ("./relative:/x", "invalid volume name './relative'"),   # (a plain name is a volume)
        ("/nonexistent-minict:/x", "does not exist"),
        ("{tmp}:/x:rx", "invalid volume mode"), ("{tmp}", "invalid volume"),
        ("{tmp}:relative", "destination"), ("{tmp}:/", "destination"),
    ])
    def test_bad_volumes(self, tmp_path, bad, reason):
        with pytest.raises(BadArgument, match=reason):
            parse_volume(bad.format(tmp=tmp_path), tmp_path / "volumes")

    def test_duplicate_destinations(self, tmp_path):
        with pytest.raises(BadArgument, match="duplicate mount point /x"):
            made(tmp_path, volume=(f"{tmp_path}:/x",), tmpfs=("/x",))

    def test_tmpfs_defaults_and_overrides(self):
        assert parse_tmpfs("/run").options == "noexec,nosuid,nodev"
        assert parse_tmpfs("/run:exec,size=1m").options == "nosuid,nodev,size=1m"
        with pytest.raises(BadArgument, match="unknown tmpfs option"):
            parse_tmpfs("/run:bogus")

    def test_capabilities_like_docker(self):
        assert caps.mask(caps.resolve()) == 0xa80425fb      # docker's default CapEff
        added = caps.resolve(cap_add=["net_admin"], cap_drop=["CAP_MKNOD"])
        assert "CAP_NET_ADMIN" in added and "CAP_MKNOD" not in added
        assert caps.resolve(cap_drop=["ALL"], cap_add=["KILL"]) == ["CAP_KILL"]
        assert len(caps.resolve(privileged=True)) == caps.last_cap() + 1
        with pytest.raises(BadArgument, match="unknown capability"):
            caps.resolve(cap_add=["FLY"])

    @pytest.mark.parametrize("flags,match", [
        ({"workdir": "relative"}, "not an absolute path"), ({"hostname": "-bad"}, "invalid hostname"),
        ({"name": "a"}, "invalid container name"),
        ({"network": "we ird"}, "invalid --network"), ({"network": "container:"}, "invalid --network"),
        ({"network": "host", "publish": ("80",)}, "has none"),
        ({"network": "container:web", "publish": ("80",)}, "has none"),
        ({"publish": ("80:99999",)}, "not between 1 and 65535"),
        ({"publish": ("1.2.3:80:80",)}, "invalid -p"), ({"publish": ("80/sctp",)}, "invalid -p"),
        ({"devices": [DeviceNode("/etc/x", "c", 1, 3)]}, "device node"),
    ])
    def test_bad_flags(self, tmp_path, flags, match):
        with pytest.raises(BadArgument, match=match):
            made(tmp_path, **flags)

    def test_stop_signal_from_image(self, tmp_path):
        engine, _ = made(tmp_path, {"Cmd": ["sh"], "StopSignal": "SIGQUIT"})
        assert engine.stop_signal == signal.SIGQUIT

    def test_ports_from_the_flags_and_the_image(self, tmp_path):
        s, _ = made(tmp_path, {"Cmd": ["sh"], "ExposedPorts": {"53/udp": {}, "80/tcp": {}}},
                    publish=("127.0.0.1:8080:80", "9000", "5353:53/udp"), publish_all=True)
        assert [p.text() for p in s.ports] == [
            "80/tcp -> 127.0.0.1:8080", "9000/tcp -> 0.0.0.0:0", "53/udp -> 0.0.0.0:5353",
            "53/udp -> 0.0.0.0:0", "80/tcp -> 0.0.0.0:0"]
        assert s.network == "bridge"      # docker's default

    def test_the_engine_record_round_trips_through_json(self, tmp_path):
        """container.json holds plain JSON; reading it back gives the same
        record (the records in it, tuples given as lists, and all)."""
        import json
        s, _ = made(tmp_path, devices=[DeviceNode("/dev/nvidia0", "c", 195, 0)],
                    publish=("8080:80",))
        again = EngineRecord.from_dict(json.loads(json.dumps(s.to_dict())))
        assert again == s and again.devices[0].major == 195 and again.ports[0].container_port == 80

    def test_unknown_keys_in_a_saved_record_are_ignored(self, tmp_path):
        s, _ = made(tmp_path)
        assert EngineRecord.from_dict({**s.to_dict(), "from_a_newer_minict": 1}) == s

    def test_the_flags_land_in_config_json_and_nothing_is_kept_twice(self, tmp_path):
        """What config.json says (the process, mounts, devices) the engine's
        record does not repeat: one source for each fact."""
        engine, container = made(tmp_path, volume=(f"{tmp_path}:/v:ro",), tmpfs=("/t",),
                                 read_only=True, hostname="box", cap_drop=("ALL",),
                                 cap_add=("KILL",), ulimit=("nofile=10:20",),
                                 label=("course=101",))
        mounts = {m["destination"]: m for m in container["mounts"]}
        assert mounts["/v"]["source"] == str(tmp_path) and "ro" in mounts["/v"]["options"]
        assert mounts["/t"]["type"] == "tmpfs"
        assert container["root"] == {"path": str(tmp_path / "containers" / engine.id / "merged"),
                                     "readonly": True}
        assert container["hostname"] == "box"
        assert container["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
        assert container["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 10,
                                                    "hard": 20}]
        assert container["annotations"]["course"] == "101"
        kept = set(engine.to_dict())
        assert not kept & {"argv", "env", "workdir", "uid", "hostname", "binds", "tmpfs",
                           "capabilities", "ulimits", "read_only", "labels", "tty"}


@pytest.mark.root
def test_user_lookup_honours_whiteouts_and_opaque_dirs(tmp_path):
    image = make_image(tmp_path, {"Cmd": ["sh"]}, layers=3)
    lower, middle, top = image.layer_dirs
    os.mknod(middle / "etc/passwd", 0o600 | 0o020000, os.makedev(0, 0))   # deleted in the middle
    assert find_in_layers(image.layer_dirs, "etc/passwd") is None
    (top / "etc/passwd").write_text("ghost:x:7:7::/:/bin/sh\n")                # re-added on top
    assert resolve_user("ghost", image.layer_dirs).uid == 7
    # An opaque /etc in the top layer hides the lower /etc/group entirely.
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")
    assert find_in_layers(image.layer_dirs, "etc/group") is None
    assert find_in_layers(image.layer_dirs, "etc/passwd") == top / "etc/passwd"
