"""IMAGE, made into what the chosen runtime can run.

`prepare_image(runtime, IMAGE, env)` is the front door: it reads what kind of
image IMAGE names (reference.py) and, per runtime, passes it on, or converts
it, and reads the image's config so that `hpcshim run` knows its command:

                 directory, SIF,  oci-archive: / docker-archive: /     minict:NAME[:TAG]
                 docker://...     plain .tar / oci:DIR
    apptainer,   untouched        passed as the URI they already       `minict save` to an oci-archive
    singularity                   take (a plain .tar gets its prefix)  in the cache, passed as such
    ch-run       untouched        unpacked once into the cache         `minict save`, then the same
                                  (unpack.py), by config digest
    minict       untouched        `minict load` into minict's store,   NAME, untouched
                                  then run by digest

A registry name (no file of that name) goes to the runtime untouched, as
docker://... does, except for ch-run: a name `hpcshim pull --runtime ch-run`
fetched runs from its unpacked tree in the cache (pulled.py).

oci:DIR goes to Apptainer and Singularity as `oci:DIR`: the containers/image
`oci` transport is accepted by exec/run/shell in every version hpcshim
supports (Singularity 3.0+, Apptainer 1.x), so no conversion is needed.

minict and archives: the archive is loaded into the store minict runs from
(the caller's MINICT_ROOT or default), not into a private one of hpcshim's.
`minict run` can only start images of the store it is pointed at, a second
store would hold a second copy of every layer and a second set of container
records that `minict ps`/`cleanup` would not see. The price is a visible side
effect - the image and any names it carries stay in the user's store - so
`-v` says so, and `--dry-run` does not load.

--dry-run writes only into hpcshim's own cache (an unpack, a saved archive):
the mount points it prints for ch-run can only be known from the unpacked tree.
"""

import os

from ..errors import BadArgument
from .reference import ImageRef, parse


class PreparedImage:
    def __init__(self, image: str, config: dict | None = None, env: dict | None = None,
                 notes: list[str] | None = None):
        self.image = image                  # what the runtime gets as its IMAGE argument
        self.config = dict(config or {})    # ExecRequest.image_config
        self.env = dict(env or {})          # ExecRequest.image_env
        self.notes = list(notes or [])      # printed under -v / --dry-run


def prepare_image(runtime: str, text: str, env: dict[str, str], dry_run: bool = False) -> PreparedImage:
    ref = parse(text)
    if ref.kind == "other" and runtime == "ch-run":
        return _pulled_for_chrun(text, env)
    if ref.kind in ("directory", "other"):
        return PreparedImage(text)
    if runtime in ("apptainer", "singularity"):
        return _for_apptainer(ref, env)
    if runtime == "ch-run":
        return _for_chrun(ref, env)
    if runtime == "minict":
        return _for_minict(ref, env, dry_run)
    raise BadArgument(f"unknown runtime {runtime!r}")


def image_cache(env: dict[str, str]) -> str:
    """hpcshim's cache directory. HPCSHIM_NO_CACHE=1 turns off the discovery
    cache only: an unpacked image is not an optimisation, ch-run needs it."""
    from ..cache import cache_dir  # only archives and minict images use the cache
    return cache_dir({k: v for k, v in env.items() if k != "HPCSHIM_NO_CACHE"})


def _pulled_for_chrun(text: str, env: dict[str, str]) -> PreparedImage:
    """A name `hpcshim pull --runtime ch-run` fetched: its tree in the cache
    (pulled.py); any other text goes to ch-run untouched, as before."""
    from .pulled import find  # a small module: one open() for a name that is no file
    record = find(image_cache(env), text)
    if record is None:
        return PreparedImage(text)
    from .layout import env_dict  # only for an image hpcshim pulled
    config = record.get("config") or {}
    return PreparedImage(record["rootfs"], config, env_dict(config.get("Env") or []),
                         [f"image: {text} as pulled ({record.get('config_digest')}) at {record['rootfs']}"])


def _from_file(ref: ImageRef, action):
    """Open the archive or layout ref names, pick its image, call action(image)."""
    from .layout import open_source, select  # archives and layouts only (tarfile, json)
    source = open_source(ref.path, oci_layout_dir=ref.kind == "oci-layout")
    try:
        return action(select(source, "oci" if ref.is_oci_layout else "docker", ref.name))
    finally:
        if hasattr(source, "close"):
            source.close()


def _described(image) -> str:
    return f"{image.config_digest}" + (f" ({image.name})" if image.name else "")


def _for_apptainer(ref: ImageRef, env: dict[str, str]) -> PreparedImage:
    if ref.kind == "minict":
        from . import minict_tool  # minict images only (subprocess)
        exe = minict_tool.find(env, f"{ref.text}: Apptainer needs the image as an archive")
        info = minict_tool.inspect(exe, ref.name, env)
        archive = os.path.join(image_cache(env), "minict", info["Id"].split(":", 1)[1] + ".oci.tar")
        if os.path.isfile(archive):
            note = f"image: cached archive of minict's {ref.name} ({info['Id']}) at {archive}"
        else:
            os.makedirs(os.path.dirname(archive), mode=0o700, exist_ok=True)
            minict_tool.save(exe, info["ManifestDigest"], archive, env)
            note = f"image: saved minict's {ref.name} ({info['Id']}) as {archive}"
        run_config = (info.get("Config") or {}).get("config") or {}
        from .layout import env_dict  # archives, layouts, minict images only
        return PreparedImage("oci-archive:" + archive, run_config, env_dict(run_config.get("Env") or []),
                             [note])

    def passed_on(image):
        # The runtime reads the archive itself; hpcshim has checked that it
        # holds the image (or exactly one) and read its config.
        uri = ref.text if ref.text.startswith(ref.kind.replace("oci-layout", "oci") + ":") \
            else f"{ref.kind}:{ref.path}"
        return PreparedImage(uri, image.run_config, image.env, [f"image: {uri} is {_described(image)}"])
    return _from_file(ref, passed_on)


def _for_chrun(ref: ImageRef, env: dict[str, str]) -> PreparedImage:
    from .unpack import building, cached_rootfs, unpack  # ch-run's unpack only (umoci, tempfile)
    cache = image_cache(env)

    def unpacked(image, origin=""):
        rootfs, cached = unpack(image, cache, env)
        what = "cached unpack of" if cached else "unpacked"
        return PreparedImage(rootfs, image.run_config, image.env,
                             [f"image: {what} {image.config_digest}{origin} at {rootfs}"])

    if ref.kind != "minict":
        return _from_file(ref, unpacked)
    from . import minict_tool  # minict images only (subprocess)
    from .layout import TarSource, env_dict, select  # archives and layouts only
    exe = minict_tool.find(env, f"{ref.text}: ch-run needs the image unpacked")
    info = minict_tool.inspect(exe, ref.name, env)
    run_config = (info.get("Config") or {}).get("config") or {}
    rootfs = cached_rootfs(cache, info["Id"])
    if os.path.isdir(rootfs):
        return PreparedImage(rootfs, run_config, env_dict(run_config.get("Env") or []),
                             [f"image: cached unpack of {info['Id']} (minict's {ref.name}) at {rootfs}"])
    with building(os.path.dirname(rootfs)) as work:
        archive = os.path.join(work, "image.tar")
        minict_tool.save(exe, info["ManifestDigest"], archive, env)   # by digest: exactly one image
        source = TarSource(archive)
        try:
            return unpacked(select(source, "oci", ""), f" (minict's {ref.name})")
        finally:
            source.close()


def _for_minict(ref: ImageRef, env: dict[str, str], dry_run: bool) -> PreparedImage:
    from . import minict_tool  # minict images only (subprocess)
    if ref.kind == "minict":
        exe = minict_tool.find(env, f"{ref.text}: names an image of minict's")
        info = minict_tool.inspect(exe, ref.name, env)   # an unknown name: hpcshim's error, exit 43
        run_config = (info.get("Config") or {}).get("config") or {}
        from .layout import env_dict  # archives, layouts, minict images only
        return PreparedImage(ref.name, run_config, env_dict(run_config.get("Env") or []))

    def loaded(image):
        exe = minict_tool.find(env, f"{ref.text}: minict must load the archive first")
        # Run by the manifest digest, which minict keys images by and which no
        # other image can share (its config ID can be shared: the same image
        # loaded from a docker archive gets a manifest of its own). A docker
        # archive has no manifest (minict writes one), so: its name, which the
        # load has just set, else its ID.
        target = image.manifest_digest or image.name or image.config_digest
        if dry_run:
            note = f"image: would load {ref.path} into minict's store (not done: --dry-run)"
        else:
            minict_tool.load(exe, ref.path, env)
            note = (f"image: loaded {ref.path} into minict's store ({env.get('MINICT_ROOT') or 'its default root'}):"
                    " it stays there, with the names it carries (`minict rmi` removes it)")
        return PreparedImage(target, image.run_config, image.env, [note])
    return _from_file(ref, loaded)
