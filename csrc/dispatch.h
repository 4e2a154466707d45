/* Runtime choice of the instruction set the kernels run with.
 *
 * Wheels are built for baseline x86-64 (no -march=native). Hot loops are compiled a
 * second and third time with AVX2 and AVX-512 enabled through per-function target
 * attributes, and each public kernel calls the variant of the active level. The level
 * is the default (below) unless set otherwise (tests force each level on). On
 * compilers or machines without target attributes only the baseline exists.
 *
 * Code that has never run must not be the default (issue 12): the AVX-512 variants are
 * the default only in a build whose sources were verified on AVX-512 hardware, which
 * setup.py says by defining PYCNN_AVX512_VERIFIED (tools/simd_digest.py); otherwise the
 * default stops at AVX2 and AVX-512 runs only when set explicitly. */
#ifndef PYCNN_DISPATCH_H
#define PYCNN_DISPATCH_H

enum { PYCNN_ISA_BASELINE = 0, PYCNN_ISA_AVX2 = 1, PYCNN_ISA_AVX512 = 2 };

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define PYCNN_HAVE_DISPATCH 1
#define PYCNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PYCNN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#else
#define PYCNN_HAVE_DISPATCH 0
#endif

/* 1 when `isa` can run here. */
int pycnn_isa_supported(int isa);
/* Level used unless another is set: the best supported, capped at AVX2 unless the
 * AVX-512 variants were verified (PYCNN_AVX512_VERIFIED). */
int pycnn_isa_default(void);
/* 1 when this build's AVX-512 variants were verified on hardware. */
int pycnn_avx512_verified(void);
/* Level the kernels use now. */
int pycnn_isa_active(void);
/* Use `isa` from now on (-1: the default). Returns 0, or -1 when unsupported.
 * Not thread-safe against running kernels: call it at start-up or in tests. */
int pycnn_isa_set(int isa);

extern int pycnn_isa_level;  /* read by the kernels' dispatch switches */

/* In a public entry point: call NAME##_avx512, NAME##_avx2 or NAME##_base with ARGS,
 * the variant of the active level. RET is `return` in a function with a value and
 * empty in a void one (PYCNN_DISPATCH / PYCNN_DISPATCH_RETURN). */
#if PYCNN_HAVE_DISPATCH
#define PYCNN_DISPATCH_CALL(RET, NAME, ARGS)                                            \
    switch (pycnn_isa_level) {                                                          \
    case PYCNN_ISA_AVX512: RET NAME##_avx512 ARGS; break;                               \
    case PYCNN_ISA_AVX2: RET NAME##_avx2 ARGS; break;                                   \
    default: RET NAME##_base ARGS;                                                      \
    }
#else
#define PYCNN_DISPATCH_CALL(RET, NAME, ARGS) RET NAME##_base ARGS;
#endif
#define PYCNN_DISPATCH(NAME, ARGS) PYCNN_DISPATCH_CALL(, NAME, ARGS)
#define PYCNN_DISPATCH_RETURN(NAME, ARGS) PYCNN_DISPATCH_CALL(return, NAME, ARGS)

#endif /* PYCNN_DISPATCH_H */
