/*
 * version.c — `netdiffus --version`: the version, the commit and date of the build, and
 * what the binary was built with and runs here (DPDK, MPI, CPU kernels, OpenBLAS).
 */
#include <stdlib.h>

#include "cli.h"
#include "nd_version.h"
#include "nn.h"

void cli_version(FILE *out)
{
    fprintf(out, "netdiffus %s (commit %s, built %s)\n", ND_VERSION, ND_COMMIT, ND_BUILD_DATE);
    fprintf(out, "build: %s%s%s, DPDK %s, MPI %s\n", ND_BUILD_TYPE,
            ND_BUILD_NATIVE ? ", -march=native (this CPU only)" : ", any x86-64",
            ND_BUILD_SANITIZE ? ", ASan + UBSan" : "",
            ND_HAVE_DPDK ? "yes" : "no (-DND_DPDK=OFF: no dpdk: sources or sinks)",
            ND_HAVE_MPI ? "yes" : "no (-DND_MPI=OFF: one process, never mpirun's ranks)");
    fprintf(out, "CPU kernels: compiled");
    for (int level = 0; level < ND_CPU_N; level++)
        if (nd_cpu_compiled(level)) fprintf(out, " %s", nd_cpu_name(level));
    nd_error e = {0};
    int level = nd_cpu_select(&e);
    const char *env = getenv("ND_CPU");
    if (level < 0) fprintf(out, "; none selected: %s\n", e.msg);
    else
        fprintf(out, "; selected %s (%s)\n", nd_cpu_name(level),
                env && *env ? "forced by ND_CPU" : "the best this CPU has");
    fprintf(out, "OpenBLAS: %s\n", nd_blas_config());
}
