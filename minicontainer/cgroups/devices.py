"""Which device nodes a container may use: the device controller's rules.

A device node is only a name for (type, major, minor): `mknod /tmp/d b 8 0`
makes a second name for the host's first disk, and anything in an image
layer can be one too. Making a node is harmless; opening it is not. So
docker and runc keep CAP_MKNOD in a container's default set, and rely on
the cgroup's device controller, which the kernel asks at every open() and
mknod() of a device node by a process in the cgroup. Without it, a default
container can read and write every disk of the host.

The rules here are runc's default list (libcontainer/specconv's
AllowedDevices), each an allow rule, everything else denied:

    allow c *:* m        make any character device node (but not open it)
    allow b *:* m        make any block device node (but not open it)
    allow c 1:3 rwm      /dev/null     (and zero, full, random, urandom)
    allow c 5:0 rwm      /dev/tty      (and console 5:1, ptmx 5:2)
    allow c 136:* rwm    /dev/pts/*    the container's terminals

plus one rule per node given with --device or by a GPU plan, or, with
--privileged, the single rule `allow a *:* rwm`.

Two ways to give the kernel these rules:

- cgroup v2 has no devices control file: the rules become a small eBPF
  program attached to the cgroup (device_program.py assembles it, and
  syscalls.Kernel.attach_device_program loads and attaches it).
- cgroup v1 has a `devices` controller with two files: write "a" to
  devices.deny (deny all), then each rule to devices.allow (apply_v1).

(Documentation/admin-guide/cgroup-v1/devices.rst; for v2, the "Device
controller" section of cgroup-v2.rst.)
"""

from collections import namedtuple
from pathlib import Path

from .hierarchy import write

ACCESS_LETTERS = "rwm"   # read, write, mknod


class DeviceRule(namedtuple("DeviceRule", "type major minor access what")):
    """One allow rule: devices of `type` ("c" character, "b" block, "a"
    both) with `major`:`minor` (None: any, written "*"), for the `access`
    letters from "rwm". `what` names it for a reader (/dev/null)."""
    __slots__ = ()

    def numbers(self) -> str:
        def shown(n):
            return "*" if n is None else str(n)
        return f"{shown(self.major)}:{shown(self.minor)}"

    def v1_line(self) -> str:
        """The rule as devices.allow takes it: "c 1:3 rwm"."""
        return f"{self.type} {self.numbers()} {self.access}"

    def text(self) -> str:
        """The rule as --explain shows it: "allow c 1:3 rwm /dev/null"."""
        return f"allow {self.v1_line()} {self.what}"


# runc's default list (see the module docstring). Documentation/admin-guide/devices.txt
# gives the numbers.
DEFAULT_RULES = (
    DeviceRule("c", None, None, "m", "(mknod of any character device)"),
    DeviceRule("b", None, None, "m", "(mknod of any block device)"),
    DeviceRule("c", 1, 3, "rwm", "/dev/null"),
    DeviceRule("c", 1, 5, "rwm", "/dev/zero"),
    DeviceRule("c", 1, 7, "rwm", "/dev/full"),
    DeviceRule("c", 1, 8, "rwm", "/dev/random"),
    DeviceRule("c", 1, 9, "rwm", "/dev/urandom"),
    DeviceRule("c", 5, 0, "rwm", "/dev/tty"),
    DeviceRule("c", 5, 1, "rwm", "/dev/console"),
    DeviceRule("c", 5, 2, "rwm", "/dev/ptmx"),
    DeviceRule("c", 136, None, "rwm", "/dev/pts/*"),
)

EVERY_DEVICE = (DeviceRule("a", None, None, "rwm", "(every device: --privileged)"),)


def rules_for(devices=(), privileged: bool = False) -> list[DeviceRule]:
    """The rules for a container: runc's defaults plus one per extra node.

    `devices`: records with path, type, major, minor and access (the
    spec's DeviceNode: --device, GPU plans). A rule already in the list is
    not repeated (two identical blocks in the eBPF program would be dead
    code, which the kernel's verifier refuses).
    """
    if privileged:
        return list(EVERY_DEVICE)
    rules = list(DEFAULT_RULES)
    for node in devices:
        rule = DeviceRule(node.type, node.major, node.minor, node.access, node.path)
        if not any(r[:4] == rule[:4] for r in rules):
            rules.append(rule)
    return rules


def check_access(access: str) -> bool:
    """Is `access` a non-empty set of letters from "rwm", each once?"""
    return bool(access) and set(access) <= set(ACCESS_LETTERS) and len(set(access)) == len(access)


def apply_v1(cgroup_dir: Path, rules, explain) -> None:
    """Give a cgroup v1 devices cgroup exactly `rules`: deny everything,
    then allow each rule. (A new v1 cgroup inherits its parent's list,
    which may allow everything: hence the deny first.)"""
    write(Path(cgroup_dir) / "devices.deny", "a",
           "Deny every device in the container's v1 devices cgroup, then allow the list",
           explain)
    for rule in rules:
        write(Path(cgroup_dir) / "devices.allow", rule.v1_line(),
               f"Allow {rule.what}", explain)
