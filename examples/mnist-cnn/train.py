"""A small CNN trained on scikit-learn's digits (8x8 handwritten digits,
1797 images, shipped inside the scikit-learn package: no download).

The same file runs on the host, in `minict run`, and through `hpcshim exec`
(minict or ch-run): that is the point. It prints one line per epoch and a
last line with the test accuracy and a checksum of the trained weights, so
runs can be compared: same torch, same CPU, same seed -> same weights.

    python3 train.py                      # train, check accuracy >= --min-accuracy
    python3 train.py --bench-steps 300    # time a fixed number of steps (bench/workload)
"""

import argparse
import hashlib
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0


def load_data():
    """(train_x, train_y, test_x, test_y) as tensors; pixels scaled to 0..1."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]    # N x 1 x 8 x 8
    y = digits.target.astype(np.int64)
    tx, vx, ty, vy = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx), torch.from_numpy(vy)


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 32 x 4 x 4
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def weights_checksum(model: nn.Module) -> str:
    """sha256 of every parameter's bytes, in order: equal only if bit-identical."""
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        right = (model(x).argmax(dim=1) == y).sum().item()
    model.train()
    return right / len(y)


def batches(x, y, size, generator):
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), size):
        idx = order[start:start + size]
        yield x[idx], y[idx]


def train(args) -> int:
    tx, ty, vx, vy = load_data()
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(SEED)
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for bx, by in batches(tx, ty, args.batch_size, shuffle):
            opt.zero_grad()
            loss = loss_fn(model(bx), by)
            loss.backward()
            opt.step()
            total += loss.item() * len(by)
        print(f"epoch {epoch}/{args.epochs} loss {total / len(ty):.4f} "
              f"test_accuracy {accuracy(model, vx, vy):.4f}", flush=True)
    acc = accuracy(model, vx, vy)
    print(f"final test_accuracy {acc:.4f} weights {weights_checksum(model)} "
          f"torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


def bench(args) -> int:
    """A fixed number of training steps on the same batch, timed after a warm-up."""
    tx, ty, _, _ = load_data()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    bx, by = tx[:args.batch_size], ty[:args.batch_size]

    def step():
        opt.zero_grad()
        loss_fn(model(bx), by).backward()
        opt.step()

    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(args.bench_steps):
        step()
    seconds = time.perf_counter() - start
    print(f"steps {args.bench_steps} seconds {seconds:.4f} steps_per_s {args.bench_steps / seconds:.2f} "
          f"threads {torch.get_num_threads()}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-accuracy", type=float, default=0.95,
                        help="exit 1 if the final test accuracy is below this")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--bench-steps", type=int, default=0, help="time this many steps instead of training")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    return bench(args) if args.bench_steps else train(args)


if __name__ == "__main__":
    sys.exit(main())
