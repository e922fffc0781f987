"""config.json's hooks: programs the runtime runs at named moments.

The runtime spec (config.md, "POSIX-platform Hooks") names six moments;
each hook gets the container's state JSON on its stdin, and a hook that
fails (or outlives its `timeout`) fails the step it belongs to:

  prestart, createRuntime   during create, after the namespaces exist and
                            the mounts are made, before pivot_root; run by
                            the runtime, in the runtime's namespaces
                            (prestart is the older name, deprecated)
  createContainer           during create, before pivot_root, in the
                            container's mount namespace
  startContainer            during start, in the container, just before
                            the command (its path is the container's)
  poststart                 after start, by the runtime (a failure is
                            only a warning: the container runs already)
  poststop                  after delete (the same)
This is how podman's and NVIDIA's hooks, say, inject a GPU: a program
that edits the container from outside while it is being created.
"""

import json
import sys

from ..errors import RunFailed


def run(hooks: dict, moment: str, state: dict, warn_only: bool = False) -> None:
    """Run config.json's `hooks[moment]`, in order, each given `state` on stdin."""
    for hook in hooks.get(moment, []):
        failed = _run_one(hook, state)
        if failed:
            message = f"{moment} hook {hook['path']} {failed}"
            if warn_only:
                print(f"minict-oci: warning: {message}", file=sys.stderr)
                continue
            raise RunFailed(message, "fix the hook, or remove it from config.json")


def preload(hooks: dict) -> None:
    """startContainer hooks run in the container, after pivot_root, where
    the host's files (Python's own library included) are out of reach:
    import now what running them takes."""
    if hooks.get("startContainer"):
        import subprocess  # noqa: F401 (here: loaded before pivot_root, for _run_one)


def _run_one(hook: dict, state: dict) -> str:
    """Why the hook failed ("" when it did not)."""
    import subprocess   # here: most containers have no hooks, and each step pays its imports
    argv = hook.get("args") or [hook["path"]]
    env = dict(item.split("=", 1) for item in hook.get("env", []))
    try:
        result = subprocess.run(argv, executable=hook["path"], env=env,
                                input=json.dumps(state).encode(), capture_output=True,
                                timeout=hook.get("timeout"), check=False)
    except subprocess.TimeoutExpired:
        return f"did not finish within its timeout of {hook['timeout']} s"
    except OSError as exc:
        return f"could not be started: {exc.strerror}"
    if result.returncode != 0:
        return (f"exited with {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()[:200]}")
    return ""
