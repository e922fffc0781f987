"""`hpcshim doctor`: the Plan for humans - what, from where, why, what was skipped.

The same Plan `exec` uses, printed in sections. Optional items that are
absent are counted on one line per kind, not listed one by one; things that
will make a job fail (a missing nvidia-uvm, no libcuda) are under "Pitfalls".
`hpcshim doctor IMAGE` ends with whether IMAGE can run here: its
NVIDIA_REQUIRE_CUDA against the driver, as `exec --gpu` checks it
(hpcshim.requirements), read from the image without converting or loading it.
"""

import os
import resource
import shutil

from .backends import delivery, find_runtime
from .build import GpuRequest, build_plan
from .backends.apptainer import LIBS32_DIR, LIBS_DIR
from .discovery.capability import compute_capability, cuda_for_driver
from .errors import HpcshimError
from .plan import Plan
from .requirements import Verdict, check, image_env

RUNTIME_NAMES = ("apptainer", "singularity", "ch-run", "minict")


def doctor_output(host_root: str, as_json: bool, compat32: bool, env: dict[str, str],
                  image: str | None = None) -> str:
    """`hpcshim doctor [IMAGE]`: the report, or with --json the Plan document
    (with IMAGE, plus "imageRequirements": the verdict)."""
    plan = build_plan(GpuRequest(mode="auto", root=host_root, env=env, compat32=compat32))
    verdict = image_verdict(image, plan, env, host_root) if image else None
    if as_json:
        if verdict is None:
            return plan.to_json()
        import json  # doctor IMAGE --json only
        return json.dumps(dict(plan.to_dict(), imageRequirements=verdict.to_dict()), indent=2) + "\n"
    text = report(plan, host_root, env)
    return text + "\n" + ("\n".join(image_lines(verdict)) + "\n" if verdict else "")


def image_verdict(image: str, plan: Plan, env: dict[str, str], host_root: str = "/") -> Verdict:
    """IMAGE's requirements against the node (a bad IMAGE: its one-line error)."""
    declared, source = image_env(image, env)
    if plan.vendor != "nvidia":
        wants = " ".join(f"{k}={v}" for k, v in sorted((declared or {}).items()) if k.startswith("NVIDIA_REQUIRE_"))
        return Verdict("unchecked", image, needs=f"{image}: no NVIDIA driver here to compare with"
                       + (f" (it needs {wants})" if wants else ""))
    return check(image, declared, plan, source=source, host_root=host_root)


def image_lines(verdict: Verdict) -> list[str]:
    out = [f"Image {verdict.image}: can it run here? (NVIDIA_REQUIRE_*, as NVIDIA's container toolkit checks it)"]
    out += [f"  {line}" for line in verdict.lines]
    out.append(f"  {verdict.conclusion() if verdict.lines else verdict.summary()}")
    return out


def summary_lines(plan: Plan, container_env: dict[str, str], delivery: list[str] | None = None) -> list[str]:
    """A few lines for `exec -v`: what discovery found, what the runtime really
    does with it (delivery: the backend's own account), and the variables it sets."""
    lines = ["no GPU injection"] if plan.empty else [
        f"found: {plan.vendor} driver {plan.driver_version or '?'}, "
        f"{len(plan.gpus)} GPU(s), {len(plan.devices)} device node(s), "
        f"{len(plan.libraries)} librar{'y' if len(plan.libraries) == 1 else 'ies'}, "
        f"{len(plan.binds)} other bind(s)"]
    if not plan.empty:
        lines += delivery or []
    if container_env:
        lines.append("container env: " + " ".join(f"{k}={v}" for k, v in container_env.items()))
    return lines


def report(plan: Plan, host_root: str, env: dict[str, str]) -> str:
    out: list[str] = []
    where = "" if host_root in ("/", "") else f" (host root {host_root})"
    if plan.empty:
        out.append(f"GPU: none{where} - this host has no NVIDIA or AMD GPU driver.")
        out.append("  Looked for /proc/driver/nvidia/version, /sys/module/nvidia/version, "
                   "/dev/nvidiactl and /dev/kfd: none exists.")
        out.append("  `hpcshim exec --gpu` fails here (exit 12); `--gpu=auto` runs without a GPU.")
        for finding in plan.findings:
            if finding.kind in ("selection", "cdi"):
                out.append(f"  {finding.name}: {finding.reason}")
    else:
        cuda = cuda_for_driver(plan.driver_version) if plan.vendor == "nvidia" else None
        out.append(f"GPU: {plan.vendor}, driver {plan.driver_version or 'version unknown'}"
                   f"{f', supports {cuda}' if cuda else ''}{where}")
        for finding in plan.findings:
            if finding.kind in ("gpu", "selection", "cdi") and finding.status == "found":
                out.append(f"  {finding.name}: {finding.reason}")
        if plan.vendor == "nvidia":
            out += capability_lines(plan)
        out.append(f"Device nodes ({len(plan.devices)}):")
        for node in plan.devices:
            source = "" if node.host_path == node.path else f"  <- {node.host_path}"
            out.append(f"  {node.path:28} char {node.major}:{node.minor} mode {node.mode:o}{source}")
        out.append(f"Libraries ({len(plan.libraries)}), each bound under its soname into {plan.lib_dir} "
                   f"(Apptainer, Singularity: {LIBS_DIR}), which is put first on LD_LIBRARY_PATH:")
        why = {f.name: f.reason for f in plan.findings if f.kind == "library" and f.status == "found"}
        for lib in plan.libraries:
            out.append(f"  {lib.name:34} <- {lib.src}")
            if lib.name in why:
                out.append(f"  {'':34}    {why[lib.name]}")
        if plan.libraries32:
            out.append(f"32-bit libraries ({len(plan.libraries32)}) -> {plan.lib32_dir} "
                       f"(Apptainer, Singularity: {LIBS32_DIR}):")
            for lib in plan.libraries32:
                out.append(f"  {lib.name:34} <- {lib.src}")
        out.append(f"Other binds ({len(plan.binds)}):")
        for bind in plan.binds:
            out.append(f"  {bind.dst:44} <- {bind.src} [{bind.kind}{', ro' if bind.ro else ''}]")
        out.append("Environment in the container:")
        for key, value in plan.env.items():
            shared = plan.env_if_host_dev.get(key)
            extra = f"   ({shared!r} when the runtime shares the host's /dev)" if shared not in (None, value) else ""
            out.append(f"  {key}={value}{extra}")
    skipped = [f for f in plan.findings if f.status == "skipped" and not (plan.empty and f.kind == "driver")]
    if skipped:
        out.append(f"Skipped ({len(skipped)}):")
        optional = [f for f in skipped if "(optional)" in f.reason]
        for finding in skipped:
            if finding not in optional:
                out.append(f"  {finding.kind} {finding.name}: {finding.reason}")
        by_kind: dict[str, list[str]] = {}
        for finding in optional:
            by_kind.setdefault(finding.kind, []).append(finding.name)
        for kind, names in by_kind.items():
            out.append(f"  {kind}, not installed (optional): {', '.join(names)}")
    if plan.pitfalls:
        out.append("Pitfalls:")
        out += [f"  ! {p}" for p in plan.pitfalls]
    out += runtime_lines(plan, env)
    out += job_sharing_lines()
    return "\n".join(out)


def capability_lines(plan: Plan) -> list[str]:
    """The CUDA version and each GPU model's compute capability, and where they come from."""
    out = []
    if plan.driver_version:
        out.append("  CUDA version: from NVIDIA's table of minimum drivers per CUDA release "
                   "(discovery/capability.py), not from libcuda")
    for model in dict.fromkeys(g.model for g in plan.gpus):
        capability = compute_capability(model)
        out.append(f"  compute capability of {model or 'an unnamed model'}: "
                   + (f"{capability} (NVIDIA's CUDA GPUs table)" if capability else
                      "unknown (no driver file states it, and NVIDIA's table of data-centre GPUs "
                      "does not list this name)"))
    return out


# NCCL's docs and InfiniBand's verbs want locked memory without limit; 64 KiB
# (a common distribution default) is enough to fail a registration.
MEMLOCK_WANTED = "unlimited"


def job_sharing_lines(shm: str = "/dev/shm") -> list[str]:
    """Checks for what the ranks of one node share: /dev/shm (NCCL's and MPI's
    shared-memory transports) and the memlock limit (pinned memory for NCCL and
    InfiniBand). About this process, the one the job's containers inherit from."""
    out = ["Job sharing (ranks on one node):"]
    fstype = _mount_type(shm)
    if fstype is None:
        out.append(f"  ! {shm} is not a mount point: NCCL's shared-memory transport needs a tmpfs there")
    elif fstype != "tmpfs":
        out.append(f"  ! {shm} is a {fstype}, not a tmpfs: shared memory between ranks will be slow or fail")
    elif not os.access(shm, os.W_OK):
        out.append(f"  ! {shm} is not writable: NCCL and MPI cannot create their shared segments")
    else:
        st = os.statvfs(shm)
        out.append(f"  ok {shm}: a writable tmpfs, {st.f_bavail * st.f_frsize // (1 << 20)} MiB free; "
                   "containers of a job share the host's (minict: --ipc host; Apptainer: not with --contain)")
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        out.append("  ok memlock: unlimited (the containers get the same limit)")
    else:
        room = "unlimited" if hard == resource.RLIM_INFINITY else f"{hard // 1024} KiB"
        out.append(f"  ! memlock: {soft // 1024} KiB (hard limit {room}): NCCL and InfiniBand want "
                   f"{MEMLOCK_WANTED}; raise it with `ulimit -l` up to the hard limit, or ask the admins "
                   "(Slurm's PropagateResourceLimits, /etc/security/limits.conf)")
    return out


def _mount_type(path: str) -> str | None:
    """The filesystem type mounted exactly at path (the last such mount wins), from mountinfo."""
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if fields[4] == path:
                    found = fields[fields.index("-") + 1]
    except OSError:
        return None
    return found


def runtime_lines(plan: Plan, env: dict[str, str]) -> list[str]:
    """The runtimes on PATH and, for each, what it really does with this Plan
    (a runtime may accept a bind and still not show it: see backends.*.delivery).

    One runtime under two names is described once: Apptainer installs
    `singularity` as a link to itself, and it is the same program."""
    search = env.get("PATH", os.defpath)
    names_of: dict[str, list[tuple[str, str]]] = {}       # real path -> [(name, path on PATH)]
    for name in RUNTIME_NAMES:
        exe = shutil.which(name, path=search)
        if exe:
            names_of.setdefault(os.path.realpath(exe), []).append((name, exe))
    if not names_of:
        return ["Runtimes on PATH: none of " + ", ".join(RUNTIME_NAMES)]
    described = []
    for names in names_of.values():
        (name, exe), aliases = names[0], names[1:]
        also = "".join(f"; also as {alias} ({path}), a link to it: the same runtime" for alias, path in aliases)
        described.append(f"{name} ({exe}{also})")
    out = ["Runtimes on PATH: " + ", ".join(described)]
    if plan.empty:
        return out
    out.append("What each runtime does with this plan (exec without --contain):")
    for names in names_of.values():
        name = names[0][0]
        try:
            out += [f"  {line}" for line in delivery(find_runtime(name, env), plan)]
        except HpcshimError as exc:
            out.append(f"  {name}: {exc.one_line()}")
    return out
