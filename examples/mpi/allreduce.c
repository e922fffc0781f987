/* Every rank contributes rank+1; MPI_Allreduce sums them on every rank.
 * With N ranks each must get N*(N+1)/2: a check that the ranks found each
 * other (through PMIx under srun --mpi=pmix, or mpirun's own launcher). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size, len;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);

    long mine = rank + 1, sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    long want = (long)size * (size + 1) / 2;
    printf("rank %d/%d on %s: allreduce sum=%ld expected=%ld %s\n",
           rank, size, host, sum, want, sum == want ? "OK" : "WRONG");
    fflush(stdout);
    MPI_Finalize();
    return sum == want ? 0 : 1;
}
