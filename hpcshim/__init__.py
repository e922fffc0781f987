"""hpcshim: run GPU workloads in HPC containers, explainably (`hpcshim` command)."""

__version__ = "0.1.0"
