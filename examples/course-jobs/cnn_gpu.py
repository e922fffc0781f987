"""Stand-in for the SDumont course's cnn_gpu.py: its flags (--epochs,
--batch_size) translated for our digits CNN (train.py, beside this file, from
../mnist-cnn), which runs on the CPU here. What it prints also goes into
results-JOB.txt in the working directory (the scratch repository), as the
original's results did.

5 epochs of batch 16 reach 94.7% on the digits, under train.py's default
bar of 95%: the bar asked here is 90%.
"""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    job = os.environ.get("SLURM_JOB_ID", "local")
    with open(f"results-{job}.txt", "w") as results:
        def say(line: str) -> None:
            print(line, end="", flush=True)
            results.write(line)
        say(f"where: host {socket.gethostname()} partition {os.environ.get('SLURM_JOB_PARTITION', '-')} "
            f"job {job} cpus {os.environ.get('SLURM_CPUS_PER_TASK', '-')} cwd {os.getcwd()}\n")
        training = subprocess.Popen([sys.executable, str(HERE / "train.py"), "--epochs", str(args.epochs),
                                     "--batch-size", str(args.batch_size), "--min-accuracy", "0.90"],
                                    stdout=subprocess.PIPE, text=True)
        for line in training.stdout:
            say(line)
    sys.exit(training.wait())
