/*
 * gc_gemm.h -- header-only, template-style GEMM for graphc generated C code.
 *
 * Usage (may be repeated any number of times in one translation unit):
 *
 *   #define GC_GEMM_NAME      k3_dense_relu        // required: function name
 *   #define GC_GEMM_REAL      float                // optional: float (default) or double
 *   #define GC_GEMM_EPILOGUE(acc, i, j)  ...       // optional: default (acc); may use `ep`
 *   #define GC_GEMM_ROW_GROUP 4                    // optional, with GC_GEMM_ROW_HOOK
 *   #define GC_GEMM_ROW_HOOK(row, i, j0, n)  ...   // optional: see "Row hook" below
 *   #include "gc_gemm.h"
 *
 * instantiates
 *
 *   void k3_dense_relu(int M, int N, int K,
 *                      const GC_GEMM_REAL *A, int lda, int transA,
 *                      const GC_GEMM_REAL *B, int ldb, int transB,
 *                      GC_GEMM_REAL *C, int ldc, int accumulate,
 *                      const void *const *ep);
 *
 * computing, for 0 <= i < M, 0 <= j < N (all matrices row-major):
 *
 *   C[i*ldc+j] = EPILOGUE( sum_k opA(i,k)*opB(k,j) + (accumulate ? C[i*ldc+j] : 0), i, j )
 *
 * and, without an epilogue, also  void k3_dense_relu_axpy(M, N, K, A, lda, transA, B, ldb,
 * transB, C, ldc, GC_GEMM_REAL alpha)  computing  C[i*ldc+j] += alpha * sum_k opA(i,k)*opB(k,j)
 *
 *   opA(i,k) = transA ? A[k*lda+i] : A[i*lda+k]      (A is K x M resp. M x K)
 *   opB(k,j) = transB ? B[j*ldb+k] : B[k*ldb+j]      (B is N x K resp. K x N)
 *
 * The epilogue is applied exactly once per element, after the full K sum
 * (also when K == 0).  `ep` is an opaque pointer array the epilogue may use.
 *
 * Row hook (a cross-column epilogue: maxout's group maxima, out[i][u] = max_p C[i][u*G + p]):
 * with GC_GEMM_ROW_HOOK(row, i, j0, n) and GC_GEMM_ROW_GROUP G defined (N must be a multiple
 * of G), the hook is called for every row i of C on runs of whole groups: row[0..n) are the
 * finished values C[i][j0..j0+n) (after the epilogue), j0 and n multiples of G; every column
 * of every row is in exactly one call.  Where the tiles the chosen path stores are G-aligned
 * (every path stores C in segments of W columns starting at multiples of W: NR for the register
 * tiles, MR for the transposed-output path, 256 for the matrix-vector path, all N for the
 * small-K and narrow paths), the hook runs inside the epilogue, right after the row of the tile
 * is stored, while it is in L1; the groups of segments that are not G-aligned (G = 3 with
 * 32-column tiles) are done after the product, in a pass over the stored rows.  The hook may
 * use `ep`; it must not write C.
 *
 * Design (BLIS / GotoBLAS): K is split into KC blocks, N into NC blocks; a
 * KC x NC panel of op(B) is packed cooperatively by all threads into a shared
 * buffer, every thread packs MC x KC blocks of op(A) into a thread-local
 * buffer, and a register-blocked MR x NR micro-kernel (GCC vector
 * extensions, width picked from __AVX512F__ / __AVX__ / SSE) computes tiles
 * into a local buffer.  Packing, micro-kernel and driver are shared static
 * functions (one copy per element type per translation unit); only the tile
 * store + epilogue function and a tiny wrapper are generated per
 * instantiation, which keeps the compile cost of an instantiation small.
 * Full-width tiles whose output needs no epilogue go straight from registers
 * to C (row-edge tiles through an edge micro-kernel specialised per row
 * count); column-edge tiles and last-K-block tiles of epilogue instantiations
 * go through a local tile buffer.
 * With a single M block (M <= MC) every B panel is used once per K block, so
 * it is packed right before use into an L1-resident thread-local buffer
 * ("just in time", no barriers), or, for non-transposed B with short rows and
 * M <= 256 (80 when A is packed), read in place.  With a single M block, A is
 * read in place too (the micro-kernel broadcasts from MR rows of A) when it is
 * not transposed and its rows are not a multiple of 4 KiB apart (or M <= 32);
 * otherwise, multi-threaded, the threads pack shares of A into one shared
 * buffer.  With few rows of C and B transposed (or too wide to read in place),
 * C^T = op(B)^T op(A)^T is computed instead ("transposed output", see
 * gc__gemm_tout_).
 * OpenMP: one parallel region per call for problems >= ~2 MFLOP (never nested:
 * called from inside a parallel region it runs single-threaded); M blocks are
 * split over the threads, or, with fewer M blocks than threads, the N panels.
 * Packing buffers are thread-local, grown on demand and reused across calls.
 *
 * Linking the driver instead (graphc's runtime does, see kernels/gc_gemm_core.c): compile
 * gc_gemm_core.c once into an object, and the translation units that instantiate GEMMs with
 * GC_GEMM_CORE_EXTERN defined: they then compile only their epilogues and wrappers, and call
 * the object's gc__gemm_run_f32 / gc__gemm_run_f64.  The tuning knobs must be the same for both.
 *
 * Tuning knobs (define before the first include): GC_GEMM_KC, GC_GEMM_MC,
 * GC_GEMM_NC, GC_GEMM_DIRECT_M, GC_GEMM_DIRECT_M_PA, GC_GEMM_DIRECT_LDB_BYTES,
 * GC_GEMM_DIRECT_A, GC_GEMM_NO_SHARED_A, GC_GEMM_NO_JIT, GC_GEMM_PAR_FLOPS,
 * GC_GEMM_TOUT_M / GC_GEMM_TOUT_PACK (the transposed-output path for few rows of C),
 * GC_GEMM_NARROW (the narrow path for few columns), GC_GEMM_SMALLK / GC_GEMM_SMALLK_M (small K),
 * GC_GEMM_GEMV (one row or column of C),
 * GC_GEMM_PF_EPI (prefetch C's rows for an epilogue that reads them), GC_GEMM_MAX_THREADS() (threads
 * of a parallel call; gc_runtime.h caps it), GC_GEMM_MR (1..16) / GC_GEMM_NV (micro-tile shape),
 * GC_GEMM_WIDE / _MR / _NV / _M / _N / _K (the wide tile of large products).  Micro-tile: 8x32
 * (float) with AVX-512, 6x64 for large float products there (see GC_GEMM_WIDE), 6x16 with
 * AVX/AVX2, 4x8 with SSE (double: half as many columns).
 */

#if !defined(GC_GEMM__PASS)

/* ======================================================================= */
/* Shared part: compiled once per translation unit.                        */
/* ======================================================================= */
#ifndef GC_GEMM__SHARED_DONE
#define GC_GEMM__SHARED_DONE

#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define GC__CAT2(a, b) a##b
#define GC__CAT(a, b) GC__CAT2(a, b)

/* vector width in bytes and micro-tile height (rows of C per micro-tile);
 * a micro-tile is MR rows x (GC__NV vectors) columns. */
#if defined(__AVX512F__)
#define GC__VB 64
#define GC__MR0 8
#define GC__NV0 2
#elif defined(__AVX__)
#define GC__VB 32
#define GC__MR0 6
#define GC__NV0 2
#else
#define GC__VB 16
#define GC__MR0 4
#define GC__NV0 2
#endif
#ifdef GC_GEMM_MR
#define GC__MR GC_GEMM_MR
#if GC_GEMM_MR < 1 || GC_GEMM_MR > 16
#error "gc_gemm.h: GC_GEMM_MR must be 1..16"
#endif
#else
#define GC__MR GC__MR0
#endif
#ifdef GC_GEMM_NV
#define GC__NV GC_GEMM_NV
#else
#define GC__NV GC__NV0
#endif

/* cache blocking (elements of the K dim / rows of C / cols of C) */
#ifndef GC_GEMM_KC
#define GC_GEMM_KC 384
#endif
#ifndef GC_GEMM_MC
#define GC_GEMM_MC 132
#endif
#ifndef GC_GEMM_NC
#define GC_GEMM_NC 4096
#endif
/* read non-transposed B in place (no packing) when M <= this (and M <= MC)
 * and B's rows are at most GC_GEMM_DIRECT_LDB_BYTES apart (larger strides
 * alias in L1 / thrash the TLB) */
#ifndef GC_GEMM_DIRECT_M
#define GC_GEMM_DIRECT_M 256
#endif
/* the same when A is packed (not read in place) */
#ifndef GC_GEMM_DIRECT_M_PA
#define GC_GEMM_DIRECT_M_PA 80
#endif
#ifndef GC_GEMM_DIRECT_LDB_BYTES
#define GC_GEMM_DIRECT_LDB_BYTES 2048
#endif
/* with fewer than nthreads MC blocks, still split M (not N) across the
 * threads when every thread gets at least this many rows */
#ifndef GC_GEMM_SPLITM_MIN
#define GC_GEMM_SPLITM_MIN 1000000
#endif
/* 1: with one M block and several threads, every thread packs all of A
 * itself (no barriers) instead of packing its share into a shared buffer */
#ifndef GC_GEMM_NO_SHARED_A
#define GC_GEMM_NO_SHARED_A 0
#endif
/* 1: with one M block and A not transposed, read A in place (no packing:
 * the micro-kernel broadcasts from MR rows of A) */
#ifndef GC_GEMM_DIRECT_A
#define GC_GEMM_DIRECT_A 1
#endif
/* below this many flops (2*M*N*K) run single-threaded */
/* threads of a parallel call (gc_runtime.h caps it: gc_set_threads) */
#ifndef GC_GEMM_MAX_THREADS
#define GC_GEMM_MAX_THREADS() omp_get_max_threads()
#endif
#ifndef GC_GEMM_PF_EPI
#define GC_GEMM_PF_EPI 1
#endif
#ifndef GC_GEMM_SMALLK
#define GC_GEMM_SMALLK 16 /* K up to this: the row-at-a-time small-K path */
#endif
#ifndef GC_GEMM_SMALLK_M
#define GC_GEMM_SMALLK_M 64 /* ... for at most this many rows (more: the regular path is faster) */
#endif
#ifndef GC_GEMM_PAR_FLOPS
#define GC_GEMM_PAR_FLOPS 2.0e6
#endif
/* A not transposed, M up to this (twice this for transposed B with K >= 512), B transposed or
 * too wide to read in place: compute C^T = op(B)^T op(A)^T (see gc__gemm_tout_); 0 disables */
#ifndef GC_GEMM_TOUT_M
#define GC_GEMM_TOUT_M 64
#endif
/* ... and while the packed op(A)^T (not blocked over K) takes at most this many bytes (L2) */
#ifndef GC_GEMM_TOUT_BYTES
#define GC_GEMM_TOUT_BYTES (1u << 20)
#endif
/* 1: the transposed-output path also for B not transposed, rows too far apart to read in
 * place (off: slower on Intel, see gc__gemm_tout_'s caller) */
#ifndef GC_GEMM_TOUT_NT
#define GC_GEMM_TOUT_NT 0
#endif
/* 1: the transposed-output path packs MR-row panels of B (else reads B's rows in place) */
#ifndef GC_GEMM_TOUT_PACK
#define GC_GEMM_TOUT_PACK 0
#endif
/* the matrix-vector path for one column, one row, or a few rows (up to GC_GEMM_GEMV_ROWS) of
 * C; 0 disables */
#ifndef GC_GEMM_GEMV
#define GC_GEMM_GEMV 1
#endif
#ifndef GC_GEMM_GEMV_ROWS
#define GC_GEMM_GEMV_ROWS 4
#endif
/* the narrow path for few columns of C (C^T in one tall micro-tile); 0 disables */
#ifndef GC_GEMM_NARROW
#define GC_GEMM_NARROW 1
#endif

/* The wide micro-tile (AVX-512, float): the regular path of large products (M >= GC_GEMM_WIDE_M,
 * N >= GC_GEMM_WIDE_N, K >= GC_GEMM_WIDE_K) uses WIDE_MR x WIDE_NV vectors (6 x 64: 24
 * accumulators, 4 loads and 6 broadcasts per 24 FMAs) instead of the default 8 x 32 (16
 * accumulators, 2 loads and 8 broadcasts per 16 FMAs).  Measured on the Intel Xeon VM, 2
 * threads: bench_gemm's large-batch GEMMs of the training steps 362 -> 375 GFLOP/s (geomean of
 * 13 shapes, best of 3 rounds), 512 x 784 x 1024 337 -> 368; the 784-1024-1024-10 SGD step
 * (best of 5 alternating runs) 14.05 -> 13.75 ms at batch 512, 54.0 -> 52.5 at 2048.  Smaller
 * products are faster with 8 x 32: 32 x 256 x 784 with B transposed 324 vs 175 GFLOP/s, and
 * with the thresholds at N >= 128, K >= 64 the 784-256-256-10 step at batch 128 (N = 256,
 * K = 128) went 0.50 -> 0.55 ms.  The regular path is compiled a second time for it (suffix
 * f32w; the core object builds in 1.55 s instead of 1.2).  0 disables. */
#ifndef GC_GEMM_WIDE
#if GC__VB == 64 && !defined(GC_GEMM_MR) && !defined(GC_GEMM_NV)
#define GC_GEMM_WIDE 1
#else
#define GC_GEMM_WIDE 0
#endif
#endif
#ifndef GC_GEMM_WIDE_MR
#define GC_GEMM_WIDE_MR 6
#endif
#ifndef GC_GEMM_WIDE_NV
#define GC_GEMM_WIDE_NV 4
#endif
#ifndef GC_GEMM_WIDE_M
#define GC_GEMM_WIDE_M 256
#endif
#ifndef GC_GEMM_WIDE_N
#define GC_GEMM_WIDE_N 512
#endif
#ifndef GC_GEMM_WIDE_K
#define GC_GEMM_WIDE_K 256
#endif

/* the micro-kernel must use FMA even under -std=c11 (which implies
 * -ffp-contract=off); it is not inlined anyway (called per tile). */
#if defined(__GNUC__) && !defined(__clang__)
#define GC__UKR_ATTR __attribute__((noinline, noclone, optimize("fp-contract=fast")))
#define GC__UKR_BODY_ATTR __attribute__((optimize("fp-contract=fast")))
/* short row copies: inline loops, not a memmove call per row */
#define GC__NOMEMCPY , optimize("no-tree-loop-distribute-patterns")
#else
#define GC__UKR_ATTR __attribute__((noinline))
#define GC__UKR_BODY_ATTR
#define GC__NOMEMCPY
#endif

static inline int gc__min(int a, int b) { return a < b ? a : b; }
static inline int gc__cdiv(int a, int b) { return (a + b - 1) / b; }
static inline int gc__rup(int a, int b) { return gc__cdiv(a, b) * b; }

#ifdef GC_GEMM_CORE_EXTERN
/* The shared driver is compiled elsewhere (kernels/gc_gemm_core.c, built once per compiler and
 * flags into an object the runtime links into every module: it is most of a module's compile
 * time); only its two entry points are declared here. */
#define GC__DECLARE_RUN(T, S)                                                                 \
    int gc__gemm_run_##S(int M, int N, int K, const T *A, int lda, int transA, const T *B,    \
                         int ldb, int transB, T *C, int ldc, int accumulate,                 \
                         const void *const *ep,                                              \
                         void (*st)(int, int, const T *, int, T *, int, int, int,            \
                                    const void *const *),                                    \
                         T alpha);
GC__DECLARE_RUN(float, f32)
GC__DECLARE_RUN(double, f64)
#undef GC__DECLARE_RUN
#else /* the shared driver, in this translation unit */

/* the drivers' linkage: static, or, built as the shared core object, visible to the modules it
 * is linked into but not exported from them */
#ifdef GC_GEMM_CORE_BUILD
#define GC__RUN_LINKAGE __attribute__((visibility("hidden")))
#else
#define GC__RUN_LINKAGE static
#endif

/* Run work(ctx, tid, nth) on up to `tasks` threads when the call has flops enough to be worth
 * a parallel region (and none is running), else on this thread. */
static void gc__parallel(void (*work)(const void *, int, int), const void *ctx, double flops, int tasks)
{
    int nth = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && flops >= GC_GEMM_PAR_FLOPS) nth = GC_GEMM_MAX_THREADS();
#else
    (void)flops;
#endif
    if (nth > tasks) nth = tasks;
    if (nth <= 1) {
        work(ctx, 0, 1);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
    work(ctx, omp_get_thread_num(), omp_get_num_threads());
#endif
}

#if !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L
/* C11's (glibc has it in every mode): under -std=c99 it was implicitly declared as returning
 * int, and the truncated pointer crashed the interpreter */
void *aligned_alloc(size_t alignment, size_t size);
#endif

static void *gc__grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes > *cap) {
        size_t nb = (bytes + 4095) & ~(size_t)4095;
        free(*p);
        *p = aligned_alloc(64, nb);
        *cap = *p ? nb : 0;
    }
    return *p;
}

/* the element types compiled (both unless the core object is built for one: GC_GEMM_CORE_ONLY
 * = 32 or 64, see gc_gemm_core.c) */
#define GC_GEMM__PASS 1
#if !defined(GC_GEMM_CORE_ONLY) || GC_GEMM_CORE_ONLY == 32
#define GC__T float
#define GC__I int
#if GC_GEMM_WIDE /* the regular path with the wide micro-tile, called by the float driver */
#pragma push_macro("GC__MR")
#pragma push_macro("GC__NV")
#undef GC__MR
#undef GC__NV
#define GC__MR GC_GEMM_WIDE_MR
#define GC__NV GC_GEMM_WIDE_NV
#define GC__S f32w
#define GC__WIDE_PASS 1
#include "gc_gemm.h"
#undef GC__WIDE_PASS
#undef GC__S
#pragma pop_macro("GC__MR")
#pragma pop_macro("GC__NV")
#define GC__WIDE_S f32w
#endif
#define GC__S f32
#include "gc_gemm.h"
#undef GC__WIDE_S
#undef GC__T
#undef GC__I
#undef GC__S
#endif
#if !defined(GC_GEMM_CORE_ONLY) || GC_GEMM_CORE_ONLY == 64
#define GC__T double
#define GC__I long long
#define GC__S f64
#include "gc_gemm.h"
#undef GC__T
#undef GC__I
#undef GC__S
#endif
#undef GC_GEMM__PASS
#endif /* GC_GEMM_CORE_EXTERN */

#endif /* GC_GEMM__SHARED_DONE */

#ifndef GC_GEMM_CORE_BUILD /* the core object instantiates nothing */

/* ======================================================================= */
/* Per-instantiation part.                                                 */
/* ======================================================================= */
#ifndef GC_GEMM_NAME
#error "gc_gemm.h: define GC_GEMM_NAME before including"
#endif
#ifndef GC_GEMM_REAL
#define GC_GEMM_REAL float
#endif
#ifndef GC_GEMM_EPILOGUE
#define GC_GEMM_EPILOGUE(acc, i, j) (acc)
#ifdef GC_GEMM_ROW_HOOK /* the hook runs from the epilogue function: keep it */
#define GC__NOEPI 0
#else
#define GC__NOEPI 1
#endif
#else
#define GC__NOEPI 0
#endif
#if defined(GC_GEMM_ROW_HOOK) && !defined(GC_GEMM_ROW_GROUP)
#error "gc_gemm.h: GC_GEMM_ROW_HOOK needs GC_GEMM_ROW_GROUP"
#endif

/* C[i0+r, j0+q] = EPILOGUE(tile[r*ts + q], i0+r, j0+q) for r < mr, q < nr.
 * (The shared driver has already added C to the tile when accumulating.) */
static inline __attribute__((always_inline)) void GC__CAT(GC_GEMM_NAME, __gc_epi_rows)(
    int mr, int nr, const GC_GEMM_REAL *tile, int ts, GC_GEMM_REAL *C, int ldc, int i0, int j0,
    const void *const *ep)
{
    (void)ep;
#ifdef GC_GEMM_ROW_HOOK
    /* whole groups only (see "Row hook"; the late pass in NAME does the others) */
    const int gc_hook = j0 % (GC_GEMM_ROW_GROUP) == 0 && nr % (GC_GEMM_ROW_GROUP) == 0;
#endif
    for (int gc_r = 0; gc_r < mr; ++gc_r) {
        GC_GEMM_REAL *restrict gc_c = C + (size_t)(i0 + gc_r) * (size_t)ldc + j0;
        const GC_GEMM_REAL *restrict gc_t = tile + (size_t)gc_r * ts;
        const int gc_i = i0 + gc_r;
        (void)gc_i;
        /* simd: the epilogue reads elements at (i, j) or broadcast values no epilogue writes,
         * and writes only (i, j) -- of C, and of the side outputs of folded updates, which
         * may be read and written in place -- so columns are independent; without the pragma
         * gcc must assume those pointers alias and keeps the loop scalar */
#ifdef _OPENMP
#pragma omp simd
#endif
        for (int gc_q = 0; gc_q < nr; ++gc_q) {
            const int gc_j = j0 + gc_q;
            (void)gc_j;
            gc_c[gc_q] = GC_GEMM_EPILOGUE(gc_t[gc_q], gc_i, gc_j);
        }
#ifdef GC_GEMM_ROW_HOOK
        if (gc_hook) GC_GEMM_ROW_HOOK(gc_c, gc_i, j0, nr);
#endif
    }
}

static void GC__CAT(GC_GEMM_NAME, __gc_epi)(int mr, int nr, const GC_GEMM_REAL *tile, int ts,
                                            GC_GEMM_REAL *C, int ldc, int i0, int j0,
                                            const void *const *ep)
{
#ifdef GC_GEMM_EPI_FULLW
    enum { GC__NRX = GC__NV * (int)(GC__VB / sizeof(GC_GEMM_REAL)) };
    if (nr == GC__NRX && ts == GC__NRX) /* full-width tile: constant trip count */
        GC__CAT(GC_GEMM_NAME, __gc_epi_rows)(mr, GC__NRX, tile, GC__NRX, C, ldc, i0, j0, ep);
    else
#endif
        GC__CAT(GC_GEMM_NAME, __gc_epi_rows)(mr, nr, tile, ts, C, ldc, i0, j0, ep);
}

#ifdef GC_GEMM_ROW_HOOK
/* The row hook for the groups the epilogue left out: the path stored C in segments of w
 * columns ([s*w, s*w + w) clipped to N); a group in a G-aligned segment was done there (the
 * same test as in NAME__gc_epi_rows), every other one is done here from C: the groups meeting
 * consecutive cut segments as one run (the whole row when no segment is aligned).  The runs are
 * the same for every row. */
static void GC__CAT(GC_GEMM_NAME, __gc_rows_late)(int M, int N, int w, const GC_GEMM_REAL *C,
                                                  int ldc, const void *const *ep)
{
    (void)ep;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(GC_GEMM_MAX_THREADS()) \
    if (!omp_in_parallel() && (double)M * N >= 262144.0)
#endif
    for (int gc_i = 0; gc_i < M; ++gc_i) {
        const GC_GEMM_REAL *const gc_c = C + (size_t)gc_i * (size_t)ldc;
        int gc_lo = 0, gc_hi = 0; /* the pending run of groups: columns [lo, hi) */
        for (int gc_s = 0; gc_s < N; gc_s += w) {
            const int gc_n = gc__min(w, N - gc_s);
            if (gc_s % (GC_GEMM_ROW_GROUP) == 0 && gc_n % (GC_GEMM_ROW_GROUP) == 0)
                continue; /* aligned: done in the epilogue */
            /* the groups meeting [s, s + n) not done yet: from the first group start >= hi */
            const int gc_a = gc_s - gc_s % (GC_GEMM_ROW_GROUP);
            const int gc_b = gc_s + gc_n + (GC_GEMM_ROW_GROUP - 1) - (gc_s + gc_n + GC_GEMM_ROW_GROUP - 1) % (GC_GEMM_ROW_GROUP);
            if (gc_a > gc_hi) { /* not adjacent: flush */
                if (gc_hi > gc_lo) GC_GEMM_ROW_HOOK(gc_c + gc_lo, gc_i, gc_lo, gc_hi - gc_lo);
                gc_lo = gc_a;
            }
            gc_hi = gc_b;
        }
        if (gc_hi > gc_lo) GC_GEMM_ROW_HOOK(gc_c + gc_lo, gc_i, gc_lo, gc_hi - gc_lo);
    }
}
#endif

void GC_GEMM_NAME(int M, int N, int K,
                  const GC_GEMM_REAL *A, int lda, int transA,
                  const GC_GEMM_REAL *B, int ldb, int transB,
                  GC_GEMM_REAL *C, int ldc, int accumulate,
                  const void *const *ep)
{
#ifdef GC_GEMM_ROW_HOOK
    if (N % (GC_GEMM_ROW_GROUP) != 0) abort(); /* a caller's bug: groups must tile the rows */
#endif
    /* w: the width of the column segments C was stored in (see "Row hook") */
    const int w = _Generic((GC_GEMM_REAL *)0, float *: gc__gemm_run_f32, double *: gc__gemm_run_f64)(
        M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, ep,
        GC__NOEPI ? 0 : GC__CAT(GC_GEMM_NAME, __gc_epi), (GC_GEMM_REAL)1);
#ifdef GC_GEMM_ROW_HOOK
    if (w > 0 && w % (GC_GEMM_ROW_GROUP) != 0)
        GC__CAT(GC_GEMM_NAME, __gc_rows_late)(M, N, w, C, ldc, ep);
#else
    (void)w;
#endif
}

#if GC__NOEPI
/* NAME_axpy: C += alpha * op(A) op(B), the product added straight from the registers (plain SGD
 * p -= lr * (h^T g) without a per-tile epilogue pass). */
void GC__CAT(GC_GEMM_NAME, _axpy)(int M, int N, int K,
                                  const GC_GEMM_REAL *A, int lda, int transA,
                                  const GC_GEMM_REAL *B, int ldb, int transB,
                                  GC_GEMM_REAL *C, int ldc, GC_GEMM_REAL alpha)
{
    _Generic((GC_GEMM_REAL *)0, float *: gc__gemm_run_f32, double *: gc__gemm_run_f64)(
        M, N, K, A, lda, transA, B, ldb, transB, C, ldc, 1, 0, 0, alpha);
}
#endif

#undef GC_GEMM_NAME
#undef GC_GEMM_REAL
#undef GC_GEMM_EPILOGUE
#undef GC_GEMM_ROW_HOOK
#undef GC_GEMM_ROW_GROUP
#undef GC__NOEPI

#endif /* GC_GEMM_CORE_BUILD */

#else /* GC_GEMM__PASS */

/* ======================================================================= */
/* Shared template, instantiated for GC__T in {float, double}.             */
/* ======================================================================= */
#define GC__F(name) GC__CAT(name, GC__S)
#define GC__VL ((int)(GC__VB / sizeof(GC__T)))
#define GC__NR (GC__NV * GC__VL)
/* Rows of the narrow path's one micro-tile (see gc__gemm_narrow_): R x NV accumulators plus NV
 * loads and a broadcast fit the vector registers (32 with AVX-512, else 16). */
#if GC__VB == 64
#define GC__NREGS 32
#else
#define GC__NREGS 16
#endif
#if (GC__NREGS - GC__NV - 1) / GC__NV > 16
#define GC__NARROW_R 16
#else
#define GC__NARROW_R ((GC__NREGS - GC__NV - 1) / GC__NV)
#endif
#define GC__RMAX (GC__NARROW_R > GC__MR ? GC__NARROW_R : GC__MR)

/* vector type; aligned(sizeof(T)) so it can load from unaligned addresses */
typedef GC__T GC__F(gc__vec_) __attribute__((vector_size(GC__VB), aligned(sizeof(GC__T))));
typedef void (*GC__F(gc__epi_t_))(int mr, int nr, const GC__T *tile, int ts, GC__T *C, int ldc,
                                  int i0, int j0, const void *const *ep);

static __thread void *GC__F(gc__bufA_);
static __thread size_t GC__F(gc__capA_);
static __thread void *GC__F(gc__bufB_);
static __thread size_t GC__F(gc__capB_);
static __thread void *GC__F(gc__bufS_); /* shared packed A (one M block, N split) */
static __thread size_t GC__F(gc__capS_);
static __thread void *GC__F(gc__bufC_); /* partial sums when an epilogue follows several K blocks */
static __thread size_t GC__F(gc__capC_);
#ifndef GC__WIDE_PASS /* the wide pass compiles the regular path only */
static __thread void *GC__F(gc__bufK_); /* small-K path: op(B) as K x N rows */
static __thread size_t GC__F(gc__capK_);
static __thread void *GC__F(gc__bufR_); /* small-K path: a block of result rows */
static __thread size_t GC__F(gc__capR_);
static __thread void *GC__F(gc__bufX_); /* matrix-vector path: x made contiguous */
static __thread size_t GC__F(gc__capX_);
#endif

/* Micro-kernel body for R rows (compile-time after inlining):
 * T[r][c] = sum_k a[k*MR + r] * b[k*bs + c], r < R, c < NR
 * (a: packed A panel; b: packed B panel with bs = NR, or B itself).
 * out_mode 0: out[r*ldo + c] = alpha * T; 1: out[r*ldo + c] += alpha * T (alpha = 1 except in
 * the axpy entry: exact then).
 * With few accumulators (R*NV <= 6) the k loop runs two independent
 * accumulator sets (even / odd k) to hide the FMA latency. */
static inline __attribute__((always_inline)) GC__UKR_BODY_ATTR void GC__F(gc__ukr_body_)(
    const int R, int kc, const GC__T *restrict a, const long ars, const long aks, const GC__T *restrict b,
    long bs, GC__T *restrict out, long ldo, int out_mode, const GC__T alpha)
{
    typedef GC__F(gc__vec_) V;
    const int two = R * GC__NV <= 6;
    V c[GC__RMAX][GC__NV], d[GC__RMAX][GC__NV]; /* rows >= R are dead code */
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < GC__NV; ++v) c[r][v] = d[r][v] = (V){0};
#ifndef GC_GEMM_NO_PREFETCH_C
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) { /* the tile of C is loaded / stored after the k loop */
        __builtin_prefetch(out + r * ldo, 1, 3);
        __builtin_prefetch(out + r * ldo + GC__NR - 1, 1, 3);
    }
#endif
    int k = 0;
    if (two) {
        for (; k + 2 <= kc; k += 2) {
            V bv[GC__NV], bw[GC__NV];
#pragma GCC unroll 4
            for (int v = 0; v < GC__NV; ++v) {
                bv[v] = *(const V *)(b + v * GC__VL);
                bw[v] = *(const V *)(b + bs + v * GC__VL);
            }
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
                const GC__T ar = a[r * ars], as = a[r * ars + aks];
#pragma GCC unroll 4
                for (int v = 0; v < GC__NV; ++v) {
                    c[r][v] += ar * bv[v];
                    d[r][v] += as * bw[v];
                }
            }
            a += 2 * aks;
            b += 2 * bs;
        }
    }
#define GC__KSTEP                                                                              \
    {                                                                                          \
        V bv[GC__NV];                                                                          \
        _Pragma("GCC unroll 4") for (int v = 0; v < GC__NV; ++v) bv[v] = *(const V *)(b + v * GC__VL); \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) {                                 \
            const GC__T ar = a[r * ars];                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < GC__NV; ++v) c[r][v] += ar * bv[v];    \
        }                                                                                      \
        a += aks;                                                                              \
        b += bs;                                                                               \
    }
    if (R >= GC__MR && !two) { /* full / narrow tile: unrolled k loop (edge tiles: keep the code small) */
#pragma GCC unroll 4
        for (; k < kc; ++k) GC__KSTEP
    } else {
        for (; k < kc; ++k) GC__KSTEP
    }
#undef GC__KSTEP
    if (two) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < GC__NV; ++v) c[r][v] += d[r][v];
    }
    if (out_mode) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < GC__NV; ++v) *(V *)(out + r * ldo + v * GC__VL) += alpha * c[r][v];
    } else {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < GC__NV; ++v) *(V *)(out + r * ldo + v * GC__VL) = alpha * c[r][v];
    }
}

/* Full micro-kernel: MR rows. */
GC__UKR_ATTR static void GC__F(gc__ukr_)(int kc, const GC__T *restrict a, const GC__T *restrict b,
                                         long bs, GC__T *restrict out, long ldo, int out_mode, GC__T alpha)
{
    GC__F(gc__ukr_body_)(GC__MR, kc, a, 1, GC__MR, b, bs, out, ldo, out_mode, alpha);
}

/* Full micro-kernel reading A in place: a[r*lda + k] (row-major, not packed). */
GC__UKR_ATTR static void GC__F(gc__ukr_da_)(int kc, const GC__T *restrict a, long lda, const GC__T *restrict b,
                                            long bs, GC__T *restrict out, long ldo, int out_mode, GC__T alpha)
{
    GC__F(gc__ukr_body_)(GC__MR, kc, a, lda, 1, b, bs, out, ldo, out_mode, alpha);
}

/* Edge micro-kernel: mr < MR rows (only mr rows of out are written; a micro-tile of up to 16
 * rows: GC_GEMM_MR <= 16);
 * A element (r, k) at a[r*ars + k*aks]. */
GC__UKR_ATTR static void GC__F(gc__ukr_edge_)(int mr, int kc, const GC__T *restrict a, long ars, long aks,
                                              const GC__T *restrict b,
                                              long bs, GC__T *restrict out, long ldo, int out_mode, GC__T alpha)
{
    switch (mr) {
#if GC__MR > 1
    case 1: GC__F(gc__ukr_body_)(1, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 2
    case 2: GC__F(gc__ukr_body_)(2, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 3
    case 3: GC__F(gc__ukr_body_)(3, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 4
    case 4: GC__F(gc__ukr_body_)(4, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 5
    case 5: GC__F(gc__ukr_body_)(5, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 6
    case 6: GC__F(gc__ukr_body_)(6, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 7
    case 7: GC__F(gc__ukr_body_)(7, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 8
    case 8: GC__F(gc__ukr_body_)(8, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 9
    case 9: GC__F(gc__ukr_body_)(9, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 10
    case 10: GC__F(gc__ukr_body_)(10, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 11
    case 11: GC__F(gc__ukr_body_)(11, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 12
    case 12: GC__F(gc__ukr_body_)(12, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 13
    case 13: GC__F(gc__ukr_body_)(13, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 14
    case 14: GC__F(gc__ukr_body_)(14, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
#if GC__MR > 15
    case 15: GC__F(gc__ukr_body_)(15, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
#endif
    default: GC__F(gc__ukr_body_)(GC__MR, kc, a, ars, aks, b, bs, out, ldo, out_mode, alpha); break;
    }
}

#ifndef GC__WIDE_PASS
/* Micro-kernel of 1 <= R <= GC__NARROW_R rows, stored to out (row stride ldo): the narrow
 * path's tile, as tall as C has columns. */
GC__UKR_ATTR static void GC__F(gc__ukr_rows_)(int R, int kc, const GC__T *restrict a, long ars, long aks,
                                              const GC__T *restrict b, long bs, GC__T *restrict out, long ldo)
{
    switch (R) {
#if GC__NARROW_R >= 2
    case 2: GC__F(gc__ukr_body_)(2, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 3
    case 3: GC__F(gc__ukr_body_)(3, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 4
    case 4: GC__F(gc__ukr_body_)(4, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 5
    case 5: GC__F(gc__ukr_body_)(5, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 6
    case 6: GC__F(gc__ukr_body_)(6, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 7
    case 7: GC__F(gc__ukr_body_)(7, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 8
    case 8: GC__F(gc__ukr_body_)(8, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 9
    case 9: GC__F(gc__ukr_body_)(9, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 10
    case 10: GC__F(gc__ukr_body_)(10, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 11
    case 11: GC__F(gc__ukr_body_)(11, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 12
    case 12: GC__F(gc__ukr_body_)(12, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 13
    case 13: GC__F(gc__ukr_body_)(13, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 14
    case 14: GC__F(gc__ukr_body_)(14, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 15
    case 15: GC__F(gc__ukr_body_)(15, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
#if GC__NARROW_R >= 16
    case 16: GC__F(gc__ukr_body_)(16, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
#endif
    default: GC__F(gc__ukr_body_)(1, kc, a, ars, aks, b, bs, out, ldo, 0, (GC__T)1); break;
    }
}

#endif /* GC__WIDE_PASS */

/* Pack op(A)[i0:i0+mc, p0:p0+kc] into MR-row panels: dst[panel][k][r]. */
static void GC__F(gc__packA_)(int mc, int kc, const GC__T *A, int lda, int transA, int i0, int p0,
                              GC__T *restrict dst)
{
    for (int ip = 0; ip < mc; ip += GC__MR) {
        const int mr = gc__min(GC__MR, mc - ip);
        GC__T *restrict d = dst + (size_t)ip * kc;
        if (transA) {
            const GC__T *s = A + (size_t)p0 * lda + (i0 + ip);
            if (mr == GC__MR) {
                for (int k = 0; k < kc; ++k, s += lda)
#pragma GCC unroll 16
                    for (int r = 0; r < GC__MR; ++r) d[k * GC__MR + r] = s[r];
            } else {
                for (int k = 0; k < kc; ++k, s += lda)
                    for (int r = 0; r < GC__MR; ++r) d[k * GC__MR + r] = r < mr ? s[r] : (GC__T)0;
            }
        } else {
            const GC__T *s = A + (size_t)(i0 + ip) * lda + p0;
            if (mr == GC__MR) {
                for (int k = 0; k < kc; ++k)
#pragma GCC unroll 16
                    for (int r = 0; r < GC__MR; ++r) d[k * GC__MR + r] = s[(size_t)r * lda + k];
            } else {
                for (int k = 0; k < kc; ++k)
                    for (int r = 0; r < GC__MR; ++r)
                        d[k * GC__MR + r] = r < mr ? s[(size_t)r * lda + k] : (GC__T)0;
            }
        }
    }
}

/* dst[q*ldd + c] = src[c*lds + q] for c, q < 8 */
static inline __attribute__((always_inline)) void GC__F(gc__tr8_)(const GC__T *restrict src, long lds,
                                                                  GC__T *restrict dst, long ldd)
{
    typedef GC__T V8 __attribute__((vector_size(8 * sizeof(GC__T)), aligned(sizeof(GC__T))));
    typedef GC__I M8 __attribute__((vector_size(8 * sizeof(GC__T))));
    V8 r0 = *(const V8 *)(src), r1 = *(const V8 *)(src + lds), r2 = *(const V8 *)(src + 2 * lds),
       r3 = *(const V8 *)(src + 3 * lds), r4 = *(const V8 *)(src + 4 * lds), r5 = *(const V8 *)(src + 5 * lds),
       r6 = *(const V8 *)(src + 6 * lds), r7 = *(const V8 *)(src + 7 * lds);
    const M8 lo1 = {0, 8, 1, 9, 4, 12, 5, 13}, hi1 = {2, 10, 3, 11, 6, 14, 7, 15};
    const M8 lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const M8 lo3 = {0, 1, 2, 3, 8, 9, 10, 11}, hi3 = {4, 5, 6, 7, 12, 13, 14, 15};
    V8 t0 = __builtin_shuffle(r0, r1, lo1), t1 = __builtin_shuffle(r0, r1, hi1);
    V8 t2 = __builtin_shuffle(r2, r3, lo1), t3 = __builtin_shuffle(r2, r3, hi1);
    V8 t4 = __builtin_shuffle(r4, r5, lo1), t5 = __builtin_shuffle(r4, r5, hi1);
    V8 t6 = __builtin_shuffle(r6, r7, lo1), t7 = __builtin_shuffle(r6, r7, hi1);
    V8 u0 = __builtin_shuffle(t0, t2, lo2), u1 = __builtin_shuffle(t0, t2, hi2);
    V8 u2 = __builtin_shuffle(t1, t3, lo2), u3 = __builtin_shuffle(t1, t3, hi2);
    V8 u4 = __builtin_shuffle(t4, t6, lo2), u5 = __builtin_shuffle(t4, t6, hi2);
    V8 u6 = __builtin_shuffle(t5, t7, lo2), u7 = __builtin_shuffle(t5, t7, hi2);
    *(V8 *)(dst + 0 * ldd) = __builtin_shuffle(u0, u4, lo3);
    *(V8 *)(dst + 4 * ldd) = __builtin_shuffle(u0, u4, hi3);
    *(V8 *)(dst + 1 * ldd) = __builtin_shuffle(u1, u5, lo3);
    *(V8 *)(dst + 5 * ldd) = __builtin_shuffle(u1, u5, hi3);
    *(V8 *)(dst + 2 * ldd) = __builtin_shuffle(u2, u6, lo3);
    *(V8 *)(dst + 6 * ldd) = __builtin_shuffle(u2, u6, hi3);
    *(V8 *)(dst + 3 * ldd) = __builtin_shuffle(u3, u7, lo3);
    *(V8 *)(dst + 7 * ldd) = __builtin_shuffle(u3, u7, hi3);
}

/* Pack NR-column panels [plo, phi) of op(B)[p0:p0+kc, j0:j0+nc]:
 * dst[panel - plo][k][c]. */
static void GC__F(gc__packB_)(int kc, int nc, int plo, int phi, const GC__T *B, int ldb, int transB,
                              int p0, int j0, GC__T *restrict dst)
{
    for (int p = plo; p < phi; ++p) {
        const int jp = p * GC__NR;
        const int nr = gc__min(GC__NR, nc - jp);
        GC__T *restrict d = dst + (size_t)(p - plo) * GC__NR * kc;
        if (!transB) {
            const GC__T *s = B + (size_t)p0 * ldb + (j0 + jp);
            if (nr == GC__NR) {
                /* explicit vector copies: a plain copy loop becomes a memcpy call per row */
                typedef GC__F(gc__vec_) V;
                for (int k = 0; k < kc; ++k, s += ldb)
#pragma GCC unroll 4
                    for (int v = 0; v < GC__NV; ++v)
                        *(V *)(d + (size_t)k * GC__NR + v * GC__VL) = *(const V *)(s + v * GC__VL);
            } else {
                for (int k = 0; k < kc; ++k, s += ldb)
                    for (int c = 0; c < GC__NR; ++c) d[k * GC__NR + c] = c < nr ? s[c] : (GC__T)0;
            }
        } else {
            const GC__T *s = B + (size_t)(j0 + jp) * ldb + p0;
            if (nr == GC__NR) {
                int k = 0;
                if (GC__NR % 8 == 0) {
                    /* 8x8 block transposes in registers */
                    for (; k + 8 <= kc; k += 8)
                        for (int cb = 0; cb < GC__NR; cb += 8)
                            GC__F(gc__tr8_)(s + (size_t)cb * ldb + k, ldb, d + (size_t)k * GC__NR + cb, GC__NR);
                }
                for (; k < kc; ++k)
#pragma GCC unroll 4
                    for (int c = 0; c < GC__NR; ++c) d[k * GC__NR + c] = s[(size_t)c * ldb + k];
            } else { /* blocks of 64 k: each of the nr rows read along k, the panel block in L1 */
                for (int k0 = 0; k0 < kc; k0 += 64) {
                    const int k1 = gc__min(kc, k0 + 64);
                    for (int k = k0; k < k1; ++k)
                        for (int c = nr; c < GC__NR; ++c) d[k * GC__NR + c] = (GC__T)0;
                    for (int c = 0; c < nr; ++c)
                        for (int k = k0; k < k1; ++k) d[k * GC__NR + c] = s[(size_t)c * ldb + k];
                }
            }
        }
    }
}

typedef struct {
    int M, N, K, lda, ldb, ldc, tA, tB, acc;
    const GC__T *A, *B;
    GC__T *C;
    /* where partial sums over K blocks go: C itself, or (with an epilogue and several K
     * blocks) a scratch buffer, so that C is written once, with final values: an epilogue
     * may read C's old contents (an in-place update p -= lr * (A @ B) reads p) */
    GC__T *Cacc;
    int ldacc;
    const void *const *ep;
    GC__F(gc__epi_t_) st; /* NULL: identity epilogue */
    GC__T alpha;          /* C (+)= alpha * op(A) op(B); 1 whenever st is set */
    int kc, nc, mc, nI, nJ;
    int direct; /* use B in place (no packing) for full panels */
    int jit;    /* one M block: pack each B panel right before its use (thread-local) */
    int da;     /* one M block, A not transposed: read A in place (no packing) */
    GC__T *Bp;
    GC__T *As; /* non-NULL: one M block packed cooperatively into this shared buffer */
} GC__F(gc__ctx_);

/* Write an mr x nr tile (row stride NR) to C at (i0, j0).  mode bit 0: add
 * the partial sums (Cin: C itself or the scratch accumulator); bit 1: last K
 * block, apply the epilogue st (NULL = identity).  Without an epilogue to apply
 * alpha * tile is added to / stored into C in place (alpha != 1 only without an
 * epilogue).  The tile is modified. */
__attribute__((noinline, noclone GC__NOMEMCPY)) static void GC__F(gc__tile_out_)(int mr, int nr, GC__T *restrict tile,
                                 const GC__T *Cin, int ldin, GC__T *C, int ldc, int i0,
                                 int j0, int mode, GC__F(gc__epi_t_) st, const void *const *ep,
                                 GC__T alpha)
{
    if ((mode & 2) && st) {
        if (mode & 1)
            for (int r = 0; r < mr; ++r) {
                const GC__T *c = Cin + (size_t)(i0 + r) * ldin + j0;
                for (int q = 0; q < nr; ++q) tile[r * GC__NR + q] += c[q];
            }
        st(mr, nr, tile, GC__NR, C, ldc, i0, j0, ep);
        return;
    }
    for (int r = 0; r < mr; ++r) {
        GC__T *c = C + (size_t)(i0 + r) * ldc + j0;
        const GC__T *t = tile + r * GC__NR;
        if (mode & 1)
            for (int q = 0; q < nr; ++q) c[q] += alpha * t[q];
        else
            for (int q = 0; q < nr; ++q) c[q] = alpha * t[q];
    }
}

__attribute__((noinline, noclone)) static void GC__F(gc__work_)(const GC__F(gc__ctx_) *x, int tid, int nth)
{
    const int M = x->M, N = x->N, K = x->K;
    GC__T *Ap = (GC__T *)gc__grow(&GC__F(gc__bufA_), &GC__F(gc__capA_),
                                  ((size_t)x->mc + GC__NR) * x->kc * sizeof(GC__T));
    GC__T *Bedge = Ap + (size_t)x->mc * x->kc; /* direct mode: packed edge panel */
    const int sync = nth > 1 && ((!x->direct && !x->jit) || x->As);
    (void)sync;
    GC__T *Bp = x->Bp;
    GC__T tile[GC__MR * GC__NR] __attribute__((aligned(64)));
    for (int jc = 0; jc < N; jc += x->nc) {
        const int ncur = gc__min(x->nc, N - jc);
        const int npan = gc__cdiv(ncur, GC__NR);
        for (int pc = 0; pc < K; pc += x->kc) {
            const int kcur = gc__min(x->kc, K - pc);
            const int mode = (pc == 0 ? (x->acc ? 1 : 0) : 1) | (pc + kcur >= K ? 2 : 0);
            if (!x->direct && !x->jit) {
                const int plo = (int)((long)tid * npan / nth), phi = (int)((long)(tid + 1) * npan / nth);
                GC__F(gc__packB_)(kcur, ncur, plo, phi, x->B, x->ldb, x->tB, pc, jc,
                                  Bp + (size_t)plo * GC__NR * kcur);
            }
            if (x->As && !x->da) { /* share of the MR-row panels of the single M block */
                const int T = gc__cdiv(M, GC__MR);
                const int tlo = (int)((long)tid * T / nth), thi = (int)((long)(tid + 1) * T / nth);
                const int r0 = tlo * GC__MR, r1 = gc__min(M, thi * GC__MR);
                if (r0 < r1)
                    GC__F(gc__packA_)(r1 - r0, kcur, x->A, x->lda, x->tA, r0, pc,
                                      x->As + (size_t)r0 * kcur);
            }
#ifdef _OPENMP
            if (sync) {
#pragma omp barrier
            }
#endif
            const int items = x->nI * x->nJ;
            const int lo = (int)((long)tid * items / nth), hi = (int)((long)(tid + 1) * items / nth);
            int last_ic = -1;
            for (int it = lo; it < hi; ++it) {
                const int ic = it / x->nJ, jj = it % x->nJ;
                /* block ic = MR-row tiles [ic*T/nI, (ic+1)*T/nI): balanced to one tile */
                const int T = gc__cdiv(M, GC__MR);
                const int i0 = GC__MR * (int)((long)ic * T / x->nI);
                const int i1 = gc__min(M, GC__MR * (int)((long)(ic + 1) * T / x->nI));
                if (i0 >= i1) continue;
                const int mcur = i1 - i0;
                const GC__T *Ablk = x->da ? x->A + (size_t)i0 * x->lda + pc : x->As ? x->As : Ap;
                const long ars = x->da ? x->lda : 1, aks = x->da ? 1 : GC__MR;
                if (ic != last_ic && !x->As && !x->da) {
                    GC__F(gc__packA_)(mcur, kcur, x->A, x->lda, x->tA, i0, pc, Ap);
                    last_ic = ic;
                }
                const int plo = (int)((long)jj * npan / x->nJ), phi = (int)((long)(jj + 1) * npan / x->nJ);
                for (int p = plo; p < phi; ++p) {
                    const int j = jc + p * GC__NR;
                    const int nr = gc__min(GC__NR, N - j);
                    const GC__T *bp = Bp + (size_t)p * GC__NR * kcur;
                    long bs = GC__NR;
                    if (x->jit) {
                        GC__F(gc__packB_)(kcur, ncur, p, p + 1, x->B, x->ldb, x->tB, pc, jc, Bedge);
                        bp = Bedge;
                    } else if (x->direct) {
                        if (nr == GC__NR) {
                            bp = x->B + (size_t)pc * x->ldb + j;
                            bs = x->ldb;
                        } else {
                            GC__F(gc__packB_)(kcur, ncur, p, p + 1, x->B, x->ldb, x->tB, pc, jc, Bedge);
                            bp = Bedge;
                        }
                    }
                    for (int ir = 0; ir < mcur; ir += GC__MR) {
                        const int mr = gc__min(GC__MR, mcur - ir);
                        if (nr == GC__NR && (!(mode & 2) || !x->st)) {
                            /* full-width tile, no epilogue to apply: straight from registers to C */
                            GC__T *cp = x->Cacc + (size_t)(i0 + ir) * x->ldacc + j;
                            if (mr == GC__MR && x->da)
                                GC__F(gc__ukr_da_)(kcur, Ablk + (size_t)ir * ars, ars, bp, bs, cp, x->ldacc, mode & 1, x->alpha);
                            else if (mr == GC__MR)
                                GC__F(gc__ukr_)(kcur, Ablk + (size_t)ir * kcur, bp, bs, cp, x->ldacc, mode & 1, x->alpha);
                            else
                                GC__F(gc__ukr_edge_)(mr, kcur, Ablk + (size_t)ir * (x->da ? ars : kcur), ars, aks, bp,
                                                     bs, cp, x->ldacc, mode & 1, x->alpha);
                        } else {
#if GC_GEMM_PF_EPI
                            if ((mode & 2) && x->st) { /* the epilogue reads C's old values (in-place updates): fetch them meanwhile */
                                const GC__T *cq = x->C + (size_t)(i0 + ir) * x->ldc + j;
                                for (int r = 0; r < mr; ++r) {
                                    __builtin_prefetch(cq + (size_t)r * x->ldc, 1, 3);
                                    __builtin_prefetch(cq + (size_t)r * x->ldc + nr - 1, 1, 3);
                                }
                            }
#endif
                            if (mr == GC__MR && x->da)
                                GC__F(gc__ukr_da_)(kcur, Ablk + (size_t)ir * ars, ars, bp, bs, tile, GC__NR, 0, (GC__T)1);
                            else if (mr == GC__MR)
                                GC__F(gc__ukr_)(kcur, Ablk + (size_t)ir * kcur, bp, bs, tile, GC__NR, 0, (GC__T)1);
                            else
                                GC__F(gc__ukr_edge_)(mr, kcur, Ablk + (size_t)ir * (x->da ? ars : kcur), ars, aks, bp,
                                                     bs, tile, GC__NR, 0, (GC__T)1);
                            const int fin = (mode & 2) && x->st;
                            GC__F(gc__tile_out_)(mr, nr, tile, x->Cacc, x->ldacc, fin ? x->C : x->Cacc,
                                                 fin ? x->ldc : x->ldacc, i0 + ir, j, mode, x->st, x->ep,
                                                 x->alpha);
                        }
                    }
                }
            }
#ifdef _OPENMP
            if (sync) {
#pragma omp barrier
            }
#endif
        }
    }
}

/* The regular path: register tiles over packed (or in-place) panels, blocked for the caches
 * (see "Design").  Returns the width of C's column segments (NR). */
__attribute__((noinline, noclone)) static int GC__F(gc__gemm_tiles_)(
    int M, int N, int K, const GC__T *A, int lda, int transA, const GC__T *B, int ldb, int transB,
    GC__T *C, int ldc, int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    int nth = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && 2.0 * M * (double)N * (double)K >= GC_GEMM_PAR_FLOPS)
        nth = GC_GEMM_MAX_THREADS();
#endif
    GC__F(gc__ctx_) x;
    x.M = M; x.N = N; x.K = K; x.lda = lda; x.ldb = ldb; x.ldc = ldc;
    x.tA = transA; x.tB = transB; x.acc = accumulate;
    x.A = A; x.B = B; x.C = C; x.ep = ep; x.st = st; x.alpha = alpha;
    /* K blocks of balanced size */
    x.kc = gc__cdiv(K, gc__cdiv(K, GC_GEMM_KC));
    x.Cacc = C;
    x.ldacc = ldc;
    if (st && x.kc < K) { /* partial sums in scratch: C is written once, by the epilogue */
        x.Cacc = (GC__T *)gc__grow(&GC__F(gc__bufC_), &GC__F(gc__capC_),
                                   (size_t)M * N * sizeof(GC__T));
        x.ldacc = N;
        if (!x.Cacc) abort(); /* out of memory: like the packing buffers' allocations */
        if (accumulate)
            for (int i = 0; i < M; ++i)
                memcpy(x.Cacc + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * sizeof(GC__T));
    }
    /* N blocks of balanced size, multiple of NR */
    x.nc = gc__rup(gc__cdiv(N, gc__cdiv(N, GC_GEMM_NC)), GC__NR);
    /* M blocks: enough of them to feed all threads, else split the N panels */
    {
        int nIb = gc__cdiv(M, GC_GEMM_MC);
        int nI, nJ;
        if (nIb >= nth || M >= nth * GC_GEMM_SPLITM_MIN) { nI = gc__rup(nIb, nth); nJ = 1; }
        else { nI = nIb; nJ = gc__cdiv(nth, nI); }
        if (nI > gc__cdiv(M, GC__MR)) nI = gc__cdiv(M, GC__MR);
        x.mc = GC__MR * gc__cdiv(gc__cdiv(M, GC__MR), nI); /* largest block */
        x.nI = nI;
        x.nJ = nJ;
    }
    if (nth > 1 && x.nI * x.nJ < nth) nth = x.nI * x.nJ;
    /* A rows a multiple of 4 KiB apart alias in L1 (all MR rows in one set):
     * pack A then, unless there are only a few row tiles */
    x.da = GC_GEMM_DIRECT_A && !transA && x.nI == 1 &&
           (((size_t)lda * sizeof(GC__T)) % 4096 != 0 || M <= 32);
    /* few rows of C: every B element is used only a few times, so packing B
     * would cost about as much as the multiply: read B in place. */
    x.direct = !transB && x.nI <= 1 && M <= (x.da ? GC_GEMM_DIRECT_M : GC_GEMM_DIRECT_M_PA) &&
               (size_t)ldb * sizeof(GC__T) <= GC_GEMM_DIRECT_LDB_BYTES;
#ifndef GC_GEMM_NO_JIT
    x.jit = !x.direct && x.nI == 1;
#else
    x.jit = 0;
#endif
    x.Bp = (x.direct || x.jit) ? NULL
                    : (GC__T *)gc__grow(&GC__F(gc__bufB_), &GC__F(gc__capB_),
                                        (size_t)x.kc * x.nc * sizeof(GC__T));
    x.As = NULL;
    if (nth > 1 && x.nI == 1 && !GC_GEMM_NO_SHARED_A && !x.da)
        x.As = (GC__T *)gc__grow(&GC__F(gc__bufS_), &GC__F(gc__capS_),
                                 (size_t)gc__rup(M, GC__MR) * x.kc * sizeof(GC__T));
    if (nth <= 1) {
        x.As = NULL;
        GC__F(gc__work_)(&x, 0, 1);
        return GC__NR;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
    {
        const int tn = omp_get_num_threads();
        GC__F(gc__ctx_) y = x;
        if (tn != nth && tn > 0) { /* fewer threads than asked: keep it consistent */ }
        GC__F(gc__work_)(&y, omp_get_thread_num(), tn);
    }
#endif
    return GC__NR; /* register tiles: panels of NR columns from column 0 (nc is a multiple) */
}


#ifndef GC__WIDE_PASS /* the other paths and the driver: not in the wide pass */
/* Small K (e.g. the gradient through a 10-class output layer, K = 10): every output is a short
 * dot product, so packing and register tiles cost more than they save.  Row-at-a-time axpy
 * form instead: op(B) copied once as K contiguous rows, then row[j] += a(i,k) * Bk[j], which
 * vectorizes over j; the epilogue is applied to blocks of rows. */
#define GC__SK_ROWS 8
__attribute__((noinline, noclone)) static void GC__F(gc__gemm_smallk_)(
    int M, int N, int K, const GC__T *A, int lda, int transA, const GC__T *B, int ldb, int transB,
    GC__T *C, int ldc, int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    GC__T *Bk = (GC__T *)gc__grow(&GC__F(gc__bufK_), &GC__F(gc__capK_),
                                  (size_t)K * N * sizeof(GC__T));
    for (int k = 0; k < K; ++k)
        for (int j = 0; j < N; ++j)
            Bk[(size_t)k * N + j] = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
    const int blocks = (M + GC__SK_ROWS - 1) / GC__SK_ROWS;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(GC_GEMM_MAX_THREADS()) if (!omp_in_parallel() && \
    2.0 * M * (double)N * (double)K >= 4.0 * GC_GEMM_PAR_FLOPS)
#endif
    for (int b = 0; b < blocks; ++b) {
        const int i0 = b * GC__SK_ROWS, mr = gc__min(GC__SK_ROWS, M - i0);
        GC__T *rows = (GC__T *)gc__grow(&GC__F(gc__bufR_), &GC__F(gc__capR_),
                                        (size_t)GC__SK_ROWS * N * sizeof(GC__T));
        for (int r = 0; r < mr; ++r) {
            GC__T *row = rows + (size_t)r * N;
            const int i = i0 + r;
            GC__T a[GC_GEMM_SMALLK];
            for (int k = 0; k < K; ++k)
                a[k] = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
            /* 64 columns at a time stay in registers across the K products */
            for (int j0 = 0; j0 < N; j0 += 64) {
                const int nj = gc__min(64, N - j0);
                GC__T acc[64];
                for (int j = 0; j < nj; ++j) acc[j] = 0;
                if (nj == 64) {
                    for (int k = 0; k < K; ++k) {
                        const GC__T *bk = Bk + (size_t)k * N + j0;
#pragma omp simd
                        for (int j = 0; j < 64; ++j) acc[j] += a[k] * bk[j];
                    }
                } else {
                    for (int k = 0; k < K; ++k) {
                        const GC__T *bk = Bk + (size_t)k * N + j0;
                        for (int j = 0; j < nj; ++j) acc[j] += a[k] * bk[j];
                    }
                }
                if (accumulate)
                    for (int j = 0; j < nj; ++j) row[j0 + j] = C[(size_t)i * ldc + j0 + j] + alpha * acc[j];
                else
                    for (int j = 0; j < nj; ++j) row[j0 + j] = alpha * acc[j];
            }
        }
        if (st) {
            st(mr, N, rows, N, C, ldc, i0, 0, ep);
        } else {
            for (int r = 0; r < mr; ++r)
                memcpy(C + (size_t)(i0 + r) * ldc, rows + (size_t)r * N, (size_t)N * sizeof(GC__T));
        }
    }
}

/* Few rows of C ("transposed output").  (1) B transposed -- the input gradient dh = g W^T of a
 * small batch, W stored N x K: the regular path would transpose W into packed panels on every
 * call, and each panel would serve only M / MR micro-tiles.  (2) B not transposed but with rows
 * a multiple of 4 KiB apart (h W with W 1024 wide): a panel read in place aliases in L1 and
 * packing it costs as much as its few uses.  Instead compute C^T = op(B)^T op(A)^T: op(B)^T is
 * the MR-row side of the micro-kernel, read in place (broadcasts from B's rows, or from short
 * runs of its columns), the small op(A)^T (K x M) is packed once per thread, and each MR x NR
 * tile of C^T is transposed on its way to C, where accumulate / alpha / the epilogue are applied
 * as usual.  K is not blocked: the packed op(A)^T panel (K x NR) stays in L2. */
static void GC__F(gc__tout_store_)(int mr, int nr, const GC__T *restrict tile, GC__T *C, int ldc,
                                   int m0, int n0, int accumulate, GC__F(gc__epi_t_) st,
                                   const void *const *ep, GC__T alpha)
{
    /* tile: mr (n) x nr (m), row stride NR  ->  tt: nr (m) x mr (n), row stride RMAX */
    GC__T tt[GC__NR * GC__RMAX];
    for (int q = 0; q < nr; ++q)
        for (int r = 0; r < mr; ++r) tt[q * GC__RMAX + r] = tile[r * GC__NR + q];
    if (st) {
        if (accumulate)
            for (int q = 0; q < nr; ++q)
                for (int r = 0; r < mr; ++r) tt[q * GC__RMAX + r] += C[(size_t)(m0 + q) * ldc + n0 + r];
        st(nr, mr, tt, GC__RMAX, C, ldc, m0, n0, ep);
        return;
    }
    for (int q = 0; q < nr; ++q) {
        GC__T *c = C + (size_t)(m0 + q) * ldc + n0;
        if (accumulate)
            for (int r = 0; r < mr; ++r) c[r] += alpha * tt[q * GC__RMAX + r];
        else
            for (int r = 0; r < mr; ++r) c[r] = alpha * tt[q * GC__RMAX + r];
    }
}

/* arguments of the transposed-output and narrow paths (transA: narrow path only) */
typedef struct {
    int M, N, K, lda, ldb, ldc, accumulate, transA, transB;
    const GC__T *A, *B;
    GC__T *C;
    const void *const *ep;
    GC__F(gc__epi_t_) st;
    GC__T alpha;
} GC__F(gc__tctx_);

__attribute__((noinline, noclone)) static void GC__F(gc__tout_work_)(const void *ctx, int tid, int nth)
{
    const GC__F(gc__tctx_) *x = (const GC__F(gc__tctx_) *)ctx;
    const int M = x->M, N = x->N, K = x->K;
    const int npan = gc__cdiv(M, GC__NR);
    /* op(A)^T as NR-column panels: At[p][k][c] = A[p*NR + c][k] (the transposed-B packing) */
    GC__T *At = (GC__T *)gc__grow(&GC__F(gc__bufK_), &GC__F(gc__capK_),
                                  ((size_t)npan * GC__NR + (GC_GEMM_TOUT_PACK ? GC__MR : 0)) * K * sizeof(GC__T));
    if (!At) abort(); /* out of memory: like the other packing buffers */
    GC__F(gc__packB_)(K, M, 0, npan, x->A, x->lda, 1, 0, 0, At);
#if GC_GEMM_TOUT_PACK
    GC__T *Bp = At + (size_t)npan * GC__NR * K;
#endif
    GC__T tile[GC__MR * GC__NR] __attribute__((aligned(64)));
    const int T = gc__cdiv(N, GC__MR);
    const int tlo = (int)((long)tid * T / nth), thi = (int)((long)(tid + 1) * T / nth);
    for (int t = tlo; t < thi; ++t) {
        const int n0 = t * GC__MR, mr = gc__min(GC__MR, N - n0);
#if GC_GEMM_TOUT_PACK
        GC__F(gc__packA_)(mr, K, x->B, x->ldb, !x->transB, n0, 0, Bp); /* rows of op(B)^T */
        const GC__T *a = Bp;
        const long ars = 1, aks = GC__MR;
#else
        /* op(B)^T's rows n0.. : B's rows (transposed B), or its columns read down (not transposed) */
        const GC__T *a = x->transB ? x->B + (size_t)n0 * x->ldb : x->B + n0;
        const long ars = x->transB ? x->ldb : 1, aks = x->transB ? 1 : x->ldb;
#endif
        for (int p = 0; p < npan; ++p) {
            const int m0 = p * GC__NR, nr = gc__min(GC__NR, M - m0);
            const GC__T *bp = At + (size_t)p * GC__NR * K;
            if (mr == GC__MR && !GC_GEMM_TOUT_PACK && x->transB)
                GC__F(gc__ukr_da_)(K, a, ars, bp, GC__NR, tile, GC__NR, 0, (GC__T)1);
            else if (mr == GC__MR && GC_GEMM_TOUT_PACK)
                GC__F(gc__ukr_)(K, a, bp, GC__NR, tile, GC__NR, 0, (GC__T)1);
            else
                GC__F(gc__ukr_edge_)(mr, K, a, ars, aks, bp, GC__NR, tile, GC__NR, 0, (GC__T)1);
            GC__F(gc__tout_store_)(mr, nr, tile, x->C, x->ldc, m0, n0, x->accumulate, x->st, x->ep,
                                   x->alpha);
        }
    }
}

__attribute__((noinline, noclone)) static void GC__F(gc__gemm_tout_)(
    int M, int N, int K, const GC__T *A, int lda, const GC__T *B, int ldb, int transB, GC__T *C, int ldc,
    int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    GC__F(gc__tctx_) x = {M, N, K, lda, ldb, ldc, accumulate, 0, transB, A, B, C, ep, st, alpha};
    gc__parallel(GC__F(gc__tout_work_), &x, 2.0 * M * (double)N * (double)K, gc__cdiv(N, GC__MR));
}

/* Few columns of C (N <= GC__NARROW_R: the 10 classes of an output layer).  The regular path
 * pads every micro-tile to NR columns (10 of 32 used with AVX-512); compute C^T = op(B)^T
 * op(A)^T instead, with all N rows of C^T in one micro-tile (10 x 32, every lane used):
 * op(B)^T's rows are the broadcast side, read in place; op(A)^T is the NR-column side, read in
 * place when A is stored K x M (the weight gradient h^T g: h's rows), else one K x NR panel is
 * packed at a time.  K is not blocked (the sums stay in registers); each tile is transposed on
 * its way to C (gc__tout_store_: accumulate, alpha and the epilogue as usual). */
__attribute__((noinline, noclone)) static void GC__F(gc__narrow_work_)(const void *ctx, int tid, int nth)
{
    const GC__F(gc__tctx_) *x = (const GC__F(gc__tctx_) *)ctx;
    const int M = x->M, N = x->N, K = x->K;
    const int npan = gc__cdiv(M, GC__NR);
    const int plo = (int)((long)tid * npan / nth), phi = (int)((long)(tid + 1) * npan / nth);
    /* op(B)^T (N x K) element (r, k): B[r*ldb + k] (B transposed) or B[k*ldb + r] */
    const GC__T *a = x->B;
    const long ars = x->transB ? x->ldb : 1, aks = x->transB ? 1 : x->ldb;
    GC__T *pan = (GC__T *)gc__grow(&GC__F(gc__bufA_), &GC__F(gc__capA_), (size_t)GC__NR * K * sizeof(GC__T));
    if (!pan) abort(); /* out of memory: like the other packing buffers */
    GC__T tile[GC__RMAX * GC__NR] __attribute__((aligned(64)));
    for (int p = plo; p < phi; ++p) {
        const int m0 = p * GC__NR, nr = gc__min(GC__NR, M - m0);
        const GC__T *bp = pan;
        long bs = GC__NR;
        if (x->transA && nr == GC__NR) { /* op(A)^T = A (K x M): its rows, in place */
            bp = x->A + m0;
            bs = x->lda;
        } else { /* op(A)^T[k][m0 + c] = A[(m0 + c)*lda + k] (or A[k*lda + m0 + c]): one panel */
            GC__F(gc__packB_)(K, M, p, p + 1, x->A, x->lda, !x->transA, 0, 0, pan);
        }
        GC__F(gc__ukr_rows_)(N, K, a, ars, aks, bp, bs, tile, GC__NR);
        GC__F(gc__tout_store_)(N, nr, tile, x->C, x->ldc, m0, 0, x->accumulate, x->st, x->ep, x->alpha);
    }
}

__attribute__((noinline, noclone)) static void GC__F(gc__gemm_narrow_)(
    int M, int N, int K, const GC__T *A, int lda, int transA, const GC__T *B, int ldb, int transB,
    GC__T *C, int ldc, int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    GC__F(gc__tctx_) x = {M, N, K, lda, ldb, ldc, accumulate, transA, transB, A, B, C, ep, st, alpha};
    gc__parallel(GC__F(gc__narrow_work_), &x, 2.0 * M * (double)N * (double)K, gc__cdiv(M, GC__NR));
}

/* One row or one column of C (one sample through a layer, a one-unit layer): the register
 * tiles would use one row or one column of their MR x NR lanes.  Instead y = x op(W) with x
 * one vector of K values: y[j] = sum_k x[k] W'[k][j], as rows of W' scaled and added ("axpy"
 * form, when W' rows are contiguous) or as dot products of contiguous rows of W'^T ("dot"
 * form), in chunks of GC__GV_CHUNK outputs (in parallel over the chunks), each chunk stored
 * through the epilogue like a tile.  M == 1: x = op(A)'s row, W' = op(B), y = C's row.
 * N == 1: C^T = op(B)^T op(A)^T, so x = op(B)'s column, W' = op(A)^T, y = C's column. */
#define GC__GV_CHUNK 256
typedef struct {
    int n, K, ldw, wt; /* W'[k][j] = wt ? W[j*ldw + k] : W[k*ldw + j] */
    const GC__T *x, *W;
    long xs;           /* x[k] at x[k * xs] */
    int m;             /* axpy form: rows of C computed together (x of row r at x + r * xrs) */
    long xrs;
    int col;           /* 1: y is C's column (N == 1) */
    int row;           /* else: y is row `row` of C */
    GC__T *C;
    int ldc, accumulate;
    const void *const *ep;
    GC__F(gc__epi_t_) st;
    GC__T alpha;
} GC__F(gc__gvctx_);

static void GC__F(gc__gemv_chunk_)(const GC__F(gc__gvctx_) *g, int j0)
{
    const int nc = gc__min(GC__GV_CHUNK, g->n - j0), K = g->K, m = g->m;
    /* y[r * GC__GV_CHUNK + j]: C[row + r][j0 + j] (m rows in the axpy form, else one) */
    GC__T y[(GC_GEMM_GEMV_ROWS > 1 ? GC_GEMM_GEMV_ROWS : 1) * GC__GV_CHUNK]
        __attribute__((aligned(64)));
    if (!g->wt) {
        for (int r = 0; r < m; ++r)
            for (int j = 0; j < nc; ++j) y[r * GC__GV_CHUNK + j] = 0;
        int k = 0;
        /* four rows of W' per pass, each read from memory once for all m rows of C (the
         * re-reads for rows 1..m-1 hit L1); each y row is loaded and stored once per pass */
        for (; k + 4 <= K; k += 4) {
            const GC__T *w0 = g->W + (size_t)k * g->ldw + j0, *w1 = w0 + g->ldw;
            const GC__T *w2 = w1 + g->ldw, *w3 = w2 + g->ldw;
            for (int r = 0; r < m; ++r) {
                const GC__T *x = g->x + r * g->xrs;
                const GC__T x0 = x[(long)k * g->xs], x1 = x[(long)(k + 1) * g->xs];
                const GC__T x2 = x[(long)(k + 2) * g->xs], x3 = x[(long)(k + 3) * g->xs];
                GC__T *yr = y + r * GC__GV_CHUNK;
#pragma omp simd
                for (int j = 0; j < nc; ++j)
                    yr[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j];
            }
        }
        for (; k < K; ++k) {
            const GC__T *w = g->W + (size_t)k * g->ldw + j0;
            for (int r = 0; r < m; ++r) {
                const GC__T xk = g->x[r * g->xrs + (long)k * g->xs];
                GC__T *yr = y + r * GC__GV_CHUNK;
#pragma omp simd
                for (int j = 0; j < nc; ++j) yr[j] += xk * w[j];
            }
        }
    } else {
        int j = 0;
        if (g->xs == 1) /* four rows per pass: x is loaded once for four dot products */
            for (; j + 4 <= nc; j += 4) {
                const GC__T *w0 = g->W + (size_t)(j0 + j) * g->ldw, *w1 = w0 + g->ldw;
                const GC__T *w2 = w1 + g->ldw, *w3 = w2 + g->ldw, *x = g->x;
                GC__T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int k = 0; k < K; ++k) {
                    s0 += x[k] * w0[k];
                    s1 += x[k] * w1[k];
                    s2 += x[k] * w2[k];
                    s3 += x[k] * w3[k];
                }
                y[j] = s0; y[j + 1] = s1; y[j + 2] = s2; y[j + 3] = s3;
            }
        for (; j < nc; ++j) {
            const GC__T *w = g->W + (size_t)(j0 + j) * g->ldw;
            GC__T s = 0;
            if (g->xs == 1) {
#pragma omp simd reduction(+ : s)
                for (int k = 0; k < K; ++k) s += g->x[k] * w[k];
            } else {
                for (int k = 0; k < K; ++k) s += g->x[(long)k * g->xs] * w[k];
            }
            y[j] = s;
        }
    }
    /* y as an m x nc tile (rows of C) or an nc x 1 tile (column of C) */
    const int i0 = g->col ? j0 : g->row, c0 = g->col ? 0 : j0;
    const int mr = g->col ? nc : m, nr = g->col ? 1 : nc, ts = g->col ? 1 : GC__GV_CHUNK;
    if (g->col) {
        if (g->st) {
            if (g->accumulate)
                for (int j = 0; j < nc; ++j) y[j] += g->C[(size_t)(j0 + j) * g->ldc];
            g->st(mr, nr, y, ts, g->C, g->ldc, i0, c0, g->ep);
            return;
        }
        for (int j = 0; j < nc; ++j) {
            GC__T *c = g->C + (size_t)(j0 + j) * g->ldc;
            *c = g->accumulate ? *c + g->alpha * y[j] : g->alpha * y[j];
        }
        return;
    }
    for (int r = 0; r < m; ++r) {
        GC__T *const Crow = g->C + (size_t)(g->row + r) * g->ldc + j0, *yr = y + r * GC__GV_CHUNK;
        if (g->st) {
            if (g->accumulate)
                for (int j = 0; j < nc; ++j) yr[j] += Crow[j];
        } else {
            for (int j = 0; j < nc; ++j)
                Crow[j] = g->accumulate ? Crow[j] + g->alpha * yr[j] : g->alpha * yr[j];
        }
    }
    if (g->st) g->st(mr, nr, y, ts, g->C, g->ldc, i0, c0, g->ep);
}

__attribute__((noinline, noclone)) static void GC__F(gc__gemv_)(
    int M, int N, int K, const GC__T *A, int lda, int transA, const GC__T *B, int ldb, int transB,
    GC__T *C, int ldc, int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    /* N == 1: one column; B not transposed (axpy form): all M (few) rows in one pass over B;
     * else (dot form) each row on its own */
    const int together = N != 1 && !transB;
    const int rows = N == 1 || together ? 1 : M;
    for (int i = 0; i < rows; ++i) {
        GC__F(gc__gvctx_) g;
        if (N != 1) { /* row i of C (rows i..M-1 together): x = row i of op(A) */
            g.n = N; g.x = transA ? A + i : A + (size_t)i * lda; g.xs = transA ? lda : 1;
            g.W = B; g.ldw = ldb; g.wt = transB; g.col = 0; g.row = i;
        } else {
            g.n = M; g.x = B; g.xs = transB ? 1 : ldb; g.W = A; g.ldw = lda; g.wt = !transA;
            g.col = 1; g.row = 0;
        }
        g.m = together ? M : 1;
        g.xrs = transA ? 1 : lda;
        g.K = K; g.C = C; g.ldc = ldc; g.accumulate = accumulate; g.ep = ep; g.st = st;
        g.alpha = alpha;
        if (g.wt && g.xs != 1) { /* the dot form wants x contiguous: copy it once */
            GC__T *xc = (GC__T *)gc__grow(&GC__F(gc__bufX_), &GC__F(gc__capX_), (size_t)K * sizeof(GC__T));
            if (!xc) abort(); /* out of memory: like the packing buffers */
            for (int k = 0; k < K; ++k) xc[k] = g.x[(long)k * g.xs];
            g.x = xc;
            g.xs = 1;
        }
        const int chunks = gc__cdiv(g.n, GC__GV_CHUNK);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(GC_GEMM_MAX_THREADS()) if (!omp_in_parallel() && \
    chunks > 1 && 2.0 * g.n * (double)K >= GC_GEMM_PAR_FLOPS)
#endif
        for (int c = 0; c < chunks; ++c) GC__F(gc__gemv_chunk_)(&g, c * GC__GV_CHUNK);
    }
}

/* noclone: keep gcc from cloning the driver per epilogue function pointer
 * (that would make every instantiation pay for a copy of the driver).  Returns the width W
 * of the column segments C was stored (and the epilogue applied) in: [s*W, s*W + W) clipped
 * to N (the row hook's late pass needs it; 0: nothing stored). */
__attribute__((noinline, noclone)) GC__RUN_LINKAGE int GC__F(gc__gemm_run_)(
    int M, int N, int K, const GC__T *A, int lda, int transA, const GC__T *B, int ldb, int transB,
    GC__T *C, int ldc, int accumulate, const void *const *ep, GC__F(gc__epi_t_) st, GC__T alpha)
{
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) { /* empty sum: C = EPILOGUE(accumulate ? C : 0) */
        GC__T zt[GC__MR * GC__NR];
        for (int i = 0; i < M; i += GC__MR)
            for (int j = 0; j < N; j += GC__NR) {
                memset(zt, 0, sizeof zt);
                GC__F(gc__tile_out_)(gc__min(GC__MR, M - i), gc__min(GC__NR, N - j), zt, C, ldc, C, ldc, i, j,
                                     (accumulate ? 1 : 0) | 2, st, ep, (GC__T)1);
            }
        return GC__NR;
    }
    /* measured in a training step (784-256-256-10, the input gradient g W^T through the 10-class
     * layer, K = 10): small-K path 6 us vs 11 at batch 32; 72 vs 56 at 128, 113 vs 48 at 512 */
    /* measured (2 threads): axpy form 1 x 513 x 1024 0.35 -> 0.04 ms, 1025 x 1 x 1025 (A
     * transposed) 0.13 -> 0.07; dot form 1 x 1024 x 1024 (B transposed: the input gradient of
     * a batch of one) 0.66 -> 0.03, 4096 x 1 x 1024 1.4 -> 0.13 */
    /* a few rows: B transposed, dot products per row; B not transposed with rows far apart
     * (which the register tiles would read through the transposed-output path, its 32-lane
     * tiles holding M = 2..4 useful lanes), one pass over B's rows for all of them.
     * Measured (standalone, 2 threads): 2 x 1024 x 1024 0.35 -> 0.05 ms, 4 x 1024 x 1024 0.31 ->
     * 0.08; with B's rows close (4 x 512 x 784) the tiles read B in place and stay faster */
    if (GC_GEMM_GEMV && (M == 1 || N == 1 || (M <= GC_GEMM_GEMV_ROWS && (transB ||
            (size_t)ldb * sizeof(GC__T) > GC_GEMM_DIRECT_LDB_BYTES)))) {
        GC__F(gc__gemv_)(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, ep, st, alpha);
        return N == 1 ? 1 : GC__GV_CHUNK; /* one column: 1-wide segments; a row: chunks */
    }
    if (K <= GC_GEMM_SMALLK && M <= GC_GEMM_SMALLK_M && N <= 8192) {
        GC__F(gc__gemm_smallk_)(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, ep,
                                st, alpha);
        return N; /* whole rows */
    }
    if (GC_GEMM_NARROW && N <= GC__NARROW_R && M > N) {
        GC__F(gc__gemm_narrow_)(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, ep,
                                st, alpha);
        return N; /* whole rows (all N rows of C^T in one tile) */
    }
    /* measured (standalone, 2 threads, 32 x 1024 x 1024): transposed B 121 -> 213 GFLOP/s,
     * B with rows 4 KiB apart 168 -> 209 (AMD EPYC VM).  On the Intel Xeon (AVX-512) VM
     * transposed B 256 -> 366-413, but B not transposed 253-278 -> 172-180 (8 x 1024 x 1024
     * 120 -> 45, 64 x 512 x 2048 320-330 -> 155): that case is off (GC_GEMM_TOUT_NT) */
    if (!transA && (size_t)gc__rup(M, GC__NR) * K * sizeof(GC__T) <= GC_GEMM_TOUT_BYTES &&
        (transB ? M <= GC_GEMM_TOUT_M || (M <= 2 * GC_GEMM_TOUT_M && K >= 512)
                : GC_GEMM_TOUT_NT && M <= GC_GEMM_TOUT_M &&
                  (size_t)ldb * sizeof(GC__T) > GC_GEMM_DIRECT_LDB_BYTES)) {
        GC__F(gc__gemm_tout_)(M, N, K, A, lda, B, ldb, transB, C, ldc, accumulate, ep, st, alpha);
        return GC__MR; /* MR rows of C^T = MR columns of C per tile */
    }
#ifdef GC__WIDE_S
    if (M >= GC_GEMM_WIDE_M && N >= GC_GEMM_WIDE_N && K >= GC_GEMM_WIDE_K)
        return GC__CAT(gc__gemm_tiles_, GC__WIDE_S)(M, N, K, A, lda, transA, B, ldb, transB, C, ldc,
                                                    accumulate, ep, st, alpha);
#endif
    return GC__F(gc__gemm_tiles_)(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, ep,
                                  st, alpha);
}

#endif /* GC__WIDE_PASS */

#undef GC__F
#undef GC__VL
#undef GC__NR
#undef GC__NREGS
#undef GC__NARROW_R
#undef GC__RMAX

#endif /* GC_GEMM__PASS */
