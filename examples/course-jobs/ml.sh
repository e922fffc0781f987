#!/bin/bash
# Pawsey's ml.sh (its containers course: TensorFlow's MNIST CNN in Shifter on
# one node), with only the container command swapped:   sbatch ml.sh IMAGE
# IMAGE: the ML image directory, with its /ch/environment (README.md). The
# job's directory must hold convolutional.py and train.py (../mnist-cnn).
#SBATCH --ntasks=1
#SBATCH --export=NONE
#SBATCH --time=00:10:00

# --export=NONE: no variable of the submitting shell reaches the job (the
# node's login environment does), so IMAGE comes as the script's argument.
IMAGE=${1:?usage: sbatch ml.sh IMAGE}

# Was: srun --export=all shifter run tensorflow/tensorflow:1.13.1 python convolutional.py
# Shifter binds the site's filesystems and starts in the job's directory;
# ch-run (which hpcshim picks here) shows only what is bound and starts in /.
srun --export=all hpcshim run -B "$PWD:/workspace" "$IMAGE" python /workspace/convolutional.py
