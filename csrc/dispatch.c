/* Runtime instruction-set choice; see dispatch.h. */
#include "dispatch.h"

int pycnn_isa_level = PYCNN_ISA_BASELINE;

int pycnn_isa_supported(int isa)
{
    if (isa == PYCNN_ISA_BASELINE) return 1;
#if PYCNN_HAVE_DISPATCH
    __builtin_cpu_init();
    if (isa == PYCNN_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == PYCNN_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2")
               && __builtin_cpu_supports("fma");
#endif
    return 0;
}

int pycnn_avx512_verified(void)
{
#ifdef PYCNN_AVX512_VERIFIED
    return 1;
#else
    return 0;
#endif
}

int pycnn_isa_default(void)
{
    if (pycnn_isa_supported(PYCNN_ISA_AVX512) && pycnn_avx512_verified())
        return PYCNN_ISA_AVX512;
    if (pycnn_isa_supported(PYCNN_ISA_AVX2)) return PYCNN_ISA_AVX2;
    return PYCNN_ISA_BASELINE;
}

int pycnn_isa_active(void) { return pycnn_isa_level; }

int pycnn_isa_set(int isa)
{
    if (isa < 0) isa = pycnn_isa_default();
    if (!pycnn_isa_supported(isa)) return -1;
    pycnn_isa_level = isa;
    return 0;
}
