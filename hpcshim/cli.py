"""The `hpcshim` command line (placeholder until the hpcshim issue lands)."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """hpcshim: GPU-aware launcher for Apptainer, Singularity, ch-run and minict."""


def main(argv=None):
    cli.main(args=argv, prog_name="hpcshim")
