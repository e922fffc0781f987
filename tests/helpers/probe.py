"""What one `minict run` loaded, for the tests that keep its start-up cheap
(bench/start times it; the tests check what makes it fast)."""

import json
import subprocess
import sys
from pathlib import Path

# Runs minict's entry point in this interpreter and, when it leaves, writes
# the modules it loaded and whether the cyclic garbage collector is on again
# (the fast path switches it off while it imports), as JSON to the file named
# by argv[1]; the rest of argv is minict's. A finished run leaves by
# os._exit, which skips atexit, so the probe reports from both.
PROBE = """
import atexit, gc, json, os, sys
out = sys.argv.pop(1)
def report():
    with open(out, "w") as f:
        json.dump({"modules": sorted(sys.modules), "gc": gc.isenabled()}, f)
atexit.register(report)
leave = os._exit
os._exit = lambda code: (report(), leave(code))
from minicontainer.entry import main
main(sys.argv[1:])
"""


def probe_run(argv: list[str], env: dict, out: Path) -> dict:
    """Run `minict ARGV` under the probe; it must succeed. Returns
    {"modules": [...], "gc": bool}."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), *argv], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())
