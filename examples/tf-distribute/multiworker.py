"""tf.distribute.MultiWorkerMirroredStrategy across Slurm tasks: one process
(and one container) per task, each holding a replica of the model; every
update sums the gradients of all workers (collective all-reduce over gRPC).

Who the workers are comes from Slurm's own variables, read by TensorFlow's
SlurmClusterResolver (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST,
SLURM_STEP_TASKS_PER_NODE): hpcshim passes SLURM_* into the container, with
--cleanenv too. Run it with srun, one task per node (multiworker.sbatch).

    python multiworker.py --port 8888 [--node-addrs node1=10.0.0.1,node2=10.0.0.2]
"""

import argparse
import sys

import digits
import tensorflow as tf

resolvers = tf.distribute.cluster_resolver

def slurm_cluster(port: int, node_addrs: dict[str, str]) -> resolvers.ClusterResolver:
    """The workers as Slurm describes them. The resolver gives each task a
    `nodename:port`; where node names do not resolve (the one-machine cluster
    of scripts/cluster.sh), --node-addrs turns them into the nodes' addresses."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:    # each task gets its share of the node's GPUs (CUDA_VISIBLE_DEVICES)
        slurm = resolvers.SlurmClusterResolver(port_base=port)
    else:
        # The resolver also shares out a node's GPUs, and cannot share zero
        # (it divides by the share): on a CPU node, give it a count that
        # covers any number of tasks, and let it set no CUDA_VISIBLE_DEVICES.
        slurm = resolvers.SlurmClusterResolver(port_base=port, gpus_per_node=64, gpus_per_task=1,
                                               auto_set_gpu=False)
    spec = slurm.cluster_spec().as_dict()
    for job, tasks in spec.items():
        spec[job] = [_address(task, node_addrs) for task in tasks]
    return resolvers.SimpleClusterResolver(tf.train.ClusterSpec(spec), task_type=slurm.task_type,
                                           task_id=slurm.task_id, rpc_layer="grpc")


def _address(task: str, node_addrs: dict[str, str]) -> str:
    host, port = task.rsplit(":", 1)
    return f"{node_addrs.get(host, host)}:{port}"


def parse_addrs(text: str) -> dict[str, str]:
    try:
        return dict(pair.split("=", 1) for pair in text.split(",") if pair)
    except ValueError:
        sys.exit(f"multiworker.py: --node-addrs {text!r}: expected NODE=ADDRESS[,NODE=ADDRESS...]")


def train(strategy, model, data, epochs: int, global_batch: int, rank: int) -> None:
    """The training loop written out (Keras 3.15's model.fit fails under this
    strategy: "Attempt to convert a value (PerReplica...) to a Tensor"). Each
    worker gets its share of each global batch (the strategy shards the data
    set); each replica's gradients are summed across workers by
    apply_gradients, so every worker makes the same update."""
    loss_of = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    batches = strategy.experimental_distribute_dataset(data)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            # Averaged over the global batch, so that the sum across workers is the mean.
            loss = tf.nn.compute_average_loss(loss_of(y, model(x, training=True)), global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def step(x, y):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, y)), axis=None)

    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for x, y in batches:
            total, count = total + float(step(x, y)), count + 1
        print(f"worker {rank} epoch {epoch}/{epochs} loss {total / count:.4f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888, help="each node's first task listens here")
    parser.add_argument("--node-addrs", default="", help="NODE=ADDRESS,... where node names do not resolve")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch, split among workers")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-accuracy", type=float, default=0.90)
    args = parser.parse_args()
    digits.setup(args.threads)
    try:
        resolver = slurm_cluster(args.port, parse_addrs(args.node_addrs))
    except RuntimeError as e:      # outside a Slurm step: "SLURM_PROCID not found in environment..."
        sys.exit(f"multiworker.py: {e} (run it with srun, as multiworker.sbatch does)")
    rank = resolver.task_id
    workers = resolver.cluster_spec().as_dict()["worker"]
    # The strategy starts this worker's gRPC server and waits for the others.
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    print(f"worker {rank}/{len(workers)} cluster {','.join(workers)}", flush=True)

    tx, ty, vx, vy = digits.load_data()
    with strategy.scope():
        model = digits.make_model(args.lr)
    train(strategy, model, digits.training_data(tx, ty, args.batch_size), args.epochs, args.batch_size, rank)
    acc = digits.accuracy(model, vx, vy)
    print(f"worker {rank}/{len(workers)} final test_accuracy {acc:.4f} "
          f"weights {digits.weights_checksum(model)} tensorflow {tf.__version__}", flush=True)
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
