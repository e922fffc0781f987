"""Where minict keeps things: the persistent root and the runtime state dir.

- root (`--root`, `MINICT_ROOT`, default /var/lib/minict): the image store and
  container records that must survive a reboot.
- state (`--state`, `MINICT_STATE`, default /run/minict): pids, live mounts,
  locks; a reboot clears it, which is exactly right for them.
"""

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/minict"
DEFAULT_STATE = "/run/minict"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Config:
    """(A plain class, not a dataclass: `minict run` imports this first, and
    the dataclasses module alone costs more start-up time than the whole
    container setup. See bench/start.)"""

    def __init__(self, root: Path, state: Path, explain: bool = False):
        self.root = root
        self.state = state
        self.explain = explain

    def __repr__(self) -> str:
        return f"Config(root={self.root!r}, state={self.state!r}, explain={self.explain!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and vars(self) == vars(other)

    @classmethod
    def from_env(cls, root: str | None = None, state: str | None = None,
                 explain: bool | None = None) -> "Config":
        return cls(
            root=Path(root or os.environ.get("MINICT_ROOT") or DEFAULT_ROOT).absolute(),
            state=Path(state or os.environ.get("MINICT_STATE") or DEFAULT_STATE).absolute(),
            explain=_env_flag("MINICT_EXPLAIN") if explain is None else explain,
        )
