"""The networking lesson runs as written, its checks pass, and it leaves nothing."""

import subprocess

import pytest

from tests.helpers.lessons import readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(": ")[1].split("@")[0] for line in out.splitlines())


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    out = run_walkthrough("networking", tmp_path, min_checks=14,
                          owned_mounts=["/run/netns/minict-lesson-client"])
    # the narration shown comes from the real netlink messages and rules
    assert 'RTM_NEWLINK {ifname="vh' in out and 'kind="veth", peer={ifname="eth0"' in out
    assert "RTM_NEWROUTE {dst=0.0.0.0/0, gateway=10.88.0.1}" in out
    assert "-j DNAT --to-destination 10.88.0." in out
    # no client namespace and no veth of its own are left
    assert not [name for name in links() if name.startswith(("vh", "lesson-", "mct-"))]
    assert "minict-lesson-client" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                       text=True).stdout


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script("networking")
    for text in ("ip -br addr show minict0", "ip -br link show master minict0",
                 "cat /sys/class/net/eth0/iflink", "iptables -t nat -S MINICT-POSTROUTING",
                 "iptables -t nat -S MINICT-DNAT", "network create lesson-net", "route_localnet",
                 "--network lesson-net", "minict-lesson-client", "-p 8080:80"):
        assert text in readme and text in script, text
