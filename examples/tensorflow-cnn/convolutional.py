"""A small Keras CNN trained on scikit-learn's digits (8x8 handwritten digits,
1797 images, shipped inside the scikit-learn package: no download). The
lesson's convolutional.py trains on MNIST, which it downloads; the digits
need no network, which the containers here do not have.

The same file runs on the host, in `minict run`, and through `hpcshim exec`
(minict, ch-run, Apptainer). It prints one line per epoch and a last line
with the test accuracy and a checksum of the trained weights, so runs can be
compared: same TensorFlow, same CPU, same seed, same threads -> same weights.

    python convolutional.py                     # train, check accuracy >= --min-accuracy
    python convolutional.py --bench-steps 200   # time training steps (bench/workload)
"""

import argparse
import hashlib
import os
import sys
import time

# Before TensorFlow is imported: deterministic kernels, no C++ start-up chatter.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

SEED = 0


def load_data():
    """(train_x, train_y, test_x, test_y); pixels scaled to 0..1, N x 8 x 8 x 1."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    tx, vx, ty, vy = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return tx, ty, vx, vy


def make_model(lr: float) -> tf.keras.Model:
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(8, 8, 1)),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.MaxPooling2D(2),                                   # 4 x 4 x 32
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(10)])
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def weights_checksum(model: tf.keras.Model) -> str:
    """sha256 of every weight's bytes, in order: equal only if bit-identical."""
    h = hashlib.sha256()
    for weight in model.get_weights():
        h.update(np.ascontiguousarray(weight).tobytes())
    return h.hexdigest()[:16]


class EpochLine(tf.keras.callbacks.Callback):
    """One line per epoch, the same on every runtime (Keras' progress bar is not)."""

    def __init__(self, epochs, vx, vy):
        super().__init__()
        self.epochs, self.vx, self.vy = epochs, vx, vy

    def on_epoch_end(self, epoch, logs=None):
        _, acc = self.model.evaluate(self.vx, self.vy, verbose=0)
        print(f"epoch {epoch + 1}/{self.epochs} loss {logs['loss']:.4f} test_accuracy {acc:.4f}", flush=True)


def train(args) -> int:
    tx, ty, vx, vy = load_data()
    model = make_model(args.lr)
    model.fit(tx, ty, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0,
              callbacks=[EpochLine(args.epochs, vx, vy)])
    _, acc = model.evaluate(vx, vy, verbose=0)
    print(f"final test_accuracy {acc:.4f} weights {weights_checksum(model)} "
          f"tensorflow {tf.__version__} threads {args.threads}", flush=True)
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


def bench(args) -> int:
    """A fixed number of training steps on the same batch, timed after a warm-up."""
    tx, ty, _, _ = load_data()
    model = make_model(args.lr)
    bx, by = tx[:args.batch_size], ty[:args.batch_size]
    for _ in range(20):                  # the first steps trace and compile the step
        model.train_on_batch(bx, by)
    start = time.perf_counter()
    for _ in range(args.bench_steps):
        model.train_on_batch(bx, by)
    seconds = time.perf_counter() - start
    print(f"steps {args.bench_steps} seconds {seconds:.4f} steps_per_s {args.bench_steps / seconds:.2f} "
          f"threads {args.threads}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--min-accuracy", type=float, default=0.95,
                        help="exit 1 if the final test accuracy is below this")
    parser.add_argument("--threads", type=int, default=2,
                        help="TensorFlow's intra- and inter-op threads (fixed: results depend on them)")
    parser.add_argument("--bench-steps", type=int, default=0, help="time this many steps instead of training")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(SEED)          # Python's, numpy's and TensorFlow's seeds
    tf.config.experimental.enable_op_determinism()
    return bench(args) if args.bench_steps else train(args)


if __name__ == "__main__":
    sys.exit(main())
