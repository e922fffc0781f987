"""The Vagrantfile and its provisioner (Vagrant itself cannot run here), and
setup.sh's second run, which must write nothing (the VM tier runs the
provisioner on a read-only view of the checkout).

The Vagrantfile is checked twice: `ruby -c` for syntax, then evaluated with a
stand-in `Vagrant` module that records every setting, so the test reads what
`vagrant up` would be told. The provisioner runs for real in the VM tier.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "scripts" / "vagrant-provision.sh"

# A stand-in for Vagrant's configuration object: records "a.b.c = value" and
# "a.b(args)" calls as JSON; provider/define blocks are recorded under their name.
RECORDER = r'''
require "json"
class Recorder
  def initialize(path, log)
    @path, @log = path, log
  end
  def method_missing(name, *args, **kwargs, &block)
    key = (@path + [name.to_s]).join(".")
    if name.to_s.end_with?("=")
      @log << [key.chomp("="), args[0]]
      return args[0]
    end
    @log << [key, args, kwargs] unless args.empty? && kwargs.empty?
    block.call(Recorder.new(@path + [name.to_s] + args.map(&:to_s), @log)) if block
    Recorder.new(@path + [name.to_s], @log)
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(version)
    log = []
    yield Recorder.new(["config"], log)
    puts JSON.generate([version, log])
  end
end
load ARGV[0]
'''


def ruby() -> str:
    path = shutil.which("ruby")
    if not path:
        pytest.skip("ruby is not installed (scripts/setup.sh installs it)")
    return path


@pytest.mark.unit
def test_vagrantfile_syntax():
    result = subprocess.run([ruby(), "-c", str(REPO / "Vagrantfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syntax OK"


@pytest.fixture(scope="module")
def vagrant_settings(tmp_path_factory) -> dict:
    stub = tmp_path_factory.mktemp("vagrant") / "recorder.rb"
    stub.write_text(RECORDER)
    out = subprocess.run([ruby(), str(stub), str(REPO / "Vagrantfile")], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    version, log = json.loads(out)
    assert version == "2"
    settings: dict = {}
    for entry in log:
        settings.setdefault(entry[0], []).append(entry[1:] if len(entry) > 2 else entry[1])
    return settings


@pytest.mark.unit
def test_vagrantfile_box_has_cgroup_v2_by_default(vagrant_settings):
    # Debian 12 and Ubuntu 24.04 boot with the unified hierarchy.
    assert vagrant_settings["config.vm.box"] in (["debian/bookworm64"], ["bento/ubuntu-24.04"])


@pytest.mark.unit
def test_vagrantfile_both_providers_get_memory_and_cpus(vagrant_settings):
    providers = [args[0][0] for args in vagrant_settings["config.vm.provider"]]
    assert sorted(providers) == ["libvirt", "virtualbox"]
    for provider in providers:
        assert vagrant_settings[f"config.vm.provider.{provider}.memory"] == [2048]
        assert vagrant_settings[f"config.vm.provider.{provider}.cpus"] == [2]


@pytest.mark.unit
def test_vagrantfile_provisions_with_the_readme_install(vagrant_settings):
    [(args, kwargs)] = vagrant_settings["config.vm.provision"]
    assert args == ["shell"]
    assert kwargs["path"] == "scripts/vagrant-provision.sh"
    assert (REPO / kwargs["path"]).is_file() and os.access(REPO / kwargs["path"], os.X_OK)
    [project_dir] = kwargs["args"]
    synced = {a[0][1]: (a[0], a[1]) for a in vagrant_settings["config.vm.synced_folder"]}
    assert synced["/vagrant"][1] == {"disabled": True}
    assert synced[project_dir][1]["type"] == "rsync"
    # the host's .venv is built for the host's path: never copy it in
    assert ".venv/" in synced[project_dir][1]["rsync__exclude"]
    assert "scripts/setup.sh" in PROVISION.read_text()


@pytest.mark.unit
def test_provisioner_refuses_a_directory_without_the_project(tmp_path):
    result = subprocess.run([str(PROVISION), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == f"vagrant-provision: no scripts/setup.sh under {tmp_path} " \
                            "(is the synced folder there?)\n"


@pytest.mark.cgroup2
@pytest.mark.root
def test_provisioner_runs_in_a_cgroup_v2_machine():
    # One run (~30 s over 9p): setup.sh is a no-op on a machine already set up,
    # which is the second `vagrant provision` case.
    if os.environ.get("MINICT_VM_TIER") != "1":
        pytest.skip("writes /usr/local/bin: runs only inside the VM tier (scripts/vm-test.sh)")
    result = subprocess.run([str(PROVISION), str(REPO)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "vagrant-provision: ready: minict, version" in result.stdout
    assert os.readlink("/usr/local/bin/minict") == str(REPO / ".venv" / "bin" / "minict")
    version = subprocess.run(["/usr/local/bin/minict", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "minict" in version.stdout


@pytest.mark.root
def test_setup_on_a_machine_already_set_up_writes_nothing_into_the_checkout():
    # The provisioner test above relies on this, and it runs where the checkout
    # is read-only (the VM tier's view of the host). Here, on the host, the
    # checkout is made read-only the same way, in a private mount namespace, so
    # a write that crept into a second setup.sh run fails on every checkout,
    # not only on one outside the VM's writable /tmp.
    script = 'mount --bind -o ro "$1" "$1" && "$1/scripts/setup.sh"'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private",
                             "sh", "-c", script, "sh", str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
