"""The device controller's rules, the eBPF program built from them, and the
cgroup v1 file writes. Unit tests: the program is run by a small
interpreter of the instructions it uses (tests/helpers/ebpf.py); the
kernel's own verdicts are checked in the VM tier (test_devices_vm.py) and
its verifier on the host (tests/runtime/test_devices_host.py)."""

import pytest

from minicontainer.cgroups import device_program
from minicontainer.cgroups.devices import (DEFAULT_RULES, DeviceRule, apply_v1, check_access,
                                           rules_for)
from minicontainer.runtime.flags import DeviceNode
from tests.helpers import ebpf

pytestmark = pytest.mark.unit

# runc's default list (libcontainer/specconv AllowedDevices), as devices.allow lines.
RUNC_DEFAULTS = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                 "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]


def test_the_default_rules_are_runcs_list():
    assert [r.v1_line() for r in rules_for()] == RUNC_DEFAULTS
    assert DEFAULT_RULES[2].text() == "allow c 1:3 rwm /dev/null"
    assert DEFAULT_RULES[-1].text() == "allow c 136:* rwm /dev/pts/*"


def test_extra_nodes_are_added_once_and_privileged_is_everything():
    loop = DeviceNode("/dev/loop0", "b", 7, 0, access="rw")
    null_again = DeviceNode("/dev/null", "c", 1, 3)
    rules = rules_for([loop, null_again, loop])
    assert [r.v1_line() for r in rules] == RUNC_DEFAULTS + ["b 7:0 rw"]
    assert rules[-1].text() == "allow b 7:0 rw /dev/loop0"
    assert [r.text() for r in rules_for([loop], privileged=True)] == \
        ["allow a *:* rwm (every device: --privileged)"]


@pytest.mark.parametrize("access, ok", [("rwm", True), ("r", True), ("mw", True), ("", False),
                                        ("rr", False), ("x", False), ("rwmx", False)])
def test_access_letters(access, ok):
    assert check_access(access) is ok


# (type, major, minor, access) -> what runc's default list says
DEFAULT_VERDICTS = [
    ("c", 1, 3, "rw", 1),          # /dev/null
    ("c", 1, 9, "r", 1),           # /dev/urandom
    ("c", 5, 2, "rw", 1),          # /dev/ptmx
    ("c", 136, 7, "rw", 1),        # /dev/pts/7
    ("c", 1, 1, "r", 0),           # /dev/mem
    ("c", 1, 4, "rw", 0),          # /dev/port
    ("b", 7, 0, "r", 0),           # a loop device: the escape
    ("b", 8, 0, "w", 0),           # the first disk
    ("b", 7, 0, "m", 1),           # making the node is harmless, and allowed
    ("c", 195, 0, "m", 1),
    ("b", 7, 0, "rm", 0),          # ...but not together with a read
    ("b", 136, 7, "rw", 0),        # 136 is a pts major for character devices only
    ("c", 10, 200, "rw", 0),       # /dev/net/tun is not in runc's list
]


@pytest.mark.parametrize("kind, major, minor, access, verdict", DEFAULT_VERDICTS)
def test_the_default_program_allows_exactly_the_list(kind, major, minor, access, verdict):
    program = device_program.assemble(rules_for())
    assert ebpf.run(program, kind, major, minor, access) == verdict


def test_an_extra_node_is_allowed_only_what_it_was_given():
    program = device_program.assemble(rules_for([DeviceNode("/dev/loop0", "b", 7, 0, access="r"),
                                                 DeviceNode("/dev/nvidia1", "c", 195, 1)]))
    assert ebpf.run(program, "b", 7, 0, "r") == 1
    assert ebpf.run(program, "b", 7, 0, "w") == 0       # asked for read only
    assert ebpf.run(program, "b", 7, 1, "r") == 0       # another loop device
    assert ebpf.run(program, "c", 195, 1, "rw") == 1
    assert ebpf.run(program, "c", 195, 0, "rw") == 0    # a GPU that was not selected
    assert ebpf.run(program, "c", 1, 3, "rw") == 1      # the defaults still hold


def test_privileged_allows_everything_and_has_no_dead_code():
    program = device_program.assemble(rules_for(privileged=True))
    for kind, major, minor, access, _ in DEFAULT_VERDICTS:
        assert ebpf.run(program, kind, major, minor, access) == 1
    assert ebpf.reachable(program) == set(range(device_program.instruction_count(program)))


@pytest.mark.parametrize("rules", [rules_for(), rules_for(privileged=True),
                                   rules_for([DeviceNode("/dev/sda", "b", 8, 0, access="m")]),
                                   [DeviceRule("a", 4, None, "r", "any type, major 4")]])
def test_every_instruction_is_reachable_and_the_program_ends_in_exit(rules):
    """The kernel's verifier refuses unreachable code and a fall off the end."""
    program = device_program.assemble(rules)
    count = device_program.instruction_count(program)
    assert ebpf.reachable(program) == set(range(count))
    assert ebpf.decode(program)[-1][0] == device_program.EXIT


def test_a_rule_for_any_type_checks_only_what_it_names():
    program = device_program.assemble([DeviceRule("a", 4, None, "r", "tty majors")])
    assert ebpf.run(program, "c", 4, 9, "r") == ebpf.run(program, "b", 4, 1, "r") == 1
    assert ebpf.run(program, "c", 4, 9, "w") == ebpf.run(program, "c", 5, 9, "r") == 0


def test_v1_denies_everything_then_allows_each_rule(tmp_path):
    """A v1 devices cgroup starts with its parent's list: deny "a" must come first."""
    writes = []
    rules = rules_for([DeviceNode("/dev/loop3", "b", 7, 3, access="rw")])
    apply_v1(tmp_path, rules, lambda sentence, call=None: writes.append(call))
    assert writes[0] == f"write 'a' to {tmp_path}/devices.deny"
    assert writes[1:] == [f"write '{line}' to {tmp_path}/devices.allow"
                          for line in RUNC_DEFAULTS + ["b 7:3 rw"]]
    assert (tmp_path / "devices.allow").read_text() == "b 7:3 rw"   # (a file here: the last write)
