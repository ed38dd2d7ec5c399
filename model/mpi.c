/*
 * mpi.c — the ranks of an MPI run, for `mpirun -np N netdiffus train|sample`: joining the
 * run that mpirun started, the rank and the number of ranks, and the few collectives the
 * trainer and the sampler need (dm.c), each with a fixed order of summation, so that a
 * run gives the same bits every time: the gradient block's MPI_Allreduce with Open MPI's
 * ring algorithm pinned, scalars gathered and added in rank order. Built without MPI
 * (-DND_MPI=OFF), every process is a run of one rank, and a process that mpirun started as one
 * of several says that this build has no MPI. See docs/SCALE.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "model_impl.h"
#include "model.h"

#if ND_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank, g_ranks = 1, g_local = 1; /* local: ranks on this host */
#if ND_HAVE_MPI
static double *g_gather; /* (ranks): nd_mpi_sum's values */
#endif

/* The number of processes mpirun started, from the environment it gives each (Open MPI,
 * or a PMI launcher such as MPICH's); 0 when no launcher started this one. */
static long launched_size(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    return v ? strtol(v, NULL, 10) : 0;
}

int nd_mpi_start(int *argc, char ***argv, nd_error *e)
{
    long n = launched_size();
#if ND_HAVE_MPI
    if (n < 1) return 1;
    int provided;
    /* MPI_Allreduce's order of the float sums is its algorithm's, which Open MPI picks by
     * message size, rank count and host layout: pinning the ring (its tuned component's
     * algorithm 4: a reduce-scatter where each chunk is summed round the ring, then an
     * allgather of the sums) fixes the order by the rank count alone, and gives every rank
     * the same bits. A user's own choice in the environment wins. */
    setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
    setenv("OMPI_MCA_coll_tuned_allreduce_algorithm", "4", 0);
    /* OpenMP threads run the layers, but only the main thread calls MPI */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_ranks);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &g_local);
    MPI_Comm_free(&local);
    g_gather = malloc((size_t)g_ranks * sizeof *g_gather);
    if (!g_gather) {
        MPI_Finalize();
        return nd_error_set(e, -ENOMEM, "mpi: out of memory");
    }
    return g_ranks;
#else
    (void)argc, (void)argv;
    if (n > 1)
        return nd_error_set(e, ND_EUSAGE,
                            "mpirun started %ld copies of netdiffus, but this build has no "
                            "MPI (build with libopenmpi-dev installed, or -DND_MPI=ON)",
                            n);
    return 1;
#endif
}

int nd_mpi_rank(void) { return g_rank; }
int nd_mpi_ranks(void) { return g_ranks; }

void nd_mpi_end(int status)
{
#if ND_HAVE_MPI
    int on;
    MPI_Initialized(&on);
    if (!on) return;
    free(g_gather);
    g_gather = NULL;
    /* a rank that failed takes the others down with it: they may be waiting for it in a
     * collective that would never end */
    if (status) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
#else
    (void)status;
#endif
}

int nd_mpi_threads(int threads)
{
    if (threads > 0 || g_local <= 1) return threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores >= 2 * g_local ? (int)(cores / g_local) : 1;
}

#if ND_HAVE_MPI

int nd_mpi_or(int bits)
{
    if (g_ranks == 1) return bits;
    int out;
    MPI_Allreduce(&bits, &out, 1, MPI_INT, MPI_BOR, MPI_COMM_WORLD);
    return out;
}

double nd_mpi_sum(double v)
{
    if (g_ranks == 1) return v;
    MPI_Allgather(&v, 1, MPI_DOUBLE, g_gather, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    double s = 0.0;
    for (int r = 0; r < g_ranks; r++) s += g_gather[r];
    return s;
}

int nd_mpi_sum_floats(float *v, size_t n)
{
    if (g_ranks == 1) return 0;
    for (size_t at = 0; at < n; at += (size_t)1 << 30) {
        size_t len = n - at < (size_t)1 << 30 ? n - at : (size_t)1 << 30;
        MPI_Allreduce(MPI_IN_PLACE, v + at, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    return 0;
}

void nd_mpi_bcast(void *p, size_t bytes, int root)
{
    if (g_ranks == 1) return;
    for (size_t at = 0; at < bytes; at += (size_t)1 << 30) {
        size_t len = bytes - at < (size_t)1 << 30 ? bytes - at : (size_t)1 << 30;
        MPI_Bcast((char *)p + at, (int)len, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

#else /* one rank: nothing to exchange */

int nd_mpi_or(int bits) { return bits; }
double nd_mpi_sum(double v) { return v; }
int nd_mpi_sum_floats(float *v, size_t n) { return 0; }
void nd_mpi_bcast(void *p, size_t bytes, int root) {}

#endif
