"""Where minict keeps things: the persistent root and the runtime state dir.

- root (`--root`, `MINICT_ROOT`, default /var/lib/minict): the image store and
  container records that must survive a reboot.
- state (`--state`, `MINICT_STATE`, default /run/minict): pids, live mounts,
  locks; a reboot clears it, which is exactly right for them.
"""

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/var/lib/minict"
DEFAULT_STATE = "/run/minict"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Config:
    """The settings every minict command reads (the global flags, or their
    environment variables)."""
    root: Path              # --root / MINICT_ROOT
    state: Path             # --state / MINICT_STATE
    explain: bool = False   # --explain / MINICT_EXPLAIN=1

    @classmethod
    def from_env(cls, root: str | None = None, state: str | None = None,
                 explain: bool | None = None) -> "Config":
        return cls(
            root=Path(root or os.environ.get("MINICT_ROOT") or DEFAULT_ROOT).absolute(),
            state=Path(state or os.environ.get("MINICT_STATE") or DEFAULT_STATE).absolute(),
            explain=_env_flag("MINICT_EXPLAIN") if explain is None else explain,
        )
