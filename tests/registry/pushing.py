"""Getting test images into a registry.

- skopeo_push: `skopeo copy` from an OCI layout (built offline with
  tests/helpers/images.py) to the registry, the way people really push.
- multiarch_layout: an OCI layout whose index.json points at an image
  index with linux/amd64 and linux/arm64 manifests (for `skopeo copy --all`).
- raw_push: the distribution API's push (POST an upload, PUT the blob,
  PUT the manifest), for artifacts skopeo has no reason to make, like a
  manifest whose config is not an image config.
"""

import hashlib
import json
import subprocess
from pathlib import Path

import requests

from tests.helpers.images import OCI_INDEX, ImageBuilder, tar_of, Entry, write_tree


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo_push(layout: Path, dest: str, creds: str | None = None, all_images: bool = False,
                tag: str = "latest") -> None:
    """Copy oci:LAYOUT:TAG to docker://DEST over plain HTTP."""
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        argv += ["--dest-creds", creds]
    if all_images:
        argv.append("--all")
    argv += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"skopeo copy failed: {done.stderr}"


def marker_layer(arch: str) -> bytes:
    return tar_of([Entry.dir("etc"), Entry.file("etc/arch", f"{arch}\n".encode())])


def multiarch_layout(dest: Path, base_tar: bytes, tag: str = "latest") -> dict:
    """An OCI layout holding one image index for linux/amd64 and linux/arm64.

    Both images share the busybox base layer and add /etc/arch naming
    their architecture. Returns {"index": digest, "amd64": digest, "arm64": digest}.
    """
    files, descriptors, digests = {}, [], {}
    for arch in ("amd64", "arm64"):
        image = ImageBuilder(architecture=arch)
        image.add_layer(base_tar, "gzip").add_layer(marker_layer(arch), "gzip")
        descriptor = image.manifest_descriptor()
        descriptors.append(descriptor)
        digests[arch] = descriptor["digest"]
        for digest, data in image.blobs.items():
            files[f"blobs/sha256/{digest[7:]}"] = data
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": descriptors}, sort_keys=True).encode()
    digests["index"] = sha256(index)
    files[f"blobs/sha256/{digests['index'][7:]}"] = index
    files["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    files["index.json"] = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": digests["index"], "size": len(index),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}).encode()
    write_tree(Path(dest), files)
    return digests


def raw_push(host: str, repo: str, tag: str, manifest: bytes, media_type: str,
             blobs: list[bytes], auth=None) -> str:
    """distribution-spec "Push": blobs by POST + PUT, then the manifest."""
    base = f"http://{host}/v2/{repo}"
    for data in blobs:
        started = requests.post(f"{base}/blobs/uploads/", auth=auth, timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        if location.startswith("/"):
            location = f"http://{host}{location}"
        sep = "&" if "?" in location else "?"
        done = requests.put(f"{location}{sep}digest={sha256(data)}", data=data, auth=auth,
                            headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert done.status_code == 201, done.text
    put = requests.put(f"{base}/manifests/{tag}", data=manifest, auth=auth,
                       headers={"Content-Type": media_type}, timeout=30)
    assert put.status_code == 201, put.text
    return sha256(manifest)
