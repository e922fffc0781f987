"""Asking the `minict` program about its images: inspect, save, load, remove.

hpcshim never imports minicontainer (GPU nodes install hpcshim alone, without
minict's compiled dependencies); it runs `minict` like any other tool, with
the caller's environment, so MINICT_ROOT and friends pick the same store the
job would use.
"""

import json
import os
import shutil
import subprocess

from ..errors import ConversionFailed, ToolNotFound, UnknownImage


def find(env: dict[str, str], why: str) -> str:
    exe = shutil.which("minict", path=env.get("PATH", os.defpath))
    if exe is None:
        raise ToolNotFound(f"{why}, and `minict` is not on PATH",
                           hint="install minicontainer, or give an archive (minict save -o FILE IMAGE)")
    return exe


def inspect(exe: str, name: str, env: dict[str, str]) -> dict:
    """`minict image inspect NAME`: Id (the config digest), ManifestDigest, Config."""
    done = _run([exe, "image", "inspect", name], env)
    if done.returncode != 0:
        raise UnknownImage(f"minict has no image {name!r}: {_message(done)}",
                           hint="see `minict images`, or pull/load it first")
    try:
        return json.loads(done.stdout)[0]
    except (ValueError, IndexError, KeyError) as exc:
        raise ConversionFailed(f"`minict image inspect {name}` printed no image record",
                               hint="check the minict installation") from exc


def save(exe: str, name: str, dest: str, env: dict[str, str]) -> None:
    """An oci-archive of NAME at dest (minict writes it whole or not at all)."""
    done = _run([exe, "save", "--format", "oci", "-o", dest, name], env)
    if done.returncode != 0:
        raise ConversionFailed(f"minict save {name} failed: {_message(done)}",
                               hint="is there disk space in the cache (HPCSHIM_CACHE_DIR)?")


def load(exe: str, path: str, env: dict[str, str]) -> None:
    done = _run([exe, "load", "-q", "-i", path], env)
    if done.returncode != 0:
        raise ConversionFailed(f"minict load -i {path} failed: {_message(done)}",
                               hint="check the archive with `minict load -i` yourself")


def remove(exe: str, image_id: str, env: dict[str, str]) -> None:
    """`minict rmi -f ID`: the image and whatever blobs and layers only it used."""
    done = _run([exe, "rmi", "-f", image_id], env)
    if done.returncode != 0:
        raise ConversionFailed(f"minict rmi {image_id} failed: {_message(done)}",
                               hint="check the minict installation")


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolNotFound(f"cannot run {argv[0]}: {exc.strerror}", hint="check the minict installation") from exc


def _message(done: subprocess.CompletedProcess) -> str:
    text = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
    return text.removeprefix("minict: ")
