"""How `minict ps` and `minict images` print their rows (one place, so both look alike).

A row is a dict, the same one `--format json` prints (docker's field
names). The table shows chosen columns, each as wide as its widest cell,
three spaces apart, like docker's tabwriter output.
"""

import json

import click


def print_rows(rows: list[dict], columns: list[tuple[str, object]], *, quiet: bool,
               fmt: str) -> None:
    """-q: only the IDs; --format json: one JSON object per line; else a table.

    `columns` is (HEADER, cell) pairs, where cell is a row key or a
    function of the row (for a cell made from several fields)."""
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = [[header for header, _ in columns]]
    for row in rows:
        table.append([str(cell(row) if callable(cell) else row[cell]) for _, cell in columns])
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        click.echo("   ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut shown by an ellipsis."""
    return text if len(text) <= width else text[:width - 1] + "…"
