"""Reading a Dockerfile into instructions (the format: docs.docker.com,
"Dockerfile reference").

    # escape=`            parser directives: only at the very top
    FROM busybox AS base  one instruction per line; keywords in any case
    RUN echo a && \\       the escape character at the end of a line joins
        echo b            the next one (comment lines in between are dropped)
    CMD ["sh", "-c", "x"] exec form: a JSON array of strings

Why our own parser: the format is line-based and small, and the well-known
pure-Python one (dockerfile-parse) hands back each instruction's raw text
without splitting flags or exec forms, so a builder would parse each line a
second time anyway. Here one short module does the whole job, and students
can read it next to the reference.
"""

import json
import re
from dataclasses import dataclass, field

from ..errors import BadDockerfile

INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD",
                "ENTRYPOINT", "LABEL", "EXPOSE", "VOLUME", "SHELL", "STOPSIGNAL", "MAINTAINER"}
NOT_SUPPORTED = {"ONBUILD", "HEALTHCHECK"}
# Instructions whose argument may be a JSON array (the exec form).
JSON_FORMS = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}
# Instructions that take --flags before their arguments, and which flags.
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod"}, "ADD": {"chown", "chmod"},
         "RUN": set()}

_DIRECTIVE = re.compile(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?")


@dataclass
class Instruction:
    keyword: str              # upper case: FROM, RUN, ...
    args: str                 # what follows the keyword and its flags, continuations joined
    line: int                 # where it starts, from 1
    path: str                 # the Dockerfile, for messages
    flags: dict = field(default_factory=dict)   # --from=x -> {"from": "x"}
    json: list | None = None  # the exec form, when args is a JSON array of strings

    @property
    def where(self) -> str:
        """"Dockerfile:3: ", the start of every message about this instruction."""
        return f"{self.path}:{self.line}: "

    @property
    def text(self) -> str:
        """The instruction as written (one line), for history and the cache."""
        flags = "".join(f"--{k}={v} " for k, v in sorted(self.flags.items()))
        return f"{self.keyword} {flags}{self.args}".strip()


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    lines = text.splitlines()
    escape, first = _directives(lines, path)
    instructions = []
    pending, start = None, 0          # an instruction continued over several lines
    for number, line in enumerate(lines[first:], start=first + 1):
        stripped = line.strip()
        if stripped.startswith("#") or (pending is not None and not stripped):
            continue                  # comments, and blank lines inside a continuation
        if pending is None:
            if not stripped:
                continue
            pending, start = "", number
        body = line.rstrip()
        if body.endswith(escape):
            pending += body[:-len(escape)]
            continue
        pending += body
        instructions.append(_instruction(pending.strip(), start, path))
        pending = None
    if pending is not None and pending.strip():
        instructions.append(_instruction(pending.strip(), start, path))
    return Dockerfile(instructions, escape)


def _directives(lines: list[str], path: str) -> tuple[str, int]:
    """The escape character, and the index of the first line after the directives."""
    escape = "\\"
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return escape, index
        key, value = match.group(1).lower(), match.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise BadDockerfile(f"{path}:{index + 1}: invalid escape character {value!r}",
                                    "use # escape=\\ or # escape=`")
            escape = value
        # Other directives (# syntax=...) choose a BuildKit frontend: nothing to do here.
    return escape, len(lines)


def _instruction(text: str, line: int, path: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    keyword = keyword.upper()
    where = f"{path}:{line}: "
    if keyword in NOT_SUPPORTED:
        raise BadDockerfile(f"{where}{keyword} is not supported by minict build",
                            "remove it (minict runs no health checks and no ONBUILD triggers)")
    if keyword not in INSTRUCTIONS:
        raise BadDockerfile(f"{where}unknown instruction {keyword}",
                            "see the Dockerfile reference for the instructions there are")
    rest = rest.strip()
    flags = {}
    while keyword in FLAGS and rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        match = _FLAG.fullmatch(word)
        if not match or match.group(1) not in FLAGS[keyword] or match.group(2) is None:
            raise BadDockerfile(f"{where}{keyword} does not take the flag {word}",
                                _flag_hint(keyword))
        flags[match.group(1)] = match.group(2)
    if not rest:
        raise BadDockerfile(f"{where}{keyword} needs an argument", "see the Dockerfile reference")
    exec_form = _json_array(rest) if keyword in JSON_FORMS else None
    if keyword == "SHELL" and exec_form is None:
        raise BadDockerfile(f"{where}SHELL needs a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]",
                            "write it in exec form")
    return Instruction(keyword, rest, line, path, flags, exec_form)


def _flag_hint(keyword: str) -> str:
    allowed = sorted(FLAGS.get(keyword, ()))
    if not allowed:
        return f"minict build takes no flags on {keyword} (no RUN --mount or --network)"
    return f"{keyword} takes " + ", ".join(f"--{f}=..." for f in allowed)


def _json_array(text: str) -> list[str] | None:
    """The exec form, or None for the shell form (docker falls back to the
    shell form when the text is not a JSON array of strings, too)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None
