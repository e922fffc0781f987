"""linux.seccomp: a seccomp filter written in the runtime spec's words.

minict's own containers get a short deny list (runtime/syscall_filter.py).
An engine instead hands the runtime a whole profile: a default action, the
architectures it covers, and rules (system call names, an action, and
optional argument comparisons). podman's and docker's default profile is
an allow list of about 400 calls with everything else refused.

libseccomp compiles the rules into the BPF program the kernel runs (the
same library runc and crun use), so this module only translates names:
"SCMP_ACT_ERRNO" -> seccomp.ERRNO(errnoRet), "SCMP_CMP_MASKED_EQ" ->
seccomp.MASKED_EQ, "SCMP_ARCH_X86" -> seccomp.Arch.X86.

As runc does, a call this libseccomp does not know (newer than the
library) is left out and said so, and a rule whose action is the default
action is skipped (libseccomp refuses it, and it changes nothing).
"""

import errno

from ..errors import BadConfig, UnsupportedConfig

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPERATORS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
             "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
          "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_PPC64LE": "PPC64LE",
          "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_RISCV64": "RISCV64",
          "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPSEL": "MIPSEL",
          "SCMP_ARCH_MIPSEL64": "MIPSEL64", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
          "SCMP_ARCH_S390": "S390", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
          "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32"}
# Filter flags minict-oci can honour: none need setting for the behaviour
# the spec asks (SPEC_ALLOW would keep speculative-store-bypass mitigations
# off; LOG logs actions other than ALLOW). Others are refused.
KNOWN_FLAGS = ("SECCOMP_FILTER_FLAG_LOG",)


def check(profile) -> None:
    """BadConfig / UnsupportedConfig for a profile that cannot be loaded as written."""
    if not isinstance(profile, dict):
        raise BadConfig("linux.seccomp must be an object", "see config-linux.md, Seccomp")
    _action(profile.get("defaultAction"), "linux.seccomp.defaultAction", required=True)
    for i, arch in enumerate(profile.get("architectures") or []):
        if arch not in ARCHES:
            raise BadConfig(f"linux.seccomp.architectures[{i}] {arch!r} is not an architecture",
                            "e.g. SCMP_ARCH_X86_64")
    for flag in profile.get("flags") or []:
        if flag not in KNOWN_FLAGS:
            raise UnsupportedConfig(f"config.json: linux.seccomp.flags: {flag} is not supported "
                                    f"by minict-oci", "remove it")
    if profile.get("listenerPath"):
        raise UnsupportedConfig("config.json: linux.seccomp.listenerPath: seccomp notify is not "
                                "supported by minict-oci", "remove it")
    for i, rule in enumerate(profile.get("syscalls") or []):
        where = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("names"), list) \
                or not rule["names"] or not all(isinstance(n, str) for n in rule["names"]):
            raise BadConfig(f"{where}.names must be a non-empty list of system call names", "")
        _action(rule.get("action"), f"{where}.action", required=True)
        for j, arg in enumerate(rule.get("args") or []):
            if not isinstance(arg, dict) or arg.get("op") not in OPERATORS \
                    or not isinstance(arg.get("index"), int) or not 0 <= arg["index"] <= 5 \
                    or not isinstance(arg.get("value"), int):
                raise BadConfig(f"{where}.args[{j}] needs index (0-5), value and op "
                                f"(SCMP_CMP_...)", "")


def _action(name, where: str, required: bool = False) -> None:
    if name is None and not required:
        return
    if name == "SCMP_ACT_NOTIFY":
        raise UnsupportedConfig(f"config.json: {where}: SCMP_ACT_NOTIFY is not supported by "
                                f"minict-oci", "use another action")
    if name not in ACTIONS:
        raise BadConfig(f"{where} {name!r} is not a seccomp action", "e.g. SCMP_ACT_ERRNO")


def _built_action(seccomp, name: str, errno_ret):
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    return {"SCMP_ACT_KILL": seccomp.KILL, "SCMP_ACT_KILL_THREAD": seccomp.KILL,
            "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_TRAP": seccomp.TRAP,
            "SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG}[name]


def build(seccomp, profile: dict):
    """The libseccomp SyscallFilter for a checked profile, the calls it
    could not name, and a one-line summary for the narration."""
    default = profile["defaultAction"]
    built = seccomp.SyscallFilter(defaction=_built_action(seccomp, default,
                                                          profile.get("defaultErrnoRet")))
    # libseccomp would set no_new_privs itself on loading; whether the
    # process gets it is process.noNewPrivileges's to say (process.py).
    built.set_attr(seccomp.Attr.CTL_NNP, 0)
    native = seccomp.Arch()
    for arch in profile.get("architectures") or []:
        wanted = getattr(seccomp.Arch, ARCHES[arch], None)
        if wanted is not None and wanted != native:
            try:
                built.add_arch(wanted)
            except RuntimeError:
                pass   # an ABI this kernel/library pair cannot add: as runc, leave it out
    unknown, named = [], {}   # the narration's groups: "EPERM" -> [call names]
    for rule in profile.get("syscalls") or []:
        if rule["action"] == default and rule.get("errnoRet") == profile.get("defaultErrnoRet"):
            continue
        action = _built_action(seccomp, rule["action"], rule.get("errnoRet"))
        args = [seccomp.Arg(a["index"], getattr(seccomp, OPERATORS[a["op"]]), a["value"],
                            a.get("valueTwo", 0)) for a in rule.get("args") or []]
        for name in rule["names"]:
            try:
                built.add_rule(action, name, *args)
                names = named.setdefault(_label(rule) + (" (by its arguments)" if args else ""), [])
                if name not in names:
                    names.append(name)
            except RuntimeError:
                unknown.append(name)
            except ValueError as exc:   # e.g. two comparisons of one argument
                raise BadConfig(f"linux.seccomp: the rule for {name} cannot be compiled: {exc}",
                                "") from None
    summary = "; ".join([f"{label} for {len(names)} call{'s' if len(names) > 1 else ''}: "
                         f"{', '.join(names)}" for label, names in named.items()]
                        + [f"default {default}"])
    return built, sorted(set(unknown)), summary


def _label(rule: dict) -> str:
    """A rule's action as the narration says it: the errno's name (EPERM)
    for SCMP_ACT_ERRNO, else the action itself."""
    if rule["action"] == "SCMP_ACT_ERRNO":
        return errno.errorcode.get(rule.get("errnoRet", errno.EPERM), str(rule.get("errnoRet")))
    return rule["action"]
