/*
 * gc_gpu_gemm.h -- tiled, register-blocked GEMM kernel template.
 *
 * Written only with the gc_dialect.h macros, so the same text compiles as CUDA
 * and as OpenCL C.  Include (or paste) it after gc_dialect.h, once per kernel
 * instance, after defining:
 *
 *   GC_GEMM_NAME                 kernel name (required)
 *   GC_GEMM_EPILOGUE(acc, i, j)  value stored to C[i, j]  (default: acc)
 *   GC_GEMM_EXTRA_PARAMS         extra parameters used by the epilogue, with a
 *                                leading comma, e.g.
 *                                  , const GC_GLOBAL float* GC_RESTRICT ep0
 *                                (default: empty)
 *   GC_GEMM_REAL                 element type: float (default) or double
 *   GC_GEMM_TM                   per-thread micro tile, 8 (default) or 4
 *   GC_GEMM_WITH_OFFSETS         if defined, each of A, B and C is followed by a
 *                                gc_i64 element offset (offA, offB, offC) added to
 *                                the pointer (buffers shared as base + offset)
 *   GC_GEMM_BATCH(b)             if defined, statements advancing A, B and C to
 *                                batch element b = GC_GROUP_ID(2) + gc_batch0
 *                                (gc_batch0 must be among GC_GEMM_EXTRA_PARAMS);
 *                                launch with the batch count as the third grid
 *                                dimension
 *
 * All of those are #undef'd at the end of this file, so it can be included
 * several times in one program.
 *
 * Signature:
 *   GC_GEMM_NAME(int M, int N, int K,
 *                const GC_GLOBAL real* A, int lda, int transA,
 *                const GC_GLOBAL real* B, int ldb, int transB,
 *                GC_GLOBAL real* C, int ldc, int accumulate GC_GEMM_EXTRA_PARAMS)
 * Semantics (row-major):
 *   C[i,j] = EPILOGUE(sum_k opA[i,k]*opB[k,j] + (accumulate ? C[i,j] : 0), i, j)
 *   opA[i,k] = transA ? A[k*lda + i] : A[i*lda + k]
 *   opB[k,j] = transB ? B[j*ldb + k] : B[k*ldb + j]
 * Any M, N, K >= 0 (edges guarded).  C must not alias A or B.
 *
 * Launch geometry (see graphc.runtime.gpu_common.gemm_launch_geometry):
 *   256 threads per group (1-D), one group per BM x BN tile of C,
 *   BM = BN = 16 * GC_GEMM_TM; row tiles past the grid's y extent are
 *   computed by the groups of the grid (a grid-stride loop over y), so
 *   GY = min(ceil(M/BM), 65535) is enough for any M;
 *   CUDA: grid = (ceil(N/BN), GY), block = (256, 1, 1)
 *   OpenCL: global = (ceil(N/BN) * 256, GY), local = (256, 1)
 *   Skip the launch when M == 0 or N == 0.
 *
 * Design: 256 threads as a 16 x 16 grid; each thread owns a TM x TM block of
 * C split in 2 x 2 sub-blocks of (TM/2) x (TM/2) spaced BM/2 apart, so its
 * shared-memory reads are contiguous (vectorisable) and conflict free.  BK = 8.
 * Tiles of opA (k-major, BK x BM) and opB (BK x BN) live in shared memory,
 * double buffered; the next global tile is prefetched into registers while
 * the current one is consumed, one barrier per k-tile.  The shared rows are
 * padded by 4 elements to avoid bank conflicts on the transposing stores.
 */

#ifndef GC_GEMM_NAME
#error "define GC_GEMM_NAME before including gc_gpu_gemm.h"
#endif
#ifndef GC_GEMM_EPILOGUE
#define GC_GEMM_EPILOGUE(acc, i, j) (acc)
#endif
#ifndef GC_GEMM_EXTRA_PARAMS
#define GC_GEMM_EXTRA_PARAMS
#endif
#ifndef GC_GEMM_REAL
#define GC_GEMM_REAL float
#endif
#ifndef GC_GEMM_TM
#define GC_GEMM_TM 8
#endif

#define GC_GEMM_NT 256                       /* threads per group */
#define GC_GEMM_BM (16 * GC_GEMM_TM)         /* rows of C per group */
#define GC_GEMM_BN (16 * GC_GEMM_TM)         /* cols of C per group */
#define GC_GEMM_BK 8
#define GC_GEMM_SLD (GC_GEMM_BM + 4)         /* padded shared row length */
#define GC_GEMM_HT (GC_GEMM_TM / 2)          /* half micro tile */
#define GC_GEMM_LA ((GC_GEMM_BM * GC_GEMM_BK) / GC_GEMM_NT) /* A loads/thread */
#define GC_GEMM_LB ((GC_GEMM_BN * GC_GEMM_BK) / GC_GEMM_NT) /* B loads/thread */

#ifdef GC_GEMM_WITH_OFFSETS
#define GC_GEMM_OFF_(name) , gc_i64 name
#else
#define GC_GEMM_OFF_(name)
#endif

GC_KERNEL GC_WG_SIZE(256) void GC_GEMM_NAME(
    int M, int N, int K,
    const GC_GLOBAL GC_GEMM_REAL* GC_RESTRICT A GC_GEMM_OFF_(offA), int lda, int transA,
    const GC_GLOBAL GC_GEMM_REAL* GC_RESTRICT B GC_GEMM_OFF_(offB), int ldb, int transB,
    GC_GLOBAL GC_GEMM_REAL* GC_RESTRICT C GC_GEMM_OFF_(offC), int ldc, int accumulate
    GC_GEMM_EXTRA_PARAMS)
{
    GC_LOCAL GC_ALIGN(16) GC_GEMM_REAL gc_As[2 * GC_GEMM_BK * GC_GEMM_SLD];
    GC_LOCAL GC_ALIGN(16) GC_GEMM_REAL gc_Bs[2 * GC_GEMM_BK * GC_GEMM_SLD];

#ifdef GC_GEMM_WITH_OFFSETS
    A += offA;
    B += offB;
    C += offC;
#endif
#ifdef GC_GEMM_BATCH
    /* batched launch: the third group index (plus a base) picks the batch element;
     * GC_GEMM_BATCH(b) advances A, B and C to it */
    {
        const gc_i64 gc_b = (gc_i64)GC_GROUP_ID(2) + (gc_i64)gc_batch0;
        GC_GEMM_BATCH(gc_b)
    }
#endif

    const int tid = GC_LOCAL_ID(0);
    const int tx = tid & 15;          /* column group */
    const int ty = tid >> 4;          /* row group */
    const int bn = GC_GROUP_ID(0) * GC_GEMM_BN;

    /* ---- global -> registers (tile starting at k0) ---- */
#define GC_GEMM_LOAD_A(k0)                                                     \
    {                                                                          \
        _Pragma("unroll")                                                      \
        for (int p = 0; p < GC_GEMM_LA; ++p) {                                 \
            const int l = tid + p * GC_GEMM_NT;                                \
            int row, kk;                                                       \
            if (transA) { kk = l / GC_GEMM_BM; row = l % GC_GEMM_BM; }         \
            else        { row = l / GC_GEMM_BK; kk = l % GC_GEMM_BK; }         \
            const int ok = (row < m_rem) && ((k0) + kk < K);                   \
            ra[p] = ok ? (transA ? Ap[(gc_i64)kk * lda + row]                \
                              : Ap[(gc_i64)row * lda + kk])               \
                       : (GC_GEMM_REAL)0;                                      \
        }                                                                      \
    }
#define GC_GEMM_LOAD_B(k0)                                                     \
    {                                                                          \
        _Pragma("unroll")                                                      \
        for (int p = 0; p < GC_GEMM_LB; ++p) {                                 \
            const int l = tid + p * GC_GEMM_NT;                                \
            int col, kk;                                                       \
            if (transB) { col = l / GC_GEMM_BK; kk = l % GC_GEMM_BK; }         \
            else        { kk = l / GC_GEMM_BN; col = l % GC_GEMM_BN; }         \
            const int ok = (col < n_rem) && ((k0) + kk < K);                   \
            rb[p] = ok ? (transB ? Bp[(gc_i64)col * ldb + kk]                \
                              : Bp[(gc_i64)kk * ldb + col])               \
                       : (GC_GEMM_REAL)0;                                      \
        }                                                                      \
    }
    /* ---- registers -> shared buffer `buf` (k-major layout) ---- */
#define GC_GEMM_STORE(buf)                                                     \
    {                                                                          \
        _Pragma("unroll")                                                      \
        for (int p = 0; p < GC_GEMM_LA; ++p) {                                 \
            const int l = tid + p * GC_GEMM_NT;                                \
            int row, kk;                                                       \
            if (transA) { kk = l / GC_GEMM_BM; row = l % GC_GEMM_BM; }         \
            else        { row = l / GC_GEMM_BK; kk = l % GC_GEMM_BK; }         \
            gc_As[((buf) * GC_GEMM_BK + kk) * GC_GEMM_SLD + row] = ra[p];      \
        }                                                                      \
        _Pragma("unroll")                                                      \
        for (int p = 0; p < GC_GEMM_LB; ++p) {                                 \
            const int l = tid + p * GC_GEMM_NT;                                \
            int col, kk;                                                       \
            if (transB) { col = l / GC_GEMM_BK; kk = l % GC_GEMM_BK; }         \
            else        { kk = l / GC_GEMM_BN; col = l % GC_GEMM_BN; }         \
            gc_Bs[((buf) * GC_GEMM_BK + kk) * GC_GEMM_SLD + col] = rb[p];      \
        }                                                                      \
    }

    /* row tiles: a grid-stride loop over grid y, whose extent is capped (CUDA allows
     * 65535 groups in y; gpu_common.GEMM_MAX_ROW_GROUPS): a group computes row tiles
     * y, y + NUM_GROUPS(1), ...  The bound depends on the group only, so every thread
     * of a group reaches every barrier; the barrier closing the k loop orders a tile's
     * last shared-memory reads before the next tile's first stores.  64-bit: bm plus
     * the step may pass 2^31 for M near it. */
    for (gc_i64 gc_bm = (gc_i64)GC_GROUP_ID(1) * GC_GEMM_BM; gc_bm < M;
         gc_bm += (gc_i64)GC_NUM_GROUPS(1) * GC_GEMM_BM) {
        const int bm = (int)gc_bm;

        /* pointers to the first k-tile of this group's panels; stepping along k
         * is done with 64-bit pointer increments, and the in-tile offsets below
         * (row * lda, col * ldb) are 64-bit products: with lda > 2^24 an int
         * product of a row < 128 overflows (matrices of more than 2^31 elements) */
        const GC_GLOBAL GC_GEMM_REAL* Ap =
            transA ? A + bm : A + (gc_i64)bm * lda;
        const GC_GLOBAL GC_GEMM_REAL* Bp =
            transB ? B + (gc_i64)bn * ldb : B + bn;
        const gc_i64 a_step = transA ? (gc_i64)GC_GEMM_BK * lda : (gc_i64)GC_GEMM_BK;
        const gc_i64 b_step = transB ? (gc_i64)GC_GEMM_BK : (gc_i64)GC_GEMM_BK * ldb;
        const int m_rem = M - bm;         /* valid rows in this tile (may be > BM) */
        const int n_rem = N - bn;

        GC_GEMM_REAL acc[GC_GEMM_TM][GC_GEMM_TM];
        GC_GEMM_REAL ra[GC_GEMM_LA];
        GC_GEMM_REAL rb[GC_GEMM_LB];
        GC_GEMM_REAL fa[GC_GEMM_TM];
        GC_GEMM_REAL fb[GC_GEMM_TM];

#pragma unroll
        for (int r = 0; r < GC_GEMM_TM; ++r) {
#pragma unroll
            for (int c = 0; c < GC_GEMM_TM; ++c) acc[r][c] = (GC_GEMM_REAL)0;
        }

        const int nk = (K + GC_GEMM_BK - 1) / GC_GEMM_BK;

        if (nk > 0) {
            GC_GEMM_LOAD_A(0)
            GC_GEMM_LOAD_B(0)
            GC_GEMM_STORE(0)
        }
        GC_BARRIER();

        for (int kt = 0; kt < nk; ++kt) {
            const int cur = kt & 1;
            const int more = (kt + 1 < nk);
            if (more) {
                Ap += a_step;
                Bp += b_step;
                GC_GEMM_LOAD_A((kt + 1) * GC_GEMM_BK)
                GC_GEMM_LOAD_B((kt + 1) * GC_GEMM_BK)
            }
            const int so = cur * GC_GEMM_BK * GC_GEMM_SLD; /* shared buffer offset */
#pragma unroll
            for (int kk = 0; kk < GC_GEMM_BK; ++kk) {
#pragma unroll
                for (int r = 0; r < GC_GEMM_HT; ++r) {
                    fa[r] = gc_As[so + kk * GC_GEMM_SLD + ty * GC_GEMM_HT + r];
                    fa[r + GC_GEMM_HT] =
                        gc_As[so + kk * GC_GEMM_SLD + GC_GEMM_BM / 2 + ty * GC_GEMM_HT + r];
                }
#pragma unroll
                for (int c = 0; c < GC_GEMM_HT; ++c) {
                    fb[c] = gc_Bs[so + kk * GC_GEMM_SLD + tx * GC_GEMM_HT + c];
                    fb[c + GC_GEMM_HT] =
                        gc_Bs[so + kk * GC_GEMM_SLD + GC_GEMM_BN / 2 + tx * GC_GEMM_HT + c];
                }
#pragma unroll
                for (int r = 0; r < GC_GEMM_TM; ++r) {
#pragma unroll
                    for (int c = 0; c < GC_GEMM_TM; ++c)
                        acc[r][c] += fa[r] * fb[c];
                }
            }
            if (more) GC_GEMM_STORE(cur ^ 1)
            GC_BARRIER();
        }

        /* ---- epilogue ---- */
#pragma unroll
        for (int r = 0; r < GC_GEMM_TM; ++r) {
            const int li = (r < GC_GEMM_HT)
                ? ty * GC_GEMM_HT + r
                : GC_GEMM_BM / 2 + ty * GC_GEMM_HT + (r - GC_GEMM_HT);
            const int i = bm + li;
            if (li < m_rem) {
                GC_GLOBAL GC_GEMM_REAL* Crow = C + (gc_i64)i * ldc;
#pragma unroll
                for (int c = 0; c < GC_GEMM_TM; ++c) {
                    const int lj = (c < GC_GEMM_HT)
                        ? tx * GC_GEMM_HT + c
                        : GC_GEMM_BN / 2 + tx * GC_GEMM_HT + (c - GC_GEMM_HT);
                    const int j = bn + lj;
                    if (lj < n_rem) {
                        GC_GEMM_REAL v = acc[r][c];
                        if (accumulate) v += Crow[j];
                        Crow[j] = GC_GEMM_EPILOGUE(v, i, j);
                    }
                }
            }
        }
    } /* row tiles */
}

#undef GC_GEMM_LOAD_A
#undef GC_GEMM_LOAD_B
#undef GC_GEMM_STORE
#undef GC_GEMM_NT
#undef GC_GEMM_BM
#undef GC_GEMM_BN
#undef GC_GEMM_BK
#undef GC_GEMM_SLD
#undef GC_GEMM_HT
#undef GC_GEMM_LA
#undef GC_GEMM_LB
#undef GC_GEMM_OFF_
/* user parameters: undefined so the template can be instantiated again */
#undef GC_GEMM_NAME
#undef GC_GEMM_EPILOGUE
#undef GC_GEMM_EXTRA_PARAMS
#undef GC_GEMM_REAL
#undef GC_GEMM_TM
#undef GC_GEMM_WITH_OFFSETS
#undef GC_GEMM_BATCH
