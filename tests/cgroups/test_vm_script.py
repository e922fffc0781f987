"""scripts/vm-test.sh fails loudly before booting anything it cannot boot.

(The boot itself is exercised by running the tier: scripts/test.sh does.)
"""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def vm_test(env_kernel: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "vm-test.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "VM_KERNEL": env_kernel}, timeout=60)


def test_a_file_that_is_not_a_kernel_is_refused(tmp_path):
    junk = tmp_path / "vmlinuz-junk"
    junk.write_bytes(b"\0" * 4096)
    result = vm_test(str(junk))
    assert result.returncode == 1
    assert result.stderr == f"vm-test: {junk} is not a bootable x86 kernel image (bzImage)\n"


def test_a_missing_kernel_is_refused(tmp_path):
    result = vm_test(str(tmp_path / "nope"))
    assert result.returncode == 1
    assert result.stderr == f"vm-test: cannot read kernel {tmp_path / 'nope'}\n"


def test_the_guest_wrapper_refuses_to_run_outside_the_vm(tmp_path):
    result = subprocess.run([str(REPO / "scripts" / "vm-guest.sh"), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "runs inside the test VM" in result.stderr
    assert (tmp_path / "status").read_text() == "1\n"
