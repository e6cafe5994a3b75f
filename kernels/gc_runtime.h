/*
 * gc_runtime.h -- the header every generated CPU translation unit includes first.
 * Maps graphc's portable math names (shared with the GPU dialect) to C99 <math.h>, then pulls
 * in the scalar functions of gc_math.h.
 */
#ifndef GC_RUNTIME_H
#define GC_RUNTIME_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef uint64_t gc_u64;
typedef int64_t gc_i64;

#define GC_INLINE static inline

#define gc_expf expf
#define gc_logf logf
#define gc_sqrtf sqrtf
#define gc_fabsf fabsf
#define gc_tanhf tanhf
#define gc_powf powf
#define gc_erff erff
#define gc_log1pf log1pf
#define gc_expm1f expm1f
#define gc_cosf cosf
#define gc_sinf sinf
#define gc_fmaxf fmaxf
#define gc_fminf fminf
#define gc_floorf floorf
#define gc_exp exp
#define gc_log log
#define gc_sqrt sqrt
#define gc_fabs fabs
#define gc_tanh tanh
#define gc_pow pow
#define gc_erf erf
#define gc_log1p log1p
#define gc_expm1 expm1
#define gc_cos cos
#define gc_sin sin
#define gc_fmax fmax
#define gc_fmin fmin
#define gc_floor floor

/* glibc's vector math (libmvec, x86-64): declared callable from SIMD loops, vectorized loops
 * call _ZGVeN16v_expf & co. (16 lanes per call with AVX-512, at most 4 ulp from the correctly
 * rounded result) instead of the scalar function once per element.  glibc declares them
 * itself only under -ffast-math, whose other rewrites graphc does not want.  GC_LIBMVEC is
 * defined by the runtime when it links libmvec (graphc/runtime/cpu.py). */
#if defined(GC_LIBMVEC) && defined(_OPENMP) && defined(__x86_64__) && defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 35)
#define GC__SIMD_DECL(type, name) _Pragma("omp declare simd notinbranch") extern type name(type);
GC__SIMD_DECL(float, expf) GC__SIMD_DECL(float, logf) GC__SIMD_DECL(float, tanhf)
GC__SIMD_DECL(float, erff) GC__SIMD_DECL(float, log1pf) GC__SIMD_DECL(float, expm1f)
GC__SIMD_DECL(float, sinf) GC__SIMD_DECL(float, cosf)
GC__SIMD_DECL(double, exp) GC__SIMD_DECL(double, log) GC__SIMD_DECL(double, tanh)
GC__SIMD_DECL(double, erf) GC__SIMD_DECL(double, log1p) GC__SIMD_DECL(double, expm1)
GC__SIMD_DECL(double, sin) GC__SIMD_DECL(double, cos)
#undef GC__SIMD_DECL
#endif
#endif

#include "gc_math.h"

/* Thread count of every parallel region in this module: gc_set_threads(n) (called by
 * graphc.set_num_threads, and with 1 in a child process forked after OpenMP started: libgomp's
 * thread pool does not survive fork, and a parallel region there would wait forever).
 * 0: OpenMP's default.  At most GC_MAX_THREADS whatever was asked (set_num_threads or
 * OMP_NUM_THREADS): libgomp allocates a team's start data on the stack (OMP_NUM_THREADS=99999
 * overflowed it, a segfault) and ends the process when it cannot create a thread. */
#define GC_MAX_THREADS 1024
static int gc__threads_cap;
void gc_set_threads(int n) { gc__threads_cap = n > 0 ? n : 0; }
#ifdef _OPENMP
static inline int gc_threads(void)
{
    int n = gc__threads_cap > 0 ? gc__threads_cap : omp_get_max_threads();
    return n < GC_MAX_THREADS ? n : GC_MAX_THREADS;
}
#else
static inline int gc_threads(void) { return 1; }
#endif
int gc_get_threads(void) { return gc_threads(); }
/* the same for the GEMM driver when it is linked in as the shared core object (gc_gemm_core.c) */
__attribute__((visibility("hidden"))) int gc__module_threads(void) { return gc_threads(); }
#define GC_GEMM_MAX_THREADS() gc_threads()

#ifdef GC_PROFILE
/* wall-clock seconds for the per-kernel timers (GRAPHC_PROFILE=1), with or without OpenMP */
#ifdef _OPENMP
static inline double gc_wtime(void) { return omp_get_wtime(); }
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#include <time.h>
static inline double gc_wtime(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#else
#include <time.h>
static inline double gc_wtime(void) { return (double)clock() / CLOCKS_PER_SEC; }
#endif
#endif

/* Parallelize a loop only when it has enough work to pay for waking the threads. */
#define GC_PAR_MIN 32768

#endif /* GC_RUNTIME_H */
