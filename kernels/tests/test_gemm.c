/* Correctness tests for kernels/gc_gemm.h against a naive double-precision
 * reference: many shapes, all transpose combos, padded leading dimensions,
 * accumulate on/off, epilogues using ep and (i, j), float and double, single-
 * and multi-threaded. Exit status non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- instantiations ---- */
#define GC_GEMM_NAME gemm_f32
#include "gc_gemm.h"

#define GC_GEMM_NAME gemm_f64
#define GC_GEMM_REAL double
#include "gc_gemm.h"

/* bias + relu, bias per column j from ep[0] */
#define GC_GEMM_NAME gemm_f32_bias_relu
#define GC_GEMM_EPILOGUE(acc, i, j) \
    ((acc) + ((const float *)ep[0])[j] > 0.0f ? (acc) + ((const float *)ep[0])[j] : 0.0f)
#include "gc_gemm.h"

#define GC_GEMM_NAME gemm_f64_bias_relu
#define GC_GEMM_REAL double
#define GC_GEMM_EPILOGUE(acc, i, j) \
    ((acc) + ((const double *)ep[0])[j] > 0.0 ? (acc) + ((const double *)ep[0])[j] : 0.0)
#include "gc_gemm.h"

/* epilogue depending on i and j (and a scalar from ep[1]) */
#define GC_GEMM_NAME gemm_f32_ij
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) * ((const float *)ep[1])[0] + (float)(i) - 0.5f * (float)(j))
#include "gc_gemm.h"

#define GC_GEMM_NAME gemm_f64_ij
#define GC_GEMM_REAL double
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) * ((const double *)ep[1])[0] + (double)(i) - 0.5 * (double)(j))
#include "gc_gemm.h"

/* in-place update: the epilogue reads C's old value (p -= 0.5 * (A @ B));
 * ep[0] = C, ep[1] = its row stride */
#define GC_GEMM_NAME gemm_f32_inplace
#define GC_GEMM_EPILOGUE(acc, i, j) \
    (((const float *)ep[0])[(long)(i) * *(const int *)ep[1] + (j)] - 0.5f * (acc))
#include "gc_gemm.h"

/* ---- reference ---- */
/* EPI_AXPY: the NAME_axpy entry, C += ALPHA * op(A) op(B) (accumulates whatever acc says) */
enum { EPI_NONE = 0, EPI_BIAS_RELU = 1, EPI_IJ = 2, EPI_AXPY = 3, EPI_KINDS = 4 };
#define ALPHA (-0.375)

static double epi_ref(int kind, double acc, int i, int j, const double *bias, double scale)
{
    switch (kind) {
    case EPI_BIAS_RELU: { double v = acc + bias[j]; return v > 0 ? v : 0; }
    case EPI_IJ: return acc * scale + (double)i - 0.5 * (double)j;
    default: return acc;
    }
}

#include "test_util.h"

/* Runs one case for float (is_double = 0) or double (is_double = 1). */
static void run_case(int is_double, int M, int N, int K, int tA, int tB, int padA, int padB, int padC,
                     int acc, int epi)
{
    const int arows = tA ? K : M, acols = tA ? M : K;
    const int brows = tB ? N : K, bcols = tB ? K : N;
    const int lda = acols + padA, ldb = bcols + padB, ldc = N + padC;
    const size_t na = (size_t)arows * lda + 1, nb = (size_t)brows * ldb + 1, nc = (size_t)M * ldc + 1;
    double *Ad = malloc(na * sizeof(double)), *Bd = malloc(nb * sizeof(double));
    double *Cd = malloc(nc * sizeof(double)), *Cref = malloc(nc * sizeof(double));
    double *biasd = malloc((size_t)(N + 1) * sizeof(double));
    float *Af = malloc(na * sizeof(float)), *Bf = malloc(nb * sizeof(float));
    float *Cf = malloc(nc * sizeof(float)), *biasf = malloc((size_t)(N + 1) * sizeof(float));
    double scale_d = 0.75;
    float scale_f = 0.75f;
    for (size_t t = 0; t < na; ++t) { Ad[t] = frand(); Af[t] = (float)Ad[t]; }
    for (size_t t = 0; t < nb; ++t) { Bd[t] = frand(); Bf[t] = (float)Bd[t]; }
    for (size_t t = 0; t < nc; ++t) { Cd[t] = frand(); Cf[t] = (float)Cd[t]; }
    for (int t = 0; t <= N; ++t) { biasd[t] = 0.5 * frand(); biasf[t] = (float)biasd[t]; }
    /* reference, computed from the (possibly float-rounded) inputs */
    double *biasr = malloc((size_t)(N + 1) * sizeof(double));
    for (int t = 0; t <= N; ++t) biasr[t] = is_double ? biasd[t] : (double)biasf[t];
    const double scale = is_double ? scale_d : (double)scale_f;
    for (size_t t = 0; t < nc; ++t) Cref[t] = is_double ? Cd[t] : (double)Cf[t];
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int k = 0; k < K; ++k) {
                size_t ia = tA ? (size_t)k * lda + i : (size_t)i * lda + k;
                size_t ib = tB ? (size_t)j * ldb + k : (size_t)k * ldb + j;
                s += is_double ? Ad[ia] * Bd[ib] : (double)Af[ia] * (double)Bf[ib];
            }
            double *c = &Cref[(size_t)i * ldc + j];
            if (epi == EPI_AXPY)
                *c += ALPHA * s;
            else
                *c = epi_ref(epi, s + (acc ? *c : 0.0), i, j, biasr, scale);
        }
    free(biasr);
    const void *ep_d[2] = {biasd, &scale_d};
    const void *ep_f[2] = {biasf, &scale_f};
    if (is_double) {
        if (epi == EPI_NONE) gemm_f64(M, N, K, Ad, lda, tA, Bd, ldb, tB, Cd, ldc, acc, ep_d);
        else if (epi == EPI_AXPY) gemm_f64_axpy(M, N, K, Ad, lda, tA, Bd, ldb, tB, Cd, ldc, ALPHA);
        else if (epi == EPI_BIAS_RELU) gemm_f64_bias_relu(M, N, K, Ad, lda, tA, Bd, ldb, tB, Cd, ldc, acc, ep_d);
        else gemm_f64_ij(M, N, K, Ad, lda, tA, Bd, ldb, tB, Cd, ldc, acc, ep_d);
    } else {
        if (epi == EPI_NONE) gemm_f32(M, N, K, Af, lda, tA, Bf, ldb, tB, Cf, ldc, acc, ep_f);
        else if (epi == EPI_AXPY) gemm_f32_axpy(M, N, K, Af, lda, tA, Bf, ldb, tB, Cf, ldc, (float)ALPHA);
        else if (epi == EPI_BIAS_RELU) gemm_f32_bias_relu(M, N, K, Af, lda, tA, Bf, ldb, tB, Cf, ldc, acc, ep_f);
        else gemm_f32_ij(M, N, K, Af, lda, tA, Bf, ldb, tB, Cf, ldc, acc, ep_f);
    }
    /* compare (including padding: it must be untouched) */
    const double tol = is_double ? 1e-12 * (K + 2) : 2e-6 * (K + 2);
    double maxerr = 0;
    int bad = 0;
    for (int i = 0; i < M && !bad; ++i)
        for (int j = 0; j < ldc; ++j) {
            size_t t = (size_t)i * ldc + j;
            double got = is_double ? Cd[t] : (double)Cf[t];
            double mag = fabs(Cref[t]) > 1 ? fabs(Cref[t]) : 1;
            if (epi == EPI_IJ && i + j > mag) mag = i + j; /* epilogue terms may cancel */
            double err = fabs(got - Cref[t]) / mag;
            if (j >= N) err = (got == Cref[t]) ? 0 : 1e30; /* padding must not change */
            if (!(err <= tol)) { bad = 1; maxerr = err; break; }
            if (err > maxerr) maxerr = err;
        }
    if (!bad) {
        size_t t = nc - 1; /* guard element after the last row */
        if ((is_double ? Cd[t] : (double)Cf[t]) != Cref[t]) bad = 1;
    }
    ++n_tests;
    if (bad) {
        ++n_fail;
        if (n_fail <= 20)
            printf("FAIL %s M=%d N=%d K=%d tA=%d tB=%d pad=(%d,%d,%d) acc=%d epi=%d maxerr=%g\n",
                   is_double ? "f64" : "f32", M, N, K, tA, tB, padA, padB, padC, acc, epi, maxerr);
    }
    free(Ad); free(Bd); free(Cd); free(Cref); free(biasd);
    free(Af); free(Bf); free(Cf); free(biasf);
}

int main(void)
{
    static const int sizes[] = {0, 1, 2, 3, 5, 7, 13, 17, 31, 33, 64, 100, 257};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    int threads_list[2] = {1, 2};
    int nthl = 1;
#ifdef _OPENMP
    nthl = 2;
#endif
    for (int tl = 0; tl < nthl; ++tl) {
#ifdef _OPENMP
        omp_set_num_threads(threads_list[tl]);
#endif
        long before = n_tests;
        /* exhaustive small-ish grid */
        for (int a = 0; a < ns; ++a)
            for (int b = 0; b < ns; ++b)
                for (int c = 0; c < ns; ++c) {
                    const int M = sizes[a], N = sizes[b], K = sizes[c];
                    if ((double)M * N * K > 3e6) continue;
                    int v = a * 169 + b * 13 + c; /* vary the rest of the parameters */
                    int tA = v & 1, tB = (v >> 1) & 1;
                    int pads = (v % 3 == 0);
                    int acc = (v / 3) & 1, epi = (v / 5) % EPI_KINDS;
                    run_case((v / 7) & 1, M, N, K, tA, tB, pads ? 3 : 0, pads ? 5 : 0, pads ? 2 : 0, acc, epi);
                }
        /* all combos on a few shapes */
        static const int shapes[][3] = {{33, 31, 17}, {7, 257, 100}, {100, 64, 257}, {1, 1, 1}, {5, 3, 0},
                                        {64, 100, 600}, {257, 33, 13}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int d = 0; d < 2; ++d)
                for (int tA = 0; tA < 2; ++tA)
                    for (int tB = 0; tB < 2; ++tB)
                        for (int acc = 0; acc < 2; ++acc)
                            for (int epi = 0; epi < EPI_KINDS; ++epi)
                                run_case(d, shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, (tA + acc) & 1 ? 4 : 0,
                                         (tB + epi) & 1 ? 7 : 0, epi ? 1 : 0, acc, epi);
        /* larger shapes: several K/M/N blocks, parallel paths */
        static const int big[][3] = {{300, 700, 520}, {32, 784, 256}, {784, 256, 32}, {129, 1030, 300},
                                     {128, 1030, 520}, {100, 300, 800}, {131, 50, 900},
                                     {32, 200, 1024}, {64, 100, 1024}, {29, 70, 512},
                                     /* few rows, B transposed or wide: the transposed-output path */
                                     {48, 1030, 300}, {100, 600, 700}, {17, 520, 21},
                                     /* few columns: the narrow path (C^T in one tall tile) */
                                     {1030, 10, 128}, {300, 10, 1030}, {129, 14, 2000}, {1030, 7, 64},
                                     {100, 13, 37}, {70, 16, 300}, {2048, 10, 40},
                                     /* one row or one column: the matrix-vector path */
                                     {1, 1030, 700}, {1, 300, 2050}, {1030, 1, 700}, {300, 1, 2050},
                                     {3, 1030, 700}, {4, 300, 2050}, {2, 33, 5},
                                     /* large: the wide micro-tile (GC_GEMM_WIDE), edge rows and
                                      * columns of it, several K blocks */
                                     {256, 512, 256}, {263, 577, 1030}, {389, 515, 300},
                                     {520, 1030, 257}};
        for (size_t s = 0; s < sizeof big / sizeof big[0]; ++s)
            for (int tA = 0; tA < 2; ++tA)
                for (int tB = 0; tB < 2; ++tB)
                    run_case((tA + tB) & 1, big[s][0], big[s][1], big[s][2], tA, tB, tA ? 1 : 0, 0, tB ? 3 : 0,
                             (tA + (int)s) & 1, (int)(s + tB) % EPI_KINDS);
        printf("threads=%d: %ld cases\n", threads_list[tl], n_tests - before);
        /* 2..4 rows of C (the matrix-vector path, all rows in one pass over B when B is not
         * transposed and its rows are far apart): every transA / accumulate / epilogue / axpy,
         * K not a multiple of 4 and K = 1, N across several 256-column chunks, padded ld's */
        before = n_tests;
        {
            static const int fn[] = {1, 5, 17, 255, 256, 257, 700, 1030};
            static const int fk[] = {1, 2, 3, 5, 17, 300};
            for (int M = 2; M <= 4; ++M)
                for (size_t b = 0; b < sizeof fn / sizeof fn[0]; ++b)
                    for (size_t c = 0; c < sizeof fk / sizeof fk[0]; ++c)
                        for (int d = 0; d < 2; ++d)
                            for (int tA = 0; tA < 2; ++tA)
                                for (int tB = 0; tB < 2; ++tB)
                                    for (int acc = 0; acc < 2; ++acc)
                                        for (int epi = 0; epi < EPI_KINDS; ++epi) {
                                            /* B's rows far apart (> 2048 bytes) unless tB */
                                            const int padB = tB ? (int)(b & 1) * 3 : 600;
                                            run_case(d, M, fn[b], fk[c], tA, tB, (epi + tA) & 1 ? 3 : 0, padB,
                                                     (acc + epi) & 1 ? 5 : 0, acc, epi);
                                        }
            /* big enough to run the chunks in parallel (2 N K >= GC_GEMM_PAR_FLOPS) */
            for (int M = 2; M <= 4; ++M)
                for (int v = 0; v < 8; ++v)
                    run_case(v & 1, M, 3001, 701, (v >> 1) & 1, 0, v & 1, 0, (v >> 2) & 1,
                             (v >> 1) & 1, (v + M) % EPI_KINDS);
        }
        printf("threads=%d: %ld few-row cases\n", threads_list[tl], n_tests - before);
    }
    /* an epilogue reading C's old value, with several K blocks (C must hold the old values
     * until the epilogue runs: partial sums go elsewhere) */
    {
        static const int ip[][3] = {{33, 70, 1000}, {128, 256, 512}, {5, 300, 385}, {64, 31, 100},
                                    {263, 577, 1030}, /* the wide micro-tile */
                                    /* few rows, B's rows far apart: the matrix-vector path */
                                    {2, 1030, 37}, {3, 700, 5}, {4, 600, 1}};
        for (int th = 1; th <= 2; ++th) {
#ifdef _OPENMP
            omp_set_num_threads(th);
#endif
            for (size_t s = 0; s < sizeof ip / sizeof ip[0]; ++s)
                for (int tAB = 0; tAB < 4; ++tAB) {
                    const int tA = tAB & 1, tB = tAB >> 1;
                    const int M = ip[s][0], N = ip[s][1], K = ip[s][2], ldc = N + 3;
                    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                    float *C = malloc(sizeof(float) * M * ldc), *C0 = malloc(sizeof(float) * M * ldc);
                    for (int t = 0; t < M * K; ++t) A[t] = (float)((t * 7) % 13) - 6.0f;
                    for (int t = 0; t < K * N; ++t) B[t] = (float)((t * 5) % 11) - 5.0f;
                    for (int t = 0; t < M * ldc; ++t) C[t] = C0[t] = (float)((t * 3) % 17);
                    const void *ep[2] = {C, &ldc};
                    gemm_f32_inplace(M, N, K, A, tA ? M : K, tA, B, tB ? K : N, tB, C, ldc, 0, ep);
                    long bad = 0;
                    for (int i = 0; i < M; ++i)
                        for (int j = 0; j < N; ++j) {
                            double acc = 0;
                            for (int k = 0; k < K; ++k)
                                acc += (double)(tA ? A[(long)k * M + i] : A[(long)i * K + k]) *
                                       (tB ? B[(long)j * K + k] : B[(long)k * N + j]);
                            if ((double)C[(long)i * ldc + j] != (double)C0[(long)i * ldc + j] - 0.5 * acc) ++bad;
                        }
                    ++n_tests;
                    if (bad) {
                        ++n_fail;
                        printf("FAIL in-place epilogue M=%d N=%d K=%d tA=%d tB=%d threads=%d: %ld wrong\n", M, N, K, tA, tB,
                               th, bad);
                    }
                    free(A); free(B); free(C); free(C0);
                }
        }
        printf("in-place epilogues over several K blocks: done\n");
    }
#ifdef _OPENMP
    /* concurrent calls from inside a parallel region (each runs single-threaded) */
    {
        int nested_bad = 0;
        omp_set_num_threads(2);
#pragma omp parallel reduction(+ : nested_bad)
        {
            const int M = 70 + 3 * omp_get_thread_num(), N = 90, K = 300;
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C = malloc(sizeof(float) * M * N);
            for (int t = 0; t < M * K; ++t) A[t] = (float)((t * 7 + omp_get_thread_num()) % 13) - 6.0f;
            for (int t = 0; t < K * N; ++t) B[t] = (float)((t * 5) % 11) - 5.0f;
            for (int rep = 0; rep < 20; ++rep) {
                gemm_f32(M, N, K, A, K, 0, B, N, 0, C, N, 0, NULL);
                for (int i = 0; i < M; ++i)
                    for (int j = 0; j < N; ++j) {
                        double s = 0;
                        for (int k = 0; k < K; ++k) s += (double)A[i * K + k] * B[k * N + j];
                        if (s != (double)C[i * N + j]) nested_bad++; /* small ints: exact */
                    }
            }
            free(A); free(B); free(C);
        }
        ++n_tests;
        if (nested_bad) ++n_fail;
        printf("concurrent calls in a parallel region: %s\n", nested_bad ? "FAILED" : "ok");
    }
    /* odd thread count: uneven splits of the shared packing work */
    {
        omp_set_num_threads(3);
        long before = n_tests;
        static const int big3[][3] = {{128, 1030, 520}, {100, 300, 800}, {33, 784, 256}, {300, 700, 520}};
        for (size_t s = 0; s < sizeof big3 / sizeof big3[0]; ++s)
            for (int tA = 0; tA < 2; ++tA)
                for (int tB = 0; tB < 2; ++tB)
                    run_case((tA + tB) & 1, big3[s][0], big3[s][1], big3[s][2], tA, tB, tA ? 2 : 0, 0, tB ? 1 : 0,
                             (tB + (int)s) & 1, (int)(s + tA) % 3);
        printf("threads=3: %ld cases\n", n_tests - before);
    }
    /* multi-threaded big exact check (integers: result must be exact) */
    {
        omp_set_num_threads(2);
        const int M = 1000, N = 1100, K = 700;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C = malloc(sizeof(float) * M * N);
        for (int t = 0; t < M * K; ++t) A[t] = (float)((t * 7) % 13) - 6.0f;
        for (int t = 0; t < K * N; ++t) B[t] = (float)((t * 5) % 11) - 5.0f;
        gemm_f32(M, N, K, A, K, 0, B, N, 0, C, N, 0, NULL);
        long bad = 0;
        for (int i = 0; i < M; i += 7)
            for (int j = 0; j < N; ++j) {
                double s = 0;
                for (int k = 0; k < K; ++k) s += (double)A[i * K + k] * B[k * N + j];
                if (s != (double)C[i * N + j]) ++bad;
            }
        ++n_tests;
        if (bad) ++n_fail;
        printf("big exact 2-thread: %s\n", bad ? "FAILED" : "ok");
        free(A); free(B); free(C);
    }
#endif
    printf("%ld tests, %ld failures\n", n_tests, n_fail);
    return n_fail ? 1 : 0;
}
