"""Variables and quotes in Dockerfile instructions, as docker reads them.

docker expands `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}` in
ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR
(not in RUN, CMD or ENTRYPOINT: there the shell in the container does it).
Inside 'single quotes' nothing is expanded; the escape character (`\\`, or
what `# escape=` chose) keeps the next character as it is. `split_words`
also removes the quotes, so that `ENV A="hello world"` sets A to
`hello world`.

One function does both jobs, character by character, because the two depend
on each other: a quote decides whether `$` expands, and an expanded value is
never split again (docker's ShellLex does the same).
"""

import re

from ..errors import BadDockerfile

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand(text: str, variables: dict, escape: str = "\\", where: str = "") -> str:
    """`text` with its variables expanded; quotes and escapes kept as they are."""
    return "".join(_scan(text, variables, escape, where, keep_quotes=True)[0])


def split_words(text: str, variables: dict | None, escape: str = "\\", where: str = "") -> list[str]:
    """Whitespace-separated words, variables expanded (unless `variables` is
    None), quotes and escapes removed."""
    return _scan(text, variables, escape, where, keep_quotes=False)[1]


def _scan(text, variables, escape, where, keep_quotes):
    out = []                 # the text, expanded (keep_quotes) or unquoted
    words, word, in_word = [], [], False
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            out.append(ch)
            i += 1
            continue
        in_word = True
        if ch == escape and quote != "'" and i + 1 < len(text):
            nxt = text[i + 1]
            # Inside double quotes the escape only matters before ", $ and itself.
            if quote == '"' and nxt not in ('"', "$", escape):
                word.append(ch)
                out.append(ch)
                i += 1
                continue
            word.append(nxt)
            out.append(ch + nxt if keep_quotes else nxt)
            i += 2
            continue
        if ch in ("'", '"') and quote in (None, ch):
            quote = None if quote == ch else ch
            if keep_quotes:
                out.append(ch)
            i += 1
            continue
        if ch == "$" and quote != "'" and variables is not None:
            value, i = _variable(text, i, variables, where)
            word.append(value)
            out.append(value)
            continue
        word.append(ch)
        out.append(ch)
        i += 1
    if quote is not None:
        raise BadDockerfile(f"{where}unmatched {quote} quote", "close the quote")
    if in_word:
        words.append("".join(word))
    return out, words


def _variable(text: str, i: int, variables: dict, where: str) -> tuple[str, int]:
    """The value of the variable at text[i] (a `$`), and where the text goes on."""
    if text.startswith("${", i):
        end = text.find("}", i)
        if end < 0:
            raise BadDockerfile(f"{where}missing '}}' in {text[i:]!r}", "write ${NAME}")
        body = text[i + 2:end]
        name = _NAME.match(body)
        if not name:
            raise BadDockerfile(f"{where}bad substitution ${{{body}}}",
                                "use ${NAME}, ${NAME:-default} or ${NAME:+alternative}")
        rest = body[name.end():]
        value = variables.get(name.group())
        if rest == "":
            return value or "", end + 1
        if rest.startswith(":-"):
            return (value if value else rest[2:]), end + 1
        if rest.startswith(":+"):
            return (rest[2:] if value else ""), end + 1
        raise BadDockerfile(f"{where}bad substitution ${{{body}}}",
                            "use ${NAME}, ${NAME:-default} or ${NAME:+alternative}")
    name = _NAME.match(text, i + 1)
    if not name:
        return "$", i + 1          # a lone $ stays a $
    return variables.get(name.group(), ""), name.end()
