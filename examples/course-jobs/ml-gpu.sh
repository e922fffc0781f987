#!/bin/bash
# Pawsey's ml-gpu.sh: ml.sh on one GPU, with only the container command
# swapped:   sbatch ml-gpu.sh IMAGE      (see ml.sh and README.md)
#SBATCH --ntasks=1
#SBATCH --export=NONE
#SBATCH --time=00:10:00
#SBATCH --gres=gpu:1

IMAGE=${1:?usage: sbatch ml-gpu.sh IMAGE}

# Was: srun --export=all shifter run tensorflow/tensorflow:1.13.1 python convolutional.py
# --gpu: hpcshim injects the GPU Slurm gave the job (its driver libraries,
# nvidia-smi, CUDA_VISIBLE_DEVICES), which Shifter's site configuration did.
srun --export=all hpcshim run --gpu -B "$PWD:/workspace" "$IMAGE" python /workspace/convolutional.py
