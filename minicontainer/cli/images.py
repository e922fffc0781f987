"""Image commands: images, image inspect, rmi, load, import, save, tag."""

import datetime
import json
import sys
from pathlib import Path

import click

from ..image.archive import load
from ..image.export import save_to_file, save_to_stream
from ..image.importer import import_rootfs
from ..image.reference import parse
from ..image.store import Store
from ..runtime.state import containers_using_image
from .listing import print_rows


def _store(ctx) -> Store:
    return Store(ctx.obj.root)


# ---- formatting (docker's conventions) -------------------------------------------------

def human_size(n: int) -> str:
    """docker's units: decimal, three significant digits (4.26MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return f"{n}B"


def human_since(created: str | None, now: datetime.datetime | None = None) -> str:
    if not created:
        return "N/A"
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "N/A"
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seconds = (now - when).total_seconds()
    for limit, size, unit in ((120, 1, "second"), (7200, 60, "minute"), (172800, 3600, "hour"),
                              (1209600, 86400, "day"), (5259600, 604800, "week"),
                              (63115200, 2629800, "month")):
        if seconds < limit:
            value = max(int(seconds // size), 0)
            return f"{value} {unit}{'s' if value != 1 else ''} ago"
    return f"{int(seconds // 31557600)} years ago"


def image_rows(store: Store) -> list[dict]:
    """One row per name (and one for each untagged image), newest first."""
    rows = []
    for image in store.images():
        refs = [parse(n) for n in image.names] or [None]
        for ref in refs:
            rows.append({
                "Repository": ref.familiar_name() if ref else "<none>",
                "Tag": (ref.tag or "<none>") if ref else "<none>",
                "Digest": ref.digest if ref and ref.digest else
                (image.repo_digests[0].partition("@")[2] if image.repo_digests else "<none>"),
                "ID": image.id.partition(":")[2][:12],
                "CreatedAt": image.created or "",
                "CreatedSince": human_since(image.created),
                "Size": human_size(image.size),
                "VirtualSize": image.size,
            })
    rows.sort(key=lambda r: (r["CreatedAt"], r["Repository"], r["Tag"]), reverse=True)
    return rows


# ---- commands ----------------------------------------------------------------------------

@click.command("images")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="table (default) or json (one JSON object per line, like docker).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.pass_context
def images_cmd(ctx, fmt, quiet):
    """List images in the store."""
    print_rows(image_rows(_store(ctx)),
               [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
                ("CREATED", "CreatedSince"), ("SIZE", "Size")], quiet=quiet, fmt=fmt)


@click.group("image")
def image_group():
    """Manage images (inspect)."""


@image_group.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def image_inspect_cmd(ctx, refs):
    """Show an image's config and manifest as JSON."""
    store = _store(ctx)
    out = []
    for ref in refs:
        image = store.resolve(ref)
        out.append({
            "Id": image.id,
            "RepoTags": [_familiar(n) for n in image.names],
            "RepoDigests": image.repo_digests,
            "ManifestDigest": image.manifest_digest,
            "Created": image.created,
            "Architecture": image.config.get("architecture"),
            "Os": image.config.get("os"),
            "Size": image.size,
            "Config": image.config,
            "Manifest": image.manifest,
            "Layers": [{"DiffID": d, "Directory": str(p)}
                       for d, p in zip(image.diff_ids, image.layer_dirs)],
        })
        owners = store.owners_of(image)     # without root only: see idmap.py
        if owners is not None:
            out[-1]["Rootless"] = owners
    click.echo(json.dumps(out, indent=4))


def _familiar(name: str) -> str:
    return parse(name).familiar()


@click.command("rmi")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove an image by ID even if it has several names.")
@click.pass_context
def rmi_cmd(ctx, refs, force):
    """Remove images; delete layers and blobs no other image uses."""
    store = _store(ctx)
    for ref in refs:
        untagged, deleted = store.remove(ref, force=force, in_use=_in_use_checker(ctx.obj))
        for name in untagged:
            click.echo(f"Untagged: {_familiar(name)}")
        if deleted:
            click.echo(f"Deleted: {ref}")


def _in_use_checker(config):
    """Containers using an image (the store asks before it removes one)."""
    def check(image) -> list[str]:
        return containers_using_image(config, image.id)
    return check


@click.command("load")
@click.option("-i", "--input", "source", type=click.Path(exists=True, path_type=Path),
              help="Archive file or OCI layout directory (default: standard input).")
@click.option("--name", metavar="REPO",
              help="Repository for images an OCI layout names only by tag.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Platform to pick from a multi-platform image (default: this machine's).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def load_cmd(ctx, source, name, platform, quiet):
    """Load images from a docker save tarball, an oci-archive or an OCI layout."""
    if source is None and sys.stdin.isatty():
        raise click.UsageError("no input: give -i FILE or pipe an archive to standard input")
    for loaded in load(_store(ctx), source, name=name, platform=platform):
        if not quiet:
            for line in loaded.summary_lines():
                click.echo(line)


@click.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("name")
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help='Dockerfile instruction for the image config, e.g. \'CMD ["sh"]\' (repeatable).')
@click.option("-m", "--message", default="", help="Commit message recorded in the history.")
@click.pass_context
def import_cmd(ctx, source, name, changes, message):
    """Make a one-layer image NAME[:TAG] from a root filesystem (directory or tar)."""
    image = import_rootfs(_store(ctx), source, name, changes=changes, message=message)
    click.echo(image.id)


@click.command("save")
@click.argument("refs", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="FILE",
              help="Write to FILE, whole or not at all (default: standard output).")
@click.option("--format", "fmt", default="docker", metavar="docker|oci",
              help="docker (default): what docker save writes since Docker 25; "
                   "oci: an oci-archive, as skopeo writes it.")
@click.pass_context
def save_cmd(ctx, refs, output, fmt):
    """Write images to a tar archive (IMAGE: NAME:TAG, NAME for all its tags, or an ID)."""
    if output is not None:
        save_to_file(_store(ctx), refs, output, fmt)
        return
    if sys.stdout.isatty():  # as docker does: a terminal is no place for a tar
        raise click.UsageError("refusing to write an image archive to a terminal: "
                               "give -o FILE or redirect standard output")
    save_to_stream(_store(ctx), refs, click.get_binary_stream("stdout"), fmt)


@click.command("tag")
@click.argument("source", metavar="SOURCE")
@click.argument("target", metavar="TARGET")
@click.pass_context
def tag_cmd(ctx, source, target):
    """Give the image SOURCE (a name or an ID) the name TARGET (NAME[:TAG])."""
    _store(ctx).tag(source, target)
