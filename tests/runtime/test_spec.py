"""ContainerSpec: image config merged with flags the way docker merges them;
bad input rejected before anything exists."""

import os
import signal
from pathlib import Path

import pytest

from minicontainer.errors import BadArgument, UnknownUser
from minicontainer.runtime import capabilities as caps
from minicontainer.runtime.users import find_in_layers, resolve_user
from minicontainer.runtime.spec import ContainerSpec, DeviceNode, build_spec, parse_tmpfs, parse_volume
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


def spec_of(tmp_path, config=None, **flags):
    image = make_image(tmp_path, config if config is not None else {"Cmd": ["sh"]})
    return build_spec(image, image_ref="test", host_env={"FROM_HOST": "h"}, **flags)


@pytest.mark.unit
class TestCommand:
    def test_cmd_from_image(self, tmp_path):
        assert spec_of(tmp_path, {"Cmd": ["sh", "-c", "true"]}).argv == ["sh", "-c", "true"]

    def test_cli_command_replaces_cmd_but_keeps_entrypoint(self, tmp_path):
        s = spec_of(tmp_path, {"Entrypoint": ["/init"], "Cmd": ["default"]}, command=("echo", "x"))
        assert s.argv == ["/init", "echo", "x"]

    def test_entrypoint_flag_drops_image_cmd(self, tmp_path):
        s = spec_of(tmp_path, {"Entrypoint": ["/init"], "Cmd": ["default"]}, entrypoint="/bin/ls")
        assert s.argv == ["/bin/ls"]

    def test_empty_entrypoint_flag_clears_it(self, tmp_path):
        s = spec_of(tmp_path, {"Entrypoint": ["/init"]}, entrypoint="", command=("id",))
        assert s.argv == ["id"]

    def test_no_command_at_all_is_an_error(self, tmp_path):
        with pytest.raises(BadArgument, match="no command"):
            spec_of(tmp_path, {})


@pytest.mark.unit
class TestEnvironment:
    def test_image_env_then_env_file_then_flags(self, tmp_path):
        env_file = tmp_path / "env"
        env_file.write_text("# comment\n\nA=file\nB=file\nFROM_HOST\n")
        s = spec_of(tmp_path, {"Cmd": ["sh"], "Env": ["A=image", "C=image", "PATH=/bin"]},
                    env_files=[env_file], env=["B=flag", "D"])
        env = dict(e.split("=", 1) for e in s.env)
        assert env["A"] == "file" and env["B"] == "flag" and env["C"] == "image"
        assert env["FROM_HOST"] == "h"           # NAME alone copies the caller's value
        assert "D" not in env                    # ... and is dropped if the caller has none
        assert env["PATH"] == "/bin"
        assert env["HOSTNAME"] == s.hostname == s.id[:12]
        assert env["HOME"] == "/root"

    def test_defaults_path_and_term(self, tmp_path):
        env = dict(e.split("=", 1) for e in spec_of(tmp_path, tty=True).env)
        assert env["PATH"].startswith("/usr/local/sbin:")
        assert env["TERM"] == "xterm"

    @pytest.mark.parametrize("bad", ["=value", "", "A B=c"])
    def test_bad_env_spec(self, tmp_path, bad):
        with pytest.raises(BadArgument, match="environment variable"):
            spec_of(tmp_path, env=[bad])

    def test_missing_env_file(self, tmp_path):
        with pytest.raises(BadArgument, match="cannot read env file"):
            spec_of(tmp_path, env_files=[tmp_path / "nope"])


@pytest.mark.unit
class TestUser:
    def test_name_from_image_passwd_with_groups_and_home(self, tmp_path):
        s = spec_of(tmp_path, {"Cmd": ["sh"], "User": "student"})
        assert (s.uid, s.gid, sorted(s.additional_gids)) == (1000, 1000, [10, 100])
        assert "HOME=/home/student" in s.env

    def test_flag_overrides_image_user(self, tmp_path):
        s = spec_of(tmp_path, {"Cmd": ["sh"], "User": "student"}, user="0")
        assert (s.uid, s.gid) == (0, 0)

    def test_numeric_uid_gid_need_no_passwd_entry(self, tmp_path):
        s = spec_of(tmp_path, user="4242:4343")
        assert (s.uid, s.gid, s.additional_gids) == (4242, 4343, [])
        assert "HOME=/" in s.env

    def test_group_by_name(self, tmp_path):
        assert spec_of(tmp_path, user="student:users").gid == 100

    @pytest.mark.parametrize("bad", ["nobody2", "student:nogroup", "ghost:0"])
    def test_unknown_user_or_group(self, tmp_path, bad):
        with pytest.raises(UnknownUser):
            spec_of(tmp_path, user=bad)


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
            spec_of(tmp_path, volumes=[f"{tmp_path}:/x"], tmpfs=["/x"])

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
        ({"network": "host", "publish": ["80"]}, "has none"),
        ({"network": "container:web", "publish": ["80"]}, "has none"),
        ({"publish": ["80:99999"]}, "not between 1 and 65535"),
        ({"publish": ["1.2.3:80:80"]}, "invalid -p"), ({"publish": ["80/sctp"]}, "invalid -p"),
        ({"devices": [DeviceNode("/etc/x", "c", 1, 3)]}, "device node"),
    ])
    def test_bad_flags(self, tmp_path, flags, match):
        with pytest.raises(BadArgument, match=match):
            spec_of(tmp_path, **flags)

    def test_stop_signal_from_image(self, tmp_path):
        assert spec_of(tmp_path, {"Cmd": ["sh"], "StopSignal": "SIGQUIT"}).stop_signal == signal.SIGQUIT

    def test_ports_from_the_flags_and_the_image(self, tmp_path):
        s = spec_of(tmp_path, {"Cmd": ["sh"], "ExposedPorts": {"53/udp": {}, "80/tcp": {}}},
                    publish=["127.0.0.1:8080:80", "9000", "5353:53/udp"], publish_all=True)
        assert [p.text() for p in s.ports] == [
            "80/tcp -> 127.0.0.1:8080", "9000/tcp -> 0.0.0.0:0", "53/udp -> 0.0.0.0:5353",
            "53/udp -> 0.0.0.0:0", "80/tcp -> 0.0.0.0:0"]
        assert s.network == "bridge"      # docker's default

    def test_spec_round_trips_through_json(self, tmp_path):
        import json
        s = spec_of(tmp_path, volumes=[f"{tmp_path}:/v:ro"], tmpfs=["/t"],
                    devices=[DeviceNode("/dev/nvidia0", "c", 195, 0)], publish=["8080:80"])
        again = ContainerSpec.from_dict(json.loads(json.dumps(s.to_dict())))
        assert again == s

    def test_a_saved_spec_reads_back_equal(self, tmp_path):
        """config.json holds plain JSON; reading it back gives the same spec
        (the records, tuples given as lists, and all)."""
        import json
        s = spec_of(tmp_path)
        assert ContainerSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s

    def test_unknown_keys_in_a_saved_spec_are_ignored(self, tmp_path):
        s = spec_of(tmp_path)
        assert ContainerSpec.from_dict({**s.to_dict(), "from_a_newer_minict": 1}) == s

    def test_replace_changes_a_copy(self, tmp_path):
        s = spec_of(tmp_path, name="web")
        other = s.replace(argv=["id"], uid=1000)
        assert (other.argv, other.uid, other.name) == (["id"], 1000, "web")
        assert (s.argv, s.uid) == (["sh"], 0) and other != s


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
