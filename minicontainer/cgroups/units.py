"""Sizes the way docker reads and prints them.

Reading: docker's `--memory 64m` family uses binary multiples (k = 1024) and
is forgiving about the spelling: `64m`, `64M`, `64mb`, `64MiB`, `64 m` and
`1.5g` all mean what a person expects. A plain number is bytes.

Printing: `docker stats` shows memory in binary units ("1.5MiB") and block
I/O in decimal ones ("2.1MB"), each with four significant digits. We follow
both conventions so numbers can be compared with docker's side by side.
"""

import re

_BINARY = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
           "t": 1 << 40, "p": 1 << 50}

# number, optional single space, optional unit letter, optional "i", optional "b"
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a docker-style size ("64m", "1.5g", "512k", "1048576").

    Raises ValueError (the caller words the user-facing message, because
    only it knows which flag the value belongs to).
    """
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    return int(float(number) * _BINARY[unit.lower()])


def describe_bytes(n: int) -> str:
    """A short exact-if-possible phrase for narration: 67108864 -> '64 MiB'."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n} bytes"


def _four_digits(value: float, base: float, units: list[str]) -> str:
    i = 0
    while value >= base and i < len(units) - 1:
        value /= base
        i += 1
    return f"{value:.4g}{units[i]}"


def binary_size(n: int) -> str:
    """docker's BytesSize: 1.953MiB, 2GiB, 512B (memory columns)."""
    return _four_digits(float(n), 1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])


def decimal_size(n: int) -> str:
    """docker's HumanSize: 2.097MB, 0B (block and network I/O columns)."""
    return _four_digits(float(n), 1000.0, ["B", "kB", "MB", "GB", "TB", "PB"])
