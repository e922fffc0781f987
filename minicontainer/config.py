"""Where minict keeps things: the persistent root and the runtime state dir.

- root (`--root`, `MINICT_ROOT`, default /var/lib/minict): the image store and
  container records that must survive a reboot.
- state (`--state`, `MINICT_STATE`, default /run/minict): pids, live mounts,
  locks; a reboot clears it, which is exactly right for them.

Without root (runtime/rootless.py) the defaults are the user's own places,
as the XDG base directory spec names them: $XDG_DATA_HOME/minict (else
~/.local/share/minict) and $XDG_RUNTIME_DIR/minict (else /tmp/minict-UID).
"""

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/var/lib/minict"
DEFAULT_STATE = "/run/minict"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def default_root() -> str:
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(data, "minict")


def default_state() -> str:
    if os.geteuid() == 0:
        return DEFAULT_STATE
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "minict") if runtime else f"/tmp/minict-{os.geteuid()}"


@dataclass
class Config:
    """The settings every minict command reads (the global flags, or their
    environment variables)."""
    root: Path              # --root / MINICT_ROOT
    state: Path             # --state / MINICT_STATE
    explain: bool = False   # --explain / MINICT_EXPLAIN=1

    def not_writable(self) -> tuple[str, Path] | None:
        """("store" or "state directory", its path) for the first of the two
        this process may not make or change, or None. A directory not made
        yet counts as its nearest existing parent. (os.path.exists, not
        Path.exists: below a directory the user may not enter, Path.exists
        raises PermissionError; this walks up to it.)"""
        for what, path in (("store", self.root), ("state directory", self.state)):
            existing = path
            while not os.path.exists(existing):
                existing = existing.parent
            if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
                return what, path
        return None

    @classmethod
    def from_env(cls, root: str | None = None, state: str | None = None,
                 explain: bool | None = None) -> "Config":
        return cls(
            root=Path(root or os.environ.get("MINICT_ROOT") or default_root()).absolute(),
            state=Path(state or os.environ.get("MINICT_STATE") or default_state()).absolute(),
            explain=_env_flag("MINICT_EXPLAIN") if explain is None else explain,
        )
