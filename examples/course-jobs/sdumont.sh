#!/bin/bash
# SDumont's CNN job (LNCC's course: a PyTorch CNN from the user's repository
# on scratch, in Singularity), with only the container command swapped:
#   SCRATCH=DIR sbatch sdumont.sh IMAGE
# DIR/my_repo must hold cnn_gpu.py and train.py (../mnist-cnn); the results
# are written there. SCRATCH defaults to SDumont's /scratch/ideeps/$USER.
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=10
#SBATCH --no-requeue
#SBATCH --time=00:20:00

IMAGE=${1:?usage: SCRATCH=DIR sbatch sdumont.sh IMAGE}
SCRATCH=${SCRATCH:-/scratch/ideeps/$USER}

# Was: singularity run -B /scratch/ideeps/<user>:my_scratch pytorch20.03.sif \
#          sh -c 'cd my_scratch/my_repo && python cnn_gpu.py --epochs 5 --batch_size 16'
# /my_scratch, not my_scratch: Singularity takes a relative destination as
# relative to /, hpcshim asks for the absolute path.
hpcshim run -B "$SCRATCH:/my_scratch" "$IMAGE" \
    sh -c 'cd /my_scratch/my_repo && python cnn_gpu.py --epochs 5 --batch_size 16'
