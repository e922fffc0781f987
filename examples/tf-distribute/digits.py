"""What mirrored.py and multiworker.py share: the digits data set (inside
scikit-learn: no download), the CNN of examples/tensorflow-cnn, a checksum of
its weights, and the deterministic set-up. Import it before anything else
touches TensorFlow (it sets TensorFlow's environment first)."""

import hashlib
import os

os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

SEED = 0


def setup(threads: int) -> None:
    """Fixed threads and seeds: TensorFlow's CPU results depend on both."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()


def load_data():
    """(train_x, train_y, test_x, test_y); pixels scaled to 0..1, N x 8 x 8 x 1."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    tx, vx, ty, vy = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return tx, ty, vx, vy


def make_model(lr: float) -> tf.keras.Model:
    """Build and compile: call it inside strategy.scope(), so that its
    variables are mirrored on every replica."""
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(8, 8, 1)),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.MaxPooling2D(2),
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


def training_data(x, y, batch_size: int) -> tf.data.Dataset:
    """Shuffled (seeded) batches; the strategy splits each global batch among
    its replicas. The short last batch is dropped: split four ways, a batch of
    three leaves one replica an empty batch, which the CPU convolution rejects."""
    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=SEED, reshuffle_each_iteration=True)
    return data.batch(batch_size, drop_remainder=True)


def accuracy(model: tf.keras.Model, x, y) -> float:
    """Test accuracy, the model called directly (not distributed: every
    replica holds the same weights)."""
    predicted = np.argmax(model(x, training=False).numpy(), axis=1)
    return float(np.mean(predicted == y))
