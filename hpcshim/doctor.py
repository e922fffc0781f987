"""`hpcshim doctor`: the Plan for humans - what, from where, why, what was skipped.

The same Plan `exec` uses, printed in sections. Optional items that are
absent are counted on one line per kind, not listed one by one; things that
will make a job fail (a missing nvidia-uvm, no libcuda) are under "Pitfalls".
"""

import os
import shutil

from .plan import Plan

RUNTIME_NAMES = ("apptainer", "singularity", "ch-run", "minict")


def summary_lines(plan: Plan, container_env: dict[str, str]) -> list[str]:
    """A few lines for `exec -v`: what is injected, and the variables the runtime sets."""
    lines = ["no GPU injection"] if plan.empty else [
        f"{plan.vendor} driver {plan.driver_version or '?'}: "
        f"{len(plan.gpus)} GPU(s), {len(plan.devices)} device node(s), "
        f"{len(plan.libraries)} librar{'y' if len(plan.libraries) == 1 else 'ies'}, "
        f"{len(plan.binds)} other bind(s)"]
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
        out.append(f"GPU: {plan.vendor}, driver {plan.driver_version or 'version unknown'}{where}")
        for finding in plan.findings:
            if finding.kind in ("gpu", "selection", "cdi") and finding.status == "found":
                out.append(f"  {finding.name}: {finding.reason}")
        out.append(f"Device nodes ({len(plan.devices)}):")
        for node in plan.devices:
            source = "" if node.host_path == node.path else f"  <- {node.host_path}"
            out.append(f"  {node.path:28} char {node.major}:{node.minor} mode {node.mode:o}{source}")
        out.append(f"Libraries ({len(plan.libraries)}) -> {plan.lib_dir} "
                   f"(prepended to LD_LIBRARY_PATH):")
        why = {f.name: f.reason for f in plan.findings if f.kind == "library" and f.status == "found"}
        for lib in plan.libraries:
            out.append(f"  {lib.name:34} <- {lib.src}")
            if lib.name in why:
                out.append(f"  {'':34}    {why[lib.name]}")
        if plan.libraries32:
            out.append(f"32-bit libraries ({len(plan.libraries32)}) -> {plan.lib32_dir}:")
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
    found = [f"{n} ({shutil.which(n, path=env.get('PATH', os.defpath))})" for n in RUNTIME_NAMES
             if shutil.which(n, path=env.get("PATH", os.defpath))]
    out.append("Runtimes on PATH: " + (", ".join(found) if found else "none of " + ", ".join(RUNTIME_NAMES)))
    return "\n".join(out)
