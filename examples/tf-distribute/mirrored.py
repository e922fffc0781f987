"""tf.distribute.MirroredStrategy, the multi-GPU episode's shape: one process,
one replica of the model per device, each global batch split among them and
the gradients summed across them before every update.

With GPUs (a GPU node, or a container given them: `hpcshim exec --gpu`) the
replicas are the GPUs. Without, the one CPU is split into --replicas logical
devices, which stand in for them: the same program, the same strategy.

    python mirrored.py --replicas 4     # exits 1 below --min-accuracy
"""

import argparse
import sys

import digits
import tensorflow as tf


def replica_devices(replicas: int) -> list[str]:
    """The GPUs if there are any, else `replicas` logical CPUs. Must run
    before TensorFlow starts its runtime (the first op), as the split is
    fixed from then on."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return [f"/gpu:{i}" for i in range(len(gpus))]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4, help="logical CPU devices when there is no GPU")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch, split among replicas")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-accuracy", type=float, default=0.93)
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error(f"--replicas {args.replicas}: there must be at least one")
    digits.setup(args.threads)
    devices = replica_devices(args.replicas)
    # NCCL, the default all-reduce, is for GPUs; on CPUs the gradients are
    # summed on one device and copied back.
    cross_device = None if devices[0].startswith("/gpu") else tf.distribute.ReductionToOneDevice()
    strategy = tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_device)
    print(f"replicas {strategy.num_replicas_in_sync} devices {','.join(devices)}", flush=True)

    tx, ty, vx, vy = digits.load_data()
    with strategy.scope():
        model = digits.make_model(args.lr)
    model.fit(digits.training_data(tx, ty, args.batch_size), epochs=args.epochs, verbose=0)
    acc = digits.accuracy(model, vx, vy)
    print(f"final test_accuracy {acc:.4f} weights {digits.weights_checksum(model)} "
          f"replicas {strategy.num_replicas_in_sync} tensorflow {tf.__version__}", flush=True)
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
