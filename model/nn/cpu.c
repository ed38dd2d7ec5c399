/*
 * cpu.c — which convolution kernels run: what the build compiled (ND_NN_AVX512*, set by
 * CMakeLists.txt where the compiler targets them), what the CPU has (asked at run time,
 * so that the binary built on one machine runs on any x86-64), and ND_CPU, which forces
 * a lower path.
 */
#include <stdlib.h>
#include <string.h>

#include "nn_impl.h"

static const char *const cpu_names[ND_CPU_N] = {
    [ND_CPU_GENERIC] = "generic",
    [ND_CPU_AVX512] = "avx512",
    [ND_CPU_AVX512BF16] = "avx512bf16",
};

const char *nd_cpu_name(int level)
{
    return level >= 0 && level < ND_CPU_N ? cpu_names[level] : "?";
}

int nd_cpu_compiled(int level)
{
    switch (level) {
    case ND_CPU_GENERIC: return 1;
    case ND_CPU_AVX512: return ND_NN_AVX512;
    case ND_CPU_AVX512BF16: return ND_NN_AVX512BF16;
    default: return 0;
    }
}

int nd_cpu_supported(int level)
{
    if (!nd_cpu_compiled(level)) return 0;
#if defined(__x86_64__)
    /* libgcc's (and compiler-rt's) feature bits include the OS check (XGETBV): a kernel
     * whose registers the OS does not save counts as absent. */
    __builtin_cpu_init();
    switch (level) {
    case ND_CPU_GENERIC: return 1;
    case ND_CPU_AVX512: return __builtin_cpu_supports("avx512f");
    case ND_CPU_AVX512BF16:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    default: return 0;
    }
#else
    return level == ND_CPU_GENERIC;
#endif
}

static int cpu_best(void)
{
    int best = ND_CPU_GENERIC;
    while (best + 1 < ND_CPU_N && nd_cpu_supported(best + 1)) best++;
    return best;
}

int nd_cpu_select(nd_error *e)
{
    int best = cpu_best();
    const char *want = getenv("ND_CPU");
    if (!want || !*want) return best;
    for (int level = 0; level < ND_CPU_N; level++) {
        if (strcmp(want, cpu_names[level])) continue;
        if (level <= best) return level;
        return nd_error_set(e, ND_ECONFIG,
                            "ND_CPU=%s: this %s has no %s kernels (it runs up to %s)", want,
                            nd_cpu_compiled(level) ? "CPU" : "build", want, cpu_names[best]);
    }
    return nd_error_set(e, ND_ECONFIG,
                        "ND_CPU=%s: expected generic, avx512 or avx512bf16 (or unset: the best "
                        "this CPU has, here %s)",
                        want, cpu_names[best]);
}
