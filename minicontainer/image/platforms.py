"""Platforms (os/arch/variant) and picking a manifest from an image index.

An OCI image index (or Docker manifest list) lists one manifest per
platform (image-spec image-index.md, "platform"). A runtime picks the one that
matches the machine it runs on, or the one the user asked for with
`--platform os/arch[/variant]`.
"""

import platform as _platform
from dataclasses import dataclass

from ..errors import BadArgument, NoMatchingPlatform

# uname -m -> the GOARCH names OCI uses (image-spec config.md "architecture")
_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, other: dict) -> bool:
        """Does an index entry's `platform` object fit this platform?"""
        if other.get("os") != self.os or other.get("architecture") != self.architecture:
            return False
        theirs = other.get("variant")
        if self.variant is None or theirs is None:
            return True  # unspecified variant fits any (arm64 images often omit "v8")
        return theirs == self.variant


def host_platform() -> Platform:
    machine = _platform.machine()
    arch, variant = _MACHINE_TO_ARCH.get(machine, (machine, None))
    # Only arm needs the variant to choose; arm64's is nearly always v8.
    return Platform("linux", arch, variant if arch == "arm" else None)


def parse_platform(text: str | None) -> Platform:
    if not text:
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadArgument(f"invalid platform {text!r}", "use os/arch[/variant], e.g. linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def select_manifest(index: dict, wanted: Platform, what: str) -> dict:
    """Return the descriptor in `index` for `wanted`; raise NoMatchingPlatform."""
    candidates = [d for d in index.get("manifests", [])
                  if d.get("platform") and wanted.matches(d["platform"])]
    # Prefer an exact variant match over an "any variant" one.
    exact = [d for d in candidates if d["platform"].get("variant") == wanted.variant]
    chosen = (exact or candidates)
    if chosen:
        return chosen[0]
    offered = sorted({_describe(d.get("platform") or {}) for d in index.get("manifests", [])})
    raise NoMatchingPlatform(
        f"{what} has no image for {wanted} (it has: {', '.join(offered) or 'none'})",
        "pick one of those with --platform")


def _describe(p: dict) -> str:
    return str(Platform(p.get("os", "?"), p.get("architecture", "?"), p.get("variant")))
