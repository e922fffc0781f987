"""The files and names the docs mention exist.

Checked in docs/ARCHITECTURE.md, docs/hpcshim.md, README.md and every
package's __init__ docstring (the module maps a reader starts from):

- every `something.py` named exists: with a directory in it, a file whose
  path ends so; bare, a file of that name (in a package map: in that package);
- every `path/to/module.py` `name` pair (the reading paths): the module defines name;
- every `module.name` or `Class.name` in backquotes whose first part is one of
  the project's modules or classes: that name is defined there.
"""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("minicontainer", "hpcshim", "baselib")
DOCS = ("docs/ARCHITECTURE.md", "docs/hpcshim.md", "README.md")
EVERY_FILE = [p for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts]


def defined_names(tree) -> set[str]:
    """Top-level names of a module, or the names of a class body."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def index() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[Path, set[str]]]:
    """(module or package name -> its names, class name -> its names with its bases',
    file -> its names and its classes')."""
    modules: dict[str, set[str]] = {}
    classes: dict[str, set[str]] = {}
    bases: dict[str, set[str]] = {}
    files: dict[Path, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = defined_names(tree)
            stem = path.parent.name if path.name == "__init__.py" else path.stem
            modules.setdefault(stem, set()).update(names)
            if path.name == "__init__.py":     # a package also "defines" its modules
                modules[stem] |= {p.stem for p in path.parent.glob("*.py")} | \
                    {p.name for p in path.parent.iterdir() if p.is_dir()}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    classes.setdefault(node.name, set()).update(defined_names(node))
                    bases.setdefault(node.name, set()).update(
                        b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases)
                    names = names | defined_names(node)
            files[path] = names
    for name in classes:                       # what a class inherits from ours
        seen, todo = set(), list(bases.get(name, ()))
        while todo:
            base = todo.pop()
            if base in classes and base not in seen:
                seen.add(base)
                classes[name] |= classes[base]
                todo += bases.get(base, ())
    return modules, classes, files


MODULES, CLASSES, FILES = index()


def texts():
    for doc in DOCS:
        yield doc, (REPO / doc).read_text(), None
    for package in PACKAGES:
        for init in (REPO / package).rglob("__init__.py"):
            yield str(init.relative_to(REPO)), ast.get_docstring(ast.parse(init.read_text())) or "", init.parent


def missing_files(text: str, package_dir: Path | None) -> list[str]:
    found = []
    for name in sorted(set(re.findall(r"(?<![\w.])([\w./-]*\w\.py)\b", text))):
        if "/" in name:
            ok = any(str(p).endswith("/" + name.lstrip("./")) for p in EVERY_FILE)
        elif package_dir is not None and not name.startswith("test"):
            ok = (package_dir / name).exists()
        else:
            ok = any(p.name == name for p in EVERY_FILE)
        if not ok:
            found.append(name)
    return found


# Dotted names in backquotes that are files, not code: cgroup v1 control files.
NOT_CODE = {"devices.list", "devices.allow", "devices.deny"}


def missing_names(text: str) -> list[str]:
    found = []
    for path, name in re.findall(r"`([\w/]+\.py)` `(\w+)`", text):
        files = [f for f in FILES if str(f).endswith("/" + path)]
        if files and not any(name in FILES[f] for f in files):
            found.append(f"{path} {name}")
    for dotted in set(re.findall(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)`", text)) - NOT_CODE:
        owner, name = dotted.split(".")[-2:]
        known = MODULES.get(owner, set()) | CLASSES.get(owner, set())
        if (owner in MODULES or owner in CLASSES) and name not in known:
            found.append(dotted)
    return sorted(found)


@pytest.mark.parametrize("where, text, package_dir", list(texts()), ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "")
def test_what_the_docs_name_exists(where, text, package_dir):
    problems = [f"no file {name}" for name in missing_files(text, package_dir)]
    problems += [f"no such name: {name}" for name in missing_names(text)]
    assert problems == [], f"{where}: " + "; ".join(problems)


def test_the_check_can_fail():
    assert missing_files("see `runtime/init.py` and attach.py", REPO / "minicontainer/network") == \
        ["attach.py", "runtime/init.py"]
    assert missing_names("`idmap.clone_new_user_namespace` `syscalls.Kernel.mount` "
                         "`runtime/launch.py` `no_such_function` `Kernel.no_such_call`") == \
        ["Kernel.no_such_call", "idmap.clone_new_user_namespace", "runtime/launch.py no_such_function"]
