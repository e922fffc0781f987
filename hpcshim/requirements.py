"""Will this image run on this node? NVIDIA_REQUIRE_CUDA against the driver.

CUDA images say what they need in their environment, e.g. NGC's PyTorch 22.03:

    NVIDIA_REQUIRE_CUDA=cuda>=11.6 brand=tesla,driver>=418,driver<419 brand=tesla,driver>=440,driver<441 ...

and NVIDIA's container toolkit refuses to start them on a driver that does
not meet it. hpcshim reads the same variables and decides the same way:

- every variable named NVIDIA_REQUIRE_* (but NVIDIA_REQUIRE_JETPACK) is one
  requirement, and all of them must hold;
- inside one, terms separated by spaces are alternatives (OR), and the
  conditions joined by commas inside a term must all hold (AND). So the
  string above reads "a driver of CUDA 11.6 or newer, OR a Tesla GPU on a
  418.x, 440.x, 450.x or 460.x driver" - the older data-centre branches the
  image's CUDA forward-compatibility libraries can run on;
- a condition is PROPERTY OP VALUE, OP one of = != < <= > >=; properties:
  cuda (the CUDA version the driver supports), driver (its version), arch
  (a GPU's compute capability), brand (a GPU's brand: tesla, geforce...).
  Versions compare number by number (418.87.01 < 419); brands ignoring case.
  A property it does not know is skipped; arch and brand are checked for
  each GPU the job gets;
- the variables are the image's (its config's Env, or the environment file a
  directory image carries), with `--env` over them as in the container;
- NVIDIA_DISABLE_REQUIRE set to a true value (1, t, true...) turns it off;
  an image with CUDA_VERSION and no NVIDIA_REQUIRE_CUDA (the oldest CUDA
  images) needs cuda>=<its major.minor>.

Sources: libnvidia-container src/cli/dsl.c dsl_evaluate (space: OR, comma:
AND), src/cli/configure.c (each requirement per visible GPU); the toolkit's
internal/requirements/constraints/factory.go ("space-separated constraints
being ORed together and comma-separated constraints being ANDed together",
requirements ANDed, unknown properties skipped) and
internal/config/image/cuda_image.go (NVIDIA_REQUIRE_ prefix, JETPACK
excluded, NVIDIA_DISABLE_REQUIRE through strconv.ParseBool, CUDA_VERSION).

What hpcshim cannot know from driver files it says it does not know. The
driver version is in /proc/driver/nvidia/version; the CUDA version and the
compute capability come from NVIDIA's tables (discovery/capability.py says
why and where). A GPU's brand is only in NVML (the toolkit asks it), not in
any driver file, so brand conditions are "unknown". A condition that is
unknown makes its term unknown (unless another condition already fails it),
and the verdict is then "cannot tell": `exec` warns and runs, it refuses only
what is known not to work.
"""

import os
import re

from .discovery import nvidia
from .discovery.capability import compute_capability, cuda_for_driver, version_key
from .discovery.hostroot import HostRoot
from .errors import UnmetImageRequirement
from .plan import Plan

PROPERTIES = ("cuda", "driver", "arch", "brand")
OPERATORS = ("!=", "<=", ">=", "=", "<", ">")       # two-character ones first
TRUE_WORDS = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool

# Where a directory image keeps the environment of the image it was made from:
# Charliecloud's ch-image and ch-convert write the Dockerfile ENV to /ch/environment
# (KEY=VALUE lines, for `ch-run --set-env`); Apptainer's build from an OCI image
# writes `export KEY="VALUE"` (1.x: `export KEY="${KEY:-"VALUE"}"`) lines to this script.
CH_ENVIRONMENT = "ch/environment"
APPTAINER_ENVIRONMENT = ".singularity.d/env/10-docker2singularity.sh"
_EXPORT = re.compile(r'export (\w+)="(?:\$\{\1:-"(.*)"\}|(.*))"$')


class Condition:
    """One PROPERTY OP VALUE, e.g. driver>=418."""

    def __init__(self, text: str):
        self.text = text
        split = re.match(r"([a-zA-Z_]*)([<>=!]+)(.*)$", text)
        if not split or not split.group(1) or split.group(2) not in OPERATORS or not split.group(3):
            raise ValueError(f"{text!r} is not PROPERTY OP VALUE (OP one of {' '.join(OPERATORS)})")
        self.name, self.op, self.value = split.group(1).lower(), split.group(2), split.group(3)
        if self.name in ("cuda", "driver", "arch"):
            version_key(self.value)        # ValueError: "cuda>=eleven" is not a version

    def holds(self, facts: "NodeFacts", gpu: "GpuFacts | None") -> tuple[bool | None, str]:
        """(True, False or None for unknown, what the node has)."""
        if self.name == "driver":
            return _compare_versions(facts.driver, self.op, self.value, False), f"driver {facts.driver or 'unknown'}"
        if self.name == "cuda":
            cuda = facts.cuda
            if cuda is None:
                return None, "CUDA version unknown"
            return _compare_versions(cuda.version, self.op, self.value, cuda.at_least), str(cuda)
        if gpu is None:
            return None, f"no GPU to read the {self.name} of"
        if self.name == "arch":
            return (_compare_versions(gpu.arch, self.op, self.value, False),
                    f"compute capability {gpu.arch or 'unknown'} ({gpu.model or 'model unknown'})")
        return None, "GPU brand unknown (only NVML tells it, no driver file)"


def _compare_versions(have: str | None, op: str, want: str, at_least: bool) -> bool | None:
    try:
        a, b = version_key(have or ""), version_key(want)
    except ValueError:
        return None      # no version, or a driver version that is not numbers
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    result = {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if at_least and not (result and op in (">", ">=")):
        return None      # the node may have more than the table knows: only "more than" is sure
    return result


def _all(values) -> bool | None:
    """AND over True/False/None: False wins, then unknown."""
    values = list(values)
    return False if False in values else None if None in values else True


def _any(values) -> bool | None:
    """OR over True/False/None: True wins, then unknown."""
    values = list(values)
    return True if True in values else None if None in values else False


class Requirement:
    """One NVIDIA_REQUIRE_* variable: alternatives (terms) of conditions."""

    def __init__(self, variable: str, text: str):
        self.variable, self.text = variable, text
        self.terms: list[list[Condition]] = []
        for word in text.split():
            term = [Condition(part) for part in word.split(",") if part]
            term = [c for c in term if c.name in PROPERTIES]      # others: skipped, as the toolkit does
            if term:
                self.terms.append(term)

    def holds(self, facts: "NodeFacts", gpu: "GpuFacts | None") -> bool | None:
        if not self.terms:
            return True
        return _any(_all(c.holds(facts, gpu)[0] for c in term) for term in self.terms)

    def needs(self) -> str:
        return " or ".join(",".join(c.text for c in term) for term in self.terms)


def read_requirements(env: dict[str, str]) -> list[Requirement]:
    """The image's requirements (ValueError naming the variable for one that cannot be read)."""
    if env.get("NVIDIA_DISABLE_REQUIRE") in TRUE_WORDS:
        return []
    found = []
    for name in sorted(env):
        if name.startswith("NVIDIA_REQUIRE_") and not name.startswith("NVIDIA_REQUIRE_JETPACK"):
            try:
                found.append(Requirement(name, env[name]))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
    if env.get("CUDA_VERSION") and not env.get("NVIDIA_REQUIRE_CUDA"):
        major_minor = ".".join(env["CUDA_VERSION"].lstrip("v").split(".")[:2])
        try:
            found.append(Requirement("CUDA_VERSION", f"cuda>={major_minor}"))
        except ValueError as exc:
            raise ValueError(f"CUDA_VERSION: {exc}") from exc
    return found


class GpuFacts:
    def __init__(self, index: int, model: str | None):
        self.index, self.model = index, model
        self.arch = compute_capability(model)


class NodeFacts:
    """What the driver files say: driver version, its CUDA version, the job's GPUs."""

    def __init__(self, driver: str | None, gpus: list[GpuFacts]):
        self.driver = driver
        self.cuda = cuda_for_driver(driver)
        self.gpus = gpus

    @classmethod
    def from_plan(cls, plan: Plan, host_root: str = "/") -> "NodeFacts":
        # A Plan made from a CDI spec carries no driver version: read the driver's own file.
        driver = plan.driver_version or nvidia.driver_version(HostRoot(host_root))[0]
        return cls(driver, [GpuFacts(g.index, g.model) for g in plan.gpus])

    def describe(self) -> str:
        text = f"driver {self.driver or 'unknown'}, " + (str(self.cuda) if self.cuda else "CUDA version unknown")
        kinds: dict[tuple, list[int]] = {}
        for gpu in self.gpus:
            kinds.setdefault((gpu.model, gpu.arch), []).append(gpu.index)
        for (model, arch), indices in kinds.items():
            text += (f", GPU {','.join(map(str, indices))} {model or 'model unknown'} "
                     f"(compute capability {arch or 'unknown'})")
        return text


class Verdict:
    """The answer: status ok | mismatch | unknown | none (nothing required) |
    disabled | unchecked (the image's environment could not be read)."""

    def __init__(self, status: str, image: str, needs: str = "", has: str = "", lines=None):
        self.status, self.image, self.needs, self.has = status, image, needs, has
        self.lines: list[str] = list(lines or [])      # the comparison, for -v and doctor

    def summary(self) -> str:
        """One line."""
        if self.status == "ok":
            return f"{self.image} needs {self.needs}: this node has {self.has}"
        if self.status == "mismatch":
            return f"{self.image} needs {self.needs}; this node has {self.has}"
        if self.status == "unknown":
            return f"cannot tell whether this node can run {self.image}: it needs {self.needs}; this node has {self.has}"
        return self.needs

    def conclusion(self) -> str:
        """What `exec` does with it."""
        return {"ok": "ok: `hpcshim exec --gpu` runs it",
                "mismatch": f"mismatch: `hpcshim exec --gpu` refuses it (exit {UnmetImageRequirement.exit_code}); "
                            "--gpu=auto warns and runs it",
                "unknown": "cannot tell: `hpcshim exec --gpu` warns and runs it"}.get(self.status, "not checked")

    def to_dict(self) -> dict:
        return {"status": self.status, "image": self.image, "needs": self.needs, "has": self.has,
                "comparison": list(self.lines), "conclusion": self.conclusion()}


def check(image: str, image_env: dict[str, str] | None, plan: Plan, user_env: dict[str, str] | None = None,
          source: str = "", host_root: str = "/") -> Verdict:
    """The image's requirements against the node in plan. image_env None: not readable.
    user_env (--env) overrides the image's, as it does in the container."""
    if image_env is None:
        return Verdict("unchecked", image, needs=f"{image}: requirements not checked ({source})")
    env = dict(image_env)
    env.update(user_env or {})
    if env.get("NVIDIA_DISABLE_REQUIRE") in TRUE_WORDS:
        return Verdict("disabled", image, needs=f"{image}: NVIDIA_DISABLE_REQUIRE={env['NVIDIA_DISABLE_REQUIRE']}, "
                                                "its requirements are not checked")
    facts = NodeFacts.from_plan(plan, host_root)
    try:
        requirements = read_requirements(env)
    except ValueError as exc:
        return Verdict("unknown", image, needs=f"a requirement hpcshim cannot read ({exc})",
                       has=facts.describe(), lines=[f"cannot read the requirement: {exc}"])
    if not requirements:
        return Verdict("none", image, needs=f"{image} states no CUDA requirement (no NVIDIA_REQUIRE_*)")
    gpus = _distinct(facts.gpus) or [None]
    status = _all(_all(r.holds(facts, gpu) for r in requirements) for gpu in gpus)
    lines = [f"{r.variable}={r.text}" for r in requirements] + [f"node: {facts.describe()}"]
    for requirement in requirements:
        for term in requirement.terms:
            per_gpu = len(gpus) > 1 and any(c.name in ("arch", "brand") for c in term)
            for gpu in gpus if per_gpu else gpus[:1]:
                lines.append(f"  {','.join(c.text for c in term)}"
                             f"{f' (GPU {gpu.index})' if per_gpu else ''}: {_explain(term, facts, gpu)}")
    needs = "; and ".join(r.needs() for r in requirements)
    word = {True: "ok", False: "mismatch", None: "unknown"}[status]
    return Verdict(word, image, needs=needs, has=facts.describe(), lines=lines)


def _distinct(gpus: list[GpuFacts]) -> list[GpuFacts]:
    """One GPU per model: arch and brand depend on nothing else."""
    seen, kept = set(), []
    for gpu in gpus:
        if gpu.model not in seen:
            seen.add(gpu.model)
            kept.append(gpu)
    return kept


def _explain(term: list[Condition], facts: NodeFacts, gpu: GpuFacts | None) -> str:
    results = [(c, *c.holds(facts, gpu)) for c in term]
    for wanted, word in ((False, "no"), (None, "unknown")):
        for condition, result, has in results:
            if result is wanted:
                return f"{word} ({condition.text}; the node has {has})"
    return "yes (" + ", ".join(has for _c, _r, has in results) + ")"


# ---- the image's environment -----------------------------------------------------------

def directory_env(path: str) -> dict[str, str] | None:
    """The environment a directory image carries (Charliecloud's or Apptainer's file), or None."""
    for rel, parse in ((CH_ENVIRONMENT, _parse_ch_environment), (APPTAINER_ENVIRONMENT, _parse_exports)):
        try:
            with open(os.path.join(path, rel), encoding="utf-8", errors="replace") as f:
                return parse(f.read())
        except OSError:
            continue
    return None


def _parse_ch_environment(text: str) -> dict[str, str]:
    """KEY=VALUE lines, the value optionally in single quotes (ch-run(1), --set-env)."""
    env = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def _parse_exports(text: str) -> dict[str, str]:
    """Apptainer's `export KEY="VALUE"` lines; its escaping (\\ before \\ " ` $) undone.
    A value holding those characters may read differently from what the shell makes of
    it (Apptainer 1.1 escapes them twice); the NVIDIA_REQUIRE_* values hold none."""
    env = {}
    for line in text.splitlines():
        match = _EXPORT.match(line.strip())
        if match:
            value = match.group(2) if match.group(2) is not None else match.group(3)
            env[match.group(1)] = re.sub(r'\\([\\"`$])', r"\1", value)
    return env


def image_env(text: str, env: dict[str, str]) -> tuple[dict[str, str] | None, str]:
    """(the environment IMAGE declares, where it came from), read without
    converting or loading anything; (None, why) when it cannot be read here."""
    from .images.reference import parse  # doctor IMAGE only: exec has its image prepared already
    ref = parse(text)
    if ref.kind == "directory":
        found = directory_env(ref.path)
        return found, (f"{text} has neither /{CH_ENVIRONMENT} nor /{APPTAINER_ENVIRONMENT}" if found is None
                       else "the directory's environment file")
    if ref.kind == "minict":
        from .images import minict_tool  # minict images only (subprocess)
        from .images.layout import env_dict  # minict images only
        info = minict_tool.inspect(minict_tool.find(env, f"{text}: names an image of minict's"), ref.name, env)
        return env_dict(((info.get("Config") or {}).get("config") or {}).get("Env") or []), "minict's image config"
    if ref.kind in ("oci-archive", "docker-archive", "oci-layout"):
        from .images.layout import open_source, select  # archives and layouts only (tarfile, json)
        source = open_source(ref.path, oci_layout_dir=ref.kind == "oci-layout")
        try:
            return select(source, "oci" if ref.is_oci_layout else "docker", ref.name).env, "the image config"
        finally:
            if hasattr(source, "close"):
                source.close()
    return None, "a SIF file or registry image: its environment is read by the runtime, not by hpcshim"
