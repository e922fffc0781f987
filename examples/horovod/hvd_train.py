"""The Horovod episode's job: the digits CNN trained data-parallel with
Horovod (PyTorch, over MPI), one process per rank, started by the launcher:

    srun --mpi=pmix -N2 -n4 hpcshim exec IMAGE python hvd_train.py   (hvd.sbatch)
    mpirun -np 2 python hvd_train.py                                  (one node)

hvd.init() learns the rank and the world from MPI (which Slurm's PMIx, or
mpirun, started); there is no MASTER_ADDR to set, unlike DDP. Each rank
trains on its own shard of the training set; hvd.DistributedOptimizer
averages the gradients of all ranks before every step, and rank 0's weights
and optimizer state are broadcast to the others before the first one.

Each rank seeds its model differently (SEED + rank) on purpose: without the
broadcast the ranks would start, and so end, with different weights. With
it, every rank ends with the same weights, and prints their checksum.
"""

import argparse
import hashlib
import sys

import horovod
import horovod.torch as hvd
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

SEED = 0


def make_model() -> nn.Module:
    """The same CNN as ../slurm-ddp/train_ddp.py's, for 8x8 digit images."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def checksum(model: nn.Module) -> str:
    """16 hex digits of a sha256 of every weight's bytes: equal only if bit-identical."""
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_data():
    """sklearn's digits (bundled with it: no download), the same split on every rank."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    tx, vx, ty, vy = train_test_split(x, digits.target.astype(np.int64), test_size=0.25,
                                      random_state=SEED, stratify=digits.target)
    return TensorDataset(torch.from_numpy(tx), torch.from_numpy(ty)), vx, vy


def say(text: str) -> None:
    # One write, newline included: the ranks share one output file, and
    # print's separate write of "\n" can land after another rank's line.
    print(text + "\n", end="", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--lr", type=float, default=2e-3, help="per rank: scaled by the rank count")
    parser.add_argument("--min-accuracy", type=float, default=0.90)
    args = parser.parse_args()

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    torch.set_num_threads(1)            # one core per rank: ranks share the node
    torch.manual_seed(SEED + rank)      # different on each rank: the broadcast must fix it
    say(f"rank {rank}/{size} local_rank {hvd.local_rank()} horovod {horovod.__version__} "
        f"mpi {hvd.mpi_enabled()} initial weights {checksum(make_model())}")

    train, vx, vy = load_data()
    # Each rank its own shard of every epoch (a different shuffle per epoch, the same on all ranks).
    sampler = DistributedSampler(train, num_replicas=size, rank=rank, shuffle=True, seed=SEED)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)

    model = make_model()
    # Horovod's advice: N ranks make a global batch N times larger, in N times
    # fewer steps per epoch, so scale the learning rate by N.
    opt = torch.optim.Adam(model.parameters(), lr=args.lr * size)
    # Averages (allreduce) each gradient across the ranks in backward()'s hooks, waited for in step().
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    # Every rank starts from rank 0's weights and optimizer state.
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)

    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for bx, by in loader:
            opt.zero_grad()
            loss = loss_fn(model(bx), by)
            loss.backward()
            opt.step()
            total, count = total + loss.item(), count + 1
        # The mean loss over all ranks' batches: an allreduce of its own.
        mean = hvd.allreduce(torch.tensor(total / count), name="epoch_loss").item()
        if rank == 0:
            say(f"epoch {epoch}/{args.epochs} loss {mean:.4f}")

    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(vx)).argmax(1).numpy() == vy).mean()
    say(f"rank {rank}/{size} final test_accuracy {acc:.4f} weights {checksum(model)}")
    hvd.shutdown()
    if acc < args.min_accuracy:
        print(f"rank {rank}: test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
