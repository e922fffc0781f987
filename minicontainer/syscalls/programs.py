"""The programs the kernel layer runs: newuidmap/newgidmap (a user
namespace's maps, for a caller without CAP_SETUID) and iptables (NAT).

subprocess and shutil are imported by the call that runs one, not with the
kernel layer: most steps never run a program (minict-oci's start, state,
kill and delete, one process each, pay for every module they import:
minicontainer/oci_cli.py).
"""

import os


def run_program(argv: list[str]):
    """Run argv to its end; its CompletedProcess (text stdout and stderr)."""
    import subprocess   # (see above)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def iptables_path() -> str:
    """iptables from the system's sbin directories (a user's PATH may lack them)."""
    import shutil   # (see above)
    return shutil.which("iptables", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") \
        or "iptables"


def iptables_rules(table: str, chain: str) -> str:
    """`iptables -S CHAIN` of `table` (read only, so not narrated); "" when
    the chain does not exist."""
    try:
        result = run_program([iptables_path(), "-w", "-t", table, "-S", chain])
    except FileNotFoundError:
        return ""   # no iptables here: no rules of minict's either
    return result.stdout if result.returncode == 0 else ""
