"""The seeds' `docker run` flags, parsed (runtime/docker_flags.py and create.py):
what each accepts, and the one line each bad value gets."""

import resource
from pathlib import Path

import pytest

from minicontainer.errors import BadArgument
from minicontainer.runtime import docker_flags as flags
from minicontainer.runtime.create import container_from
from minicontainer.runtime.engine_record import EngineRecord
from minicontainer.runtime.flags import parse_volume
from minicontainer.runtime.request import RunRequest
from minicontainer.image.store import Image

pytestmark = pytest.mark.unit


# ---- --ulimit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("nofile=1024:4096", ("nofile", 1024, 4096)),
    ("nofile=1024", ("nofile", 1024, 1024)),        # HARD defaults to SOFT, as in docker
    ("stack=67108864", ("stack", 67108864, 67108864)),
    ("memlock=-1", ("memlock", -1, -1)),
    ("nproc=100:-1", ("nproc", 100, -1)),
])
def test_ulimits_that_parse(text, expected):
    assert tuple(flags.parse_ulimit(text, can_raise_hard=True)) == expected


@pytest.mark.parametrize("text, words", [
    ("nofile", "write --ulimit NAME=SOFT[:HARD]"),
    ("bogus=1", "names: as, core, cpu"),
    ("nofile=lots", "not a number"),
    ("nofile=-2", "-1 (unlimited) is the only negative value"),
    ("nofile=4096:1024", "the soft limit is above the hard one"),
    ("nofile=-1:1024", "the soft limit is above the hard one"),
])
def test_bad_ulimits_are_one_clear_line(text, words):
    with pytest.raises(BadArgument) as caught:
        flags.parse_ulimit(text, can_raise_hard=True)
    assert words in caught.value.one_line() and "\n" not in caught.value.one_line()


def test_a_hard_limit_above_minicts_own_needs_cap_sys_resource():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    above = f"nofile={hard + 1}"
    with pytest.raises(BadArgument) as caught:
        flags.parse_ulimit(above, can_raise_hard=False)
    assert f"the hard limit {hard + 1} is above minict's own ({hard})" in caught.value.message
    assert "CAP_SYS_RESOURCE" in caught.value.message
    assert flags.parse_ulimit(above, can_raise_hard=True).hard == hard + 1
    assert flags.parse_ulimit(f"nofile={hard}", can_raise_hard=False).hard == hard


def test_cap_sys_resource_is_read_from_our_own_status():
    status = Path("/proc/self/status").read_text()
    effective = int(next(line for line in status.splitlines()
                         if line.startswith("CapEff:")).split()[1], 16)
    assert flags.may_raise_hard_limits() == bool(effective & (1 << 24))


# ---- --add-host, --dns, --label, --ipc, --pid, --shm-size -------------------------------------

def test_small_flags():
    assert flags.parse_add_host("db:10.0.0.5") == "db:10.0.0.5"
    assert flags.parse_add_host("host.docker.internal:host-gateway") == \
        "host.docker.internal:host-gateway"
    assert flags.parse_add_host("v6:fd00::1") == "v6:fd00::1"
    assert flags.parse_dns("9.9.9.9") == "9.9.9.9"
    assert flags.parse_label("course=hpc") == ("course", "hpc")
    assert flags.parse_label("flag") == ("flag", "")
    assert flags.parse_shm_size("1g") == 1 << 30
    for mode in ("private", "shareable", "host", "container:db"):
        assert flags.parse_ipc(mode) == mode


@pytest.mark.parametrize("call, words", [
    (lambda: flags.parse_add_host("db"), "write --add-host NAME:IP"),
    (lambda: flags.parse_add_host("db:nowhere"), "nowhere is not an IP address"),
    (lambda: flags.parse_dns("dns.example"), "invalid --dns 'dns.example': not an IP address"),
    (lambda: flags.parse_label("=x"), "write --label KEY=VALUE"),
    (lambda: flags.parse_ipc("container:"), "use private, shareable, host or container:NAME"),
    (lambda: flags.parse_ipc("public"), "invalid --ipc 'public'"),
    (lambda: flags.parse_pid("container:x"), "use host (or private, the default)"),
    (lambda: flags.parse_shm_size("big"), "invalid --shm-size 'big'"),
    (lambda: flags.parse_shm_size("0"), "give a size, e.g. --shm-size 64m"),
])
def test_bad_small_flags(call, words):
    with pytest.raises(BadArgument) as caught:
        call()
    assert words in caught.value.one_line()


# ---- --mount ----------------------------------------------------------------------------------

def test_mounts_of_each_type(tmp_path):
    assert flags.parse_mount(f"type=bind,source={tmp_path},target=/data,readonly") == \
        ("bind", str(tmp_path), "/data", True)
    assert flags.parse_mount(f"type=bind,src={tmp_path},dst=/data/") == \
        ("bind", str(tmp_path), "/data", False)
    assert flags.parse_mount("type=volume,source=cache,target=/cache") == \
        ("volume", "cache", "/cache", False)
    assert flags.parse_mount("source=cache,target=/cache,ro") == ("volume", "cache", "/cache", True)
    assert flags.parse_mount("type=tmpfs,target=/scratch,tmpfs-size=64m,tmpfs-mode=1770") == \
        ("tmpfs", f"/scratch:size={64 << 20},mode=1770")


@pytest.mark.parametrize("text, words", [
    ("type=bind,source=/nonexistent-minict,target=/x", "is not an existing absolute path"),
    ("type=bind,source=relative,target=/x", "is not an existing absolute path"),
    ("type=tmpfs,target=/", "target must be an absolute path other than /"),
    ("type=tmpfs,target=x", "target must be an absolute path other than /"),
    ("type=volume,target=/x", "a volume needs a name (source=NAME)"),
    ("type=nfs,source=a,target=/x", "type 'nfs'"),
    ("type=tmpfs,target=/x,colour=red", "unknown option 'colour'"),
    ("type=bind,target", "'target' is not KEY=VALUE"),
])
def test_bad_mounts(text, words):
    with pytest.raises(BadArgument) as caught:
        flags.parse_mount(text)
    assert words in caught.value.one_line()


def test_named_volumes_live_in_the_store(tmp_path):
    bind = parse_volume("data:/data:ro", tmp_path / "volumes")
    assert (bind.source, bind.destination, bind.readonly) == \
        (str(tmp_path / "volumes" / "data" / "_data"), "/data", True)
    assert not (tmp_path / "volumes").exists()     # made by create.py, once all flags passed
    with pytest.raises(BadArgument, match="invalid volume name '../etc'"):
        parse_volume("../etc:/x", tmp_path / "volumes")


# ---- --gpus -----------------------------------------------------------------------------------

JOB = {"SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin"}


def test_gpus_all_keeps_the_jobs_own_selection():
    assert flags.gpus_environment("all", JOB) == JOB
    assert flags.gpus_environment('"all"', JOB) == JOB


@pytest.mark.parametrize("value, expected", [
    ("2", {"CUDA_VISIBLE_DEVICES": "0,1"}),
    ("count=3", {"CUDA_VISIBLE_DEVICES": "0,1,2"}),
    ("device=0,2", {"NVIDIA_VISIBLE_DEVICES": "0,2"}),
    ('"device=GPU-e953c3c5"', {"NVIDIA_VISIBLE_DEVICES": "GPU-e953c3c5"}),
])
def test_gpus_n_and_device_replace_the_jobs_variables(value, expected):
    assert flags.gpus_environment(value, JOB) == {"PATH": "/bin", **expected}


@pytest.mark.parametrize("value", ["0", "-1", "some", "count=x"])
def test_bad_gpus(value):
    with pytest.raises(BadArgument) as caught:
        flags.gpus_environment(value, {})
    assert caught.value.one_line().startswith(f"invalid --gpus {value!r} (use --gpus all, "
                                              f"--gpus N")


# ---- create.py: the flags together ------------------------------------------------------------

def image(tmp_path, labels=None) -> Image:
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True, exist_ok=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return Image(manifest_digest="sha256:" + "1" * 64, config_digest="sha256:" + "0" * 64,
                 manifest={}, config={"config": {"Cmd": ["sh"], "Labels": labels}},
                 diff_ids=[], layer_dirs=[layer])


def made(tmp_path, **options):
    """(EngineRecord, config.json) as create.py makes them from the flags."""
    return container_from(image(tmp_path, {"org.opencontainers.image.title": "probe",
                                           "a": "image"}),
                          RunRequest(image="probe", **options), tmp_path / "containers",
                          volumes_dir=tmp_path / "volumes")


def test_create_takes_every_seed_flag(tmp_path):
    engine, container = made(tmp_path, ipc="shareable", shm_size="1g", pid="host",
                             ulimit=("nofile=100:200", "stack=8388608", "nofile=300:400"),
                             add_host=("db:10.0.0.5",), dns=("9.9.9.9",), label=("a=run", "b=2"),
                             mount=("type=volume,source=v,target=/v", "type=tmpfs,target=/t"))
    assert (engine.ipc, engine.shm_size, engine.pid_mode) == ("shareable", 1 << 30, "host")
    # a later --ulimit for the same resource wins
    assert [(r["type"], r["soft"], r["hard"]) for r in container["process"]["rlimits"]] == \
        [("RLIMIT_NOFILE", 300, 400), ("RLIMIT_STACK", 8388608, 8388608)]
    assert engine.extra_hosts == ["db:10.0.0.5"] and engine.dns == ["9.9.9.9"]
    labels = {k: v for k, v in container["annotations"].items() if not k.startswith("org.minict")}
    assert labels == {"org.opencontainers.image.title": "probe", "a": "run", "b": "2"}
    mounts = {m["destination"]: m for m in container["mounts"]}
    assert mounts["/v"]["source"] == str(tmp_path / "volumes" / "v" / "_data")
    assert (tmp_path / "volumes" / "v" / "_data").is_dir()
    assert mounts["/t"]["type"] == "tmpfs"
    assert mounts["/dev/shm"]["options"][-1] == f"size={1 << 20}k"
    assert {"type": "pid"} not in container["linux"]["namespaces"]
    assert EngineRecord.from_dict(engine.to_dict()) == engine


@pytest.mark.parametrize("options, words", [
    ({"ipc": "host", "shm_size": "1g"}, "--shm-size sizes a /dev/shm of the container's own"),
    ({"ipc": "container:db", "shm_size": "1g"}, "with --ipc container:db it shares another's"),
    ({"network": "container:db", "add_host": ("x:1.2.3.4",)}, "--add-host cannot be used with"),
    ({"network": "host", "dns": ("9.9.9.9",)}, "--dns cannot be used with --network host"),
    ({"network": "none", "add_host": ("h:host-gateway",)}, "with --network none the container "
                                                            "cannot reach the host"),
    ({"pid": "container:db"}, "invalid --pid"),
    ({"mount": ("type=volume,source=v,target=/v",), "volume": ("/tmp:/v",)},
     "duplicate mount point /v"),
])
def test_flags_refused_together(tmp_path, options, words):
    with pytest.raises(BadArgument) as caught:
        made(tmp_path, **options)
    assert words in caught.value.one_line()
    assert not (tmp_path / "volumes").exists()    # a refused run makes no volume
