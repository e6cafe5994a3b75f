/* Tests of gc_gemm.h's row hook (GC_GEMM_ROW_HOOK / GC_GEMM_ROW_GROUP), as graphc's generated
 * code uses it for maxout: out[i][u] = max_p C[i][u*G + p] next to C = bias + A @ B.  Over shapes
 * reaching every path of the driver (register tiles over one or several K blocks and N panels,
 * the transposed-output, narrow, small-K and matrix-vector paths, K = 0), group widths that do
 * and do not divide the tiles' widths, transposes, accumulate, padded C, float and double, one
 * and two threads, it checks that C is right, that every group is passed to the hook exactly
 * once, and that the group maxima equal the stored values' maxima bit for bit (NaN propagating
 * like gc_max2f: a NaN anywhere in the group gives NaN).  Exit status non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ep[0]: bias (per column), ep[1]: out (M x N/G), ep[2]: int count per group, ep[3]: &(N/G) */
#define GROUP_MAX_HOOK(T, G, row, i, j0, n)                                                    \
    {                                                                                          \
        const long gc_o = (long)(i) * *(const int *)ep[3] + (j0) / (G);                        \
        for (int gc_u = 0; gc_u < (n) / (G); ++gc_u) {                                         \
            T a = -INFINITY;                                                                   \
            for (int gc_p = 0; gc_p < (G); ++gc_p) {                                           \
                const T v = (row)[gc_u * (G) + gc_p];                                          \
                a = (a > v || a != a) ? a : v;                                                 \
            }                                                                                  \
            ((T *)ep[1])[gc_o + gc_u] = a;                                                     \
            ((int *)ep[2])[gc_o + gc_u] += 1;                                                  \
        }                                                                                      \
    }

/* bias epilogue + group max hook */
#define GC_GEMM_NAME hook_f32_g1
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 1
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 1, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f32_g2
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 2
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 2, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f32_g3
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 3
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 3, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f32_g4
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 4
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 4, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f32_g5
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 5
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 5, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f32_g8
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const float *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 8
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 8, row, i, j0, n)
#include "gc_gemm.h"
/* no epilogue: the hook alone keeps the epilogue function */
#define GC_GEMM_NAME hook_f32_g6_noepi
#define GC_GEMM_ROW_GROUP 6
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(float, 6, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f64_g3
#define GC_GEMM_REAL double
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const double *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 3
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(double, 3, row, i, j0, n)
#include "gc_gemm.h"
#define GC_GEMM_NAME hook_f64_g4
#define GC_GEMM_REAL double
#define GC_GEMM_EPILOGUE(acc, i, j) ((acc) + ((const double *)ep[0])[j])
#define GC_GEMM_ROW_GROUP 4
#define GC_GEMM_ROW_HOOK(row, i, j0, n) GROUP_MAX_HOOK(double, 4, row, i, j0, n)
#include "gc_gemm.h"

typedef void (*gemm_f32_t)(int, int, int, const float *, int, int, const float *, int, int, float *,
                           int, int, const void *const *);
typedef void (*gemm_f64_t)(int, int, int, const double *, int, int, const double *, int, int,
                           double *, int, int, const void *const *);
static const struct { int G, is_double, bias; gemm_f32_t f32; gemm_f64_t f64; } INSTS[] = {
    {1, 0, 1, hook_f32_g1, 0},         {2, 0, 1, hook_f32_g2, 0}, {3, 0, 1, hook_f32_g3, 0},
    {4, 0, 1, hook_f32_g4, 0},         {5, 0, 1, hook_f32_g5, 0}, {8, 0, 1, hook_f32_g8, 0},
    {6, 0, 0, hook_f32_g6_noepi, 0},   {3, 1, 1, 0, hook_f64_g3}, {4, 1, 1, 0, hook_f64_g4},
};
#define NINST ((int)(sizeof INSTS / sizeof INSTS[0]))

#include "test_util.h"

/* One call of instantiation `inst` on M x (U*G) x K; nan_row >= 0 puts a NaN in that row of
 * op(A) (when K > 0), so that row of C and all its group maxima are NaN. */
static void run_case(int inst, int M, int U, int K, int tA, int tB, int padC, int acc, int nan_row)
{
    const int G = INSTS[inst].G, dbl = INSTS[inst].is_double, N = U * G;
    const int lda = tA ? M : K, ldb = tB ? K : N, ldc = N + padC;
    const size_t na = (size_t)M * K + 1, nb = (size_t)K * N + 1, nc = (size_t)M * ldc + 1;
    double *A = malloc(na * sizeof(double)), *B = malloc(nb * sizeof(double));
    double *C = malloc(nc * sizeof(double)), *ref = malloc(nc * sizeof(double));
    double *bias = malloc((size_t)(N + 1) * sizeof(double));
    double *outd = malloc(((size_t)M * U + 1) * sizeof(double));
    float *Af = malloc(na * sizeof(float)), *Bf = malloc(nb * sizeof(float));
    float *Cf = malloc(nc * sizeof(float)), *biasf = malloc((size_t)(N + 1) * sizeof(float));
    float *outf = malloc(((size_t)M * U + 1) * sizeof(float));
    int *count = calloc((size_t)M * U + 1, sizeof(int));
    for (size_t t = 0; t < na; ++t) { A[t] = frand(); Af[t] = (float)A[t]; if (!dbl) A[t] = Af[t]; }
    for (size_t t = 0; t < nb; ++t) { B[t] = frand(); Bf[t] = (float)B[t]; if (!dbl) B[t] = Bf[t]; }
    for (size_t t = 0; t < nc; ++t) { C[t] = frand(); Cf[t] = (float)C[t]; if (!dbl) C[t] = Cf[t]; }
    for (int t = 0; t <= N; ++t) { bias[t] = 0.5 * frand(); biasf[t] = (float)bias[t]; if (!dbl) bias[t] = biasf[t]; }
    if (nan_row >= 0 && nan_row < M && K > 0) {
        const size_t t = tA ? (size_t)(K / 2) * lda + nan_row : (size_t)nan_row * lda + K / 2;
        A[t] = NAN;
        Af[t] = NAN;
    }
    memcpy(ref, C, nc * sizeof(double));
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int k = 0; k < K; ++k)
                s += A[tA ? (size_t)k * lda + i : (size_t)i * lda + k] *
                     B[tB ? (size_t)j * ldb + k : (size_t)k * ldb + j];
            ref[(size_t)i * ldc + j] = s + (acc ? ref[(size_t)i * ldc + j] : 0.0) +
                                       (INSTS[inst].bias ? bias[j] : 0.0);
        }
    int ucount = U;
    const void *ep_d[4] = {bias, outd, count, &ucount}, *ep_f[4] = {biasf, outf, count, &ucount};
    if (dbl) INSTS[inst].f64(M, N, K, A, lda, tA, B, ldb, tB, C, ldc, acc, ep_d);
    else INSTS[inst].f32(M, N, K, Af, lda, tA, Bf, ldb, tB, Cf, ldc, acc, ep_f);
    const double tol = dbl ? 1e-12 * (K + 2) : 3e-6 * (K + 2);
    const char *why = NULL;
    for (int i = 0; i < M && !why; ++i) {
        for (int j = 0; j < ldc && !why; ++j) {
            const size_t t = (size_t)i * ldc + j;
            const double got = dbl ? C[t] : (double)Cf[t], want = ref[t];
            if (j >= N ? got != want : (isnan(want) ? !isnan(got) : !(fabs(got - want) <= tol * (fabs(want) > 1 ? fabs(want) : 1))))
                why = "C";
        }
        for (int u = 0; u < U && !why; ++u) {
            const size_t o = (size_t)i * U + u;
            if (count[o] != 1) { why = "hook calls per group"; break; }
            /* the maximum of the stored values, folded in the same order as the hook */
            double m = -INFINITY;
            for (int p = 0; p < G; ++p) {
                const double v = dbl ? C[(size_t)i * ldc + u * G + p] : (double)Cf[(size_t)i * ldc + u * G + p];
                m = (m > v || m != m) ? m : v;
            }
            const double got = dbl ? outd[o] : (double)outf[o];
            if (isnan(m) ? !isnan(got) : memcmp(&got, &m, sizeof m) != 0) why = "group max";
        }
    }
    ++n_tests;
    if (why) {
        ++n_fail;
        if (n_fail <= 20)
            printf("FAIL (%s) G=%d %s M=%d U=%d K=%d tA=%d tB=%d padC=%d acc=%d nan_row=%d\n", why, G,
                   dbl ? "f64" : "f32", M, U, K, tA, tB, padC, acc, nan_row);
    }
    free(A); free(B); free(C); free(ref); free(bias); free(outd);
    free(Af); free(Bf); free(Cf); free(biasf); free(outf); free(count);
}

int main(void)
{
    /* rows: one (gemv), up to 4 (gemv with B transposed), few (transposed output), many;
     * units x G columns: few (narrow), several tiles; K: 0, small (small-K), one and several
     * K blocks */
    static const int Ms[] = {1, 3, 4, 17, 100, 257}, Us[] = {1, 5, 33, 100}, Ks[] = {0, 7, 100, 520};
    const int nM = 6, nU = 4, nK = 4;
    for (int th = 1; th <= 2; ++th) {
#ifdef _OPENMP
        omp_set_num_threads(th);
#endif
        long before = n_tests;
        for (int inst = 0; inst < NINST; ++inst)
            for (int a = 0; a < nM; ++a)
                for (int b = 0; b < nU; ++b)
                    for (int c = 0; c < nK; ++c) {
                        const int v = ((inst * 7 + a) * 5 + b) * 3 + c + th;
                        const int M = Ms[a], U = Us[b], K = Ks[c];
                        if ((double)M * U * INSTS[inst].G * K > 4e6) continue;
                        for (int tAB = 0; tAB < 4; ++tAB)
                            run_case(inst, M, U, K, tAB & 1, tAB >> 1, (v + tAB) % 3 == 0 ? 3 : 0,
                                     (v >> 1) & 1, (v + tAB) % 4 == 0 ? M / 2 : -1);
                    }
        /* wider than one N block (GC_GEMM_NC: 4096 columns), and big multi-threaded tiles */
        for (int tAB = 0; tAB < 4; ++tAB) {
            run_case(2, 40, 1400, 30, tAB & 1, tAB >> 1, 1, tAB & 1, 7);
            run_case(3, 128, 256, 784, tAB & 1, tAB >> 1, 0, 0, -1);
            run_case(4, 64, 52, 300, tAB & 1, tAB >> 1, 2, 1, 5);
            /* large: the wide micro-tile's 64-column segments (G = 3, 5: the late pass) */
            run_case(2, 263, 200, 300, tAB & 1, tAB >> 1, 3, tAB >> 1, 100);
            run_case(4, 300, 130, 257, tAB & 1, tAB >> 1, 0, 1, -1);
        }
        printf("threads=%d: %ld cases\n", th, n_tests - before);
    }
    printf("%ld tests, %ld failures\n", n_tests, n_fail);
    return n_fail ? 1 : 0;
}
