"""The boundaries docs/ARCHITECTURE.md promises, checked on the source.

- One kernel layer: outside minicontainer/syscalls/, nothing in minicontainer/
  makes a kernel-facing call itself. Each is a call of Kernel (narrated with
  --explain, recorded by RecordingKernel). Kernel-facing here means what
  changes what a process sees or may do: processes (fork, kill, sessions,
  pidfds), namespaces (setns, unshare, and the /proc/PID/ns files that
  setns takes), mounts, device nodes, identity, limits, terminals (ioctl),
  stdio (dup2) and execve. Plain file and directory work (a layer's files,
  the store, records), reading /proc, waiting for a child and the user's own
  terminal modes (termios) are not. Nor are imports of the C library (ctypes)
  or of the bindings that make such calls (prctl, pyroute2).
- libseccomp's bindings: only runtime/syscall_filter.py imports them; it and
  oci/seccomp.py build filters with them (Kernel.load_seccomp loads them).
- baselib: only baselib/inroot.py reaches the kernel through ctypes
  (openat2, shared with hpcshim).
- hpcshim imports nothing of minicontainer, and nothing that needs a compiler.
- cgroups/ and network/ import nothing of runtime/.
- oci/ (minict-oci, bundle -> process) imports nothing of image/, build/,
  network/ or the CLIs, nor runtime/'s engine half (the spec, the bundle
  writer, the owner, records, networks); nothing below it imports oci/, and
  in runtime/ only the owner (launch.py), the init it forks (child.py)
  and minict exec (exec.py) do: minict run's container runs minict-oci's
  init, and minict exec joins with minict-oci's exec. minict-oci's own CLI
  (oci_cli.py) does not import click (an engine runs it three times per
  container).
- Imports are at the top of a module, except those of optional or heavy
  dependencies, made where used: each says why on its line.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent

KERNEL_FACING = {
    "os.fork", "os.forkpty", "os.dup2", "os.mknod", "os.setns", "os.unshare", "os.kill", "os.killpg",
    "os.setsid", "os.setpgid", "os.tcsetpgrp", "os.setresuid", "os.setresgid", "os.setuid",
    "os.setgid", "os.setgroups", "os.execv", "os.execve", "os.execvp", "os.execvpe", "os.chroot",
    "os.pidfd_open", "os.sethostname", "os.openpty", "os.login_tty", "signal.pidfd_send_signal",
    "fcntl.ioctl", "resource.setrlimit", "pty.openpty", "pty.fork",
}
KERNEL_BINDINGS = {"ctypes", "prctl", "pyroute2"}


def modules(package: str) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path)))
            for path in sorted((REPO / package).rglob("*.py"))]


def imported(tree) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module or ""))
    return found


def relative_imports(tree, path: Path) -> list[tuple[int, str]]:
    """Relative imports as absolute module names (from ..runtime import x -> minicontainer.runtime)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
    return found


def calls(tree) -> list[tuple[int, str]]:
    """module.function(...) calls, by name (os.fork, fcntl.ioctl...)."""
    return [(node.lineno, f"{node.func.value.id}.{node.func.attr}") for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)]


def opens_a_namespace_file(tree) -> list[int]:
    """os.open/open of a /proc/PID/ns/KIND path (what Kernel.open_namespace does)."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name != "open":
            continue
        parts = node.args[0].values if isinstance(node.args[0], ast.JoinedStr) else [node.args[0]]
        text = "".join(p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str))
        if "/ns/" in text:
            found.append(node.lineno)
    return found


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def outside_the_kernel_layer():
    return [(path, tree) for path, tree in modules("minicontainer")
            if "syscalls" not in path.relative_to(REPO / "minicontainer").parts]


def test_kernel_facing_calls_go_through_the_kernel_layer():
    found = []
    for path, tree in outside_the_kernel_layer():
        found += [f"{where(path, line)}: {name}" for line, name in calls(tree) if name in KERNEL_FACING]
        found += [f"{where(path, line)}: opens a /proc/PID/ns file" for line in opens_a_namespace_file(tree)]
    assert found == [], "call these through syscalls.Kernel (narrated there):\n" + "\n".join(found)


def test_the_c_library_and_kernel_bindings_only_in_the_kernel_layer():
    found = []
    for path, tree in outside_the_kernel_layer():
        for line, name in imported(tree):
            root = name.split(".")[0]
            if root in KERNEL_BINDINGS:
                found.append(f"{where(path, line)}: import {name}")
            if root == "seccomp" and path != REPO / "minicontainer/runtime/syscall_filter.py":
                found.append(f"{where(path, line)}: import {name} (only syscall_filter.py builds filters)")
    for path, tree in modules("baselib"):
        if path.name != "inroot.py":
            found += [f"{where(path, line)}: import {name}" for line, name in imported(tree)
                      if name.split(".")[0] == "ctypes"]
    assert found == [], "\n".join(found)


def test_hpcshim_stays_apart_from_minicontainer():
    found = []
    for path, tree in modules("hpcshim"):
        for line, name in imported(tree):
            if name.split(".")[0] in {"minicontainer", *KERNEL_BINDINGS, "seccomp"}:
                found.append(f"{where(path, line)}: import {name}")
    assert found == [], "\n".join(found)


def imports_matching(package: str, forbidden) -> list[str]:
    """`file:line: name` of each import in minicontainer/PACKAGE for which
    forbidden(name) holds."""
    found = []
    for path, tree in modules(f"minicontainer/{package}"):
        names = imported(tree) + relative_imports(tree, path)
        found += [f"{where(path, line)}: {name}" for line, name in names if forbidden(name)]
    return found


@pytest.mark.parametrize("package", ["cgroups", "network"])
def test_cgroups_and_network_import_nothing_of_runtime(package):
    found = imports_matching(package, lambda name: name.startswith("minicontainer.runtime"))
    assert found == [], "\n".join(found)


# runtime/'s engine half: what turns an image and flags into a bundle and
# looks after the container (the runtime half, oci/, may not lean on it).
ENGINE_MODULES = {"spec", "bundle", "run", "launch", "child", "lifecycle", "state", "networking",
                  "joining", "supervisor", "recovery", "usernet", "exec", "gpu", "resources"}


def test_the_oci_runtime_knows_nothing_of_images_names_or_networks():
    """minict-oci turns a bundle into a process (oci/): like runc, it knows
    no image, no container name, no network, no command line above it,
    and nothing of minict's engine; of runtime/ only the owner and the
    init it forks use it."""
    above = {"image", "build", "network", "cli", "oci_cli"}
    found = imports_matching("oci", lambda name: name.split(".")[0] == "minicontainer"
                             and name.split(".")[1:2] and (
                                 name.split(".")[1] in above or
                                 name.split(".")[1] == "runtime"
                                 and name.split(".")[2:3] and name.split(".")[2] in ENGINE_MODULES))
    for package in ("image", "build", "network", "cgroups"):
        found += imports_matching(package, lambda name: name.startswith("minicontainer.oci"))
    found += [hit for hit in imports_matching("runtime", lambda name: name.startswith(
              "minicontainer.oci")) if not hit.startswith(("minicontainer/runtime/launch.py",
                                                           "minicontainer/runtime/child.py",
                                                           "minicontainer/runtime/exec.py"))]
    assert found == [], "\n".join(found)


def test_minict_oci_starts_without_click():
    out = subprocess.run([sys.executable, "-c", "import sys, minicontainer.oci_cli; "
                          "print('click' in sys.modules)"], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "False"



def test_minict_oci_s_later_steps_import_none_of_create_s_modules(tmp_path):
    """An engine runs start, state, kill and delete once per container each:
    they load none of what only create needs (oci_cli.py, oci/lifecycle.py)."""
    only_create = ("minicontainer.oci.create", "minicontainer.oci.init", "minicontainer.oci.mounts",
                   "minicontainer.oci.seccomp", "minicontainer.cgroups.limits", "subprocess")
    for command in (["state", "c1"], ["start", "c1"], ["kill", "c1", "KILL"], ["delete", "c1"]):
        code = ("import sys\nfrom minicontainer.oci_cli import main\n"
                f"try:\n    main(['--root', {str(tmp_path)!r}, *{command!r}])\n"
                "except SystemExit:\n    pass\n"
                f"print([m for m in {only_create!r} if m in sys.modules])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=REPO)
        assert "c1 does not exist" in out.stderr   # it ran the command
        assert out.stdout.strip() == "[]", command

def imports_in_functions(tree, source: str) -> list[tuple[int, str]]:
    """(line, text) of each import inside a function, and whether it has its reason."""
    lines = source.split("\n")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [(sub.lineno, lines[sub.lineno - 1].strip()) for sub in ast.walk(node)
                      if isinstance(sub, (ast.Import, ast.ImportFrom))]
    return found


def test_imports_inside_functions_say_why():
    found = []
    for package in ("minicontainer", "hpcshim", "baselib"):
        for path, tree in modules(package):
            found += [f"{where(path, line)}: {text}" for line, text in imports_in_functions(tree, path.read_text())
                      if "#" not in text]
    assert found == [], "import at the top, or say on the line why not:\n" + "\n".join(found)


def test_the_rule_sees_what_it_forbids(tmp_path):
    """The checks above can fail: each finds its kind of call in a sample."""
    sample = ast.parse('import os, ctypes\nos.fork()\nfd = os.open(f"/proc/{pid}/ns/net", 0)\n'
                       'from ..runtime import launch\n')
    assert calls(sample) == [(2, "os.fork"), (3, "os.open")]
    assert opens_a_namespace_file(sample) == [3]
    assert (1, "ctypes") in imported(sample)
    path = REPO / "minicontainer/cgroups/sample.py"
    assert relative_imports(sample, path) == [(4, "minicontainer.runtime")]
    lazy = "def f():\n    import json\n    import zlib  # why\n"
    assert imports_in_functions(ast.parse(lazy), lazy) == [(2, "import json"), (3, "import zlib  # why")]
