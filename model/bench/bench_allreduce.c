/*
 * bench_allreduce.c — the cost of summing a gradient block over the ranks of an MPI run
 * (scripts/bench-train-mpi runs it under mpirun): milliseconds per sum of --floats floats
 * as the trainer sums it (nd_mpi_sum_floats: MPI_Allreduce with Open MPI's ring algorithm
 * pinned, for a fixed order of float sums). Rank 0 prints one line:
 *   allreduce ranks=N floats=F sum_ms=...
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

/* Milliseconds per sum of v over the ranks, the median of reps. */
static double time_sum(float *v, size_t n, int reps)
{
    double best[64];
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        uint64_t t0 = nd_now_ns();
        ND_ASSERT(nd_mpi_sum_floats(v, n) == 0);
        best[r] = (double)(nd_now_ns() - t0) * 1e-6;
    }
    for (int i = 1; i < reps; i++) /* insertion sort: a handful of values */
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double t = best[j];
            best[j] = best[j - 1];
            best[j - 1] = t;
        }
    return best[reps / 2];
}

int main(int argc, char **argv)
{
    nd_error e = {0};
    size_t n = argc > 2 && !strcmp(argv[1], "--floats") ? strtoull(argv[2], NULL, 10) : 0;
    if (!n || n > (size_t)1 << 30) {
        fprintf(stderr, "usage: mpirun -np N nd_bench_allreduce --floats F\n");
        return 2;
    }
    if (nd_mpi_start(&argc, &argv, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    float *v = malloc(n * sizeof *v);
    ND_ASSERT(v);
    for (size_t i = 0; i < n; i++) v[i] = 1e-3f * (float)(i % 1000);
    int reps = 21;
    double ms = time_sum(v, n, reps);
    if (nd_mpi_rank() == 0)
        printf("allreduce ranks=%d floats=%zu sum_ms=%.3f\n", nd_mpi_ranks(), n, ms);
    free(v);
    nd_mpi_end(0);
    return 0;
}
