"""Build a busybox root filesystem offline from Debian's busybox-static.

Every test image starts here: /bin/busybox plus a link per applet, a tiny
/etc (passwd with a non-root user, group), and the empty directories a
container runtime mounts onto. Nothing is downloaded.
"""

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
student:x:1000:1000:Student:/home/student:/bin/sh
"""

GROUP = """root:x:0:
daemon:x:1:
users:x:100:student
student:x:1000:
nogroup:x:65534:
"""


def applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list-full"], check=True,
                         capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def build_busybox_rootfs(dest: Path) -> Path:
    """Create a busybox rootfs in dest (which must not exist or be empty)."""
    if not BUSYBOX.exists():
        raise RuntimeError("/bin/busybox missing: apt-get install busybox-static "
                           "(scripts/setup.sh does this)")
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp",
              "home/student", "proc", "sys", "dev", "var/log", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    for full in applets():
        rel = full.lstrip("/")
        if rel == "bin/busybox":
            continue
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/bin/busybox")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
    (dest / "etc/os-release").write_text('NAME="busybox"\nID=busybox\n')
    os.chown(dest / "home/student", 1000, 1000) if os.geteuid() == 0 else None
    return dest


if __name__ == "__main__":  # python -m tests.helpers.busybox DEST  (used by scripts/demo.sh)
    import sys
    print(build_busybox_rootfs(Path(sys.argv[1])))
