"""Data-parallel training of the digits CNN with PyTorch DistributedDataParallel
(gloo backend, CPU), started either way HPC users start it:

- by Slurm, one task per rank:  srun --ntasks=2 hpcshim exec IMAGE python3 train_ddp.py
  RANK, WORLD_SIZE and LOCAL_RANK come from SLURM_PROCID, SLURM_NTASKS and
  SLURM_LOCALID; MASTER_ADDR/MASTER_PORT from the sbatch script (ddp.sbatch),
  or, when it did not set them, 127.0.0.1 and a port derived from the job id.
- by torchrun in one task:      torchrun --nproc_per_node 2 train_ddp.py
  torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
  itself; they win over Slurm's (its children all have SLURM_PROCID=0).

DDP averages the gradients of all ranks at every step, so every rank ends
with the same weights: each prints a checksum of them, and they must match.
"""

import hashlib
import os
import sys
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

SEED = 0
EPOCHS = int(os.environ.get("EPOCHS", "5"))


def rendezvous() -> tuple[int, int, int]:
    """(rank, world size, local rank), with MASTER_ADDR/MASTER_PORT set for env://."""
    env = os.environ
    rank = int(env.get("RANK", env.get("SLURM_PROCID", "0")))
    world = int(env.get("WORLD_SIZE", env.get("SLURM_NTASKS", "1")))
    local = int(env.get("LOCAL_RANK", env.get("SLURM_LOCALID", "0")))
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    # Two jobs on one node must not pick the same port: derive it from the job.
    env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
    return rank, world, local


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def checksum(model: nn.Module) -> str:
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    rank, world, local = rendezvous()
    torch.set_num_threads(1)            # one core per rank: ranks share the node
    torch.manual_seed(SEED)             # the same initial weights on every rank
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    tx, vx, ty, vy = train_test_split(x, digits.target.astype(np.int64), test_size=0.25,
                                      random_state=SEED, stratify=digits.target)
    train = TensorDataset(torch.from_numpy(tx), torch.from_numpy(ty))
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=SEED)
    loader = DataLoader(train, batch_size=32, sampler=sampler)      # each rank: its own shard

    model = DistributedDataParallel(make_model())
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        for bx, by in loader:
            opt.zero_grad()
            loss_fn(model(bx), by).backward()     # backward() all-reduces the gradients
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(vx)).argmax(1).numpy() == vy).mean()
    # One write for the whole line, newline included: the ranks share one
    # output file, and print's separate write of "\n" (unbuffered stdout)
    # can land after another rank's line.
    print(f"rank {rank}/{world} local_rank {local} master {os.environ['MASTER_ADDR']}:"
          f"{os.environ['MASTER_PORT']} test_accuracy {acc:.4f} weights {checksum(model.module)}\n",
          end="", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
