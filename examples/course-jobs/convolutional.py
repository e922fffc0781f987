"""Stand-in for the Pawsey course's convolutional.py (TensorFlow's MNIST CNN,
which downloads MNIST): first a line saying where it runs, as the container
sees it, then our digits CNN (train.py, copied from ../mnist-cnn next to this
file; no download) with its own flags.

    where: host node1 partition cluster job 12 CUDA_VISIBLE_DEVICES=0 gpu GPU-...

`gpu` is the UUID `nvidia-smi -L` gives the job's GPU (CUDA_VISIBLE_DEVICES
counts the node's GPUs: ch-run shows the host's /dev), or `none`.
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # train.py, beside this file
sys.dont_write_bytecode = True      # no __pycache__ left in the job's directory
import train  # noqa: E402


def gpu_uuid(index: str) -> str:
    smi = shutil.which("nvidia-smi")
    if not smi or not index:
        return "none"
    listing = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout
    for line in listing.splitlines():        # GPU 0: Tesla T4 (UUID: GPU-...)
        if line.startswith(f"GPU {index}:") and "UUID: " in line:
            return line.split("UUID: ", 1)[1].rstrip(")")
    return "none"


if __name__ == "__main__":
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    print(f"where: host {socket.gethostname()} partition {os.environ.get('SLURM_JOB_PARTITION', '-')} "
          f"job {os.environ.get('SLURM_JOB_ID', '-')} CUDA_VISIBLE_DEVICES={visible or 'unset'} "
          f"gpu {gpu_uuid(visible)}", flush=True)
    sys.exit(train.main())
