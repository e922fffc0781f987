"""A registry of the lesson's own, on loopback, with token auth as Docker Hub has.

    registry.py WORKDIR USER:PASSWORD

Starts Debian's real `docker-registry` (distribution 2.8) on 127.0.0.1 at a
free port, and beside it a small token server (the tests' one,
tests/registry/servers.py): the registry trusts the tokens that server signs,
and the server gives a token for every action to USER with PASSWORD, nothing
to anyone else. When both answer it writes HOST:PORT to WORKDIR/address, then
runs until SIGTERM or SIGINT and stops them. Storage, config, log: under WORKDIR.

Run it with the checkout on PYTHONPATH (walkthrough.sh does):
    PYTHONPATH=REPO .venv/bin/python examples/images-and-registries/registry.py DIR student:secret
"""

import signal
import sys
import threading
from pathlib import Path

from tests.registry.servers import DockerRegistry, TokenServer


def main() -> int:
    if len(sys.argv) != 3 or ":" not in sys.argv[2]:
        print("usage: registry.py WORKDIR USER:PASSWORD", file=sys.stderr)
        return 2
    workdir = Path(sys.argv[1])
    user, _, password = sys.argv[2].partition(":")
    stop = threading.Event()
    # Asked to stop (the walk-through's trap): leave the waiting loop, stop both servers.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    tokens = TokenServer(workdir, {user: password}).start()
    registry = DockerRegistry(workdir / "registry", auth="token", token_server=tokens)
    try:
        registry.start()
        (workdir / "address").write_text(registry.host + "\n")
        while not stop.wait(1):
            pass
    finally:
        registry.stop()
        tokens.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
