"""What one `minict` command loaded (for the tests that check an optional
dependency, such as hpcshim or the registry client, is imported only when
it is needed)."""

import json
import subprocess
import sys
from pathlib import Path

# Runs minict's entry point in this interpreter and, when it leaves, writes
# the modules it loaded as JSON to the file named by argv[1]; the rest of
# argv is minict's.
PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
def report():
    with open(out, "w") as f:
        json.dump({"modules": sorted(sys.modules)}, f)
atexit.register(report)
from minicontainer.cli import main
main(sys.argv[1:])
"""


def probe_run(argv: list[str], env: dict, out: Path) -> dict:
    """Run `minict ARGV` under the probe; it must succeed. Returns {"modules": [...]}."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), *argv], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())
