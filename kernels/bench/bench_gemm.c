/* GFLOP/s of gc_gemm.h for the shapes graphc cares about.
 * Threads from OMP_NUM_THREADS. Usage: bench_gemm [reps] [i,j,...]  (median of reps runs; optional list of
 * shape indices to run; GC_BENCH_BEST=1 in the environment: best run instead) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define GC_GEMM_NAME bench_sgemm
#include "gc_gemm.h"

#define GC_GEMM_NAME bench_sgemm_bias_relu
#define GC_GEMM_EPILOGUE(acc, i, j) \
    ((acc) + ((const float *)ep[0])[j] > 0.0f ? (acc) + ((const float *)ep[0])[j] : 0.0f)
#include "gc_gemm.h"

#define GC_GEMM_NAME bench_dgemm
#define GC_GEMM_REAL double
#include "gc_gemm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct { int M, K, N, tA, tB, epi, dbl; const char *what; } shape_t;

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1) reps = 1;
    int nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    static const shape_t shapes[] = {
        {32, 784, 256, 0, 0, 0, 0, "fwd"},
        {128, 784, 256, 0, 0, 0, 0, "fwd"},
        {512, 784, 1024, 0, 0, 0, 0, "fwd"},
        {2048, 1024, 1024, 0, 0, 0, 0, "fwd"},
        {128, 1024, 1024, 0, 0, 0, 0, "fwd"},
        {32, 784, 256, 0, 0, 1, 0, "fwd bias+relu"},
        {784, 32, 256, 1, 0, 0, 0, "dW = h^T g"},
        {32, 256, 784, 0, 1, 0, 0, "dh = g W^T"},
        {784, 128, 256, 1, 0, 0, 0, "dW = h^T g"},
        {128, 256, 784, 0, 1, 0, 0, "dh = g W^T"},
        {1024, 512, 784, 1, 0, 0, 0, "dW = h^T g"},
        {512, 1024, 784, 0, 1, 0, 0, "dh = g W^T"},
        {512, 784, 1024, 0, 0, 0, 1, "fwd (double)"},
        {32, 1024, 1024, 0, 0, 0, 0, "fwd wide"},
        {32, 1024, 1024, 0, 1, 0, 0, "fwd wide tB"},
        {32, 784, 1024, 0, 0, 0, 0, "fwd wide"},
        {8, 1024, 1024, 0, 0, 0, 0, "fwd wide"},
        {16, 784, 1024, 0, 0, 0, 0, "fwd wide"},
        {64, 1024, 1024, 0, 0, 0, 0, "fwd wide"},
        {48, 784, 2048, 0, 0, 0, 0, "fwd wide"},
        {64, 512, 2048, 0, 0, 0, 0, "fwd wide"},
        {64, 784, 256, 0, 0, 0, 0, "fwd"},
        {96, 784, 256, 0, 0, 0, 0, "fwd"},
        /* 23-: the training steps' large-batch GEMMs (784-256-256-10 and 784-1024-1024-10) */
        {512, 784, 256, 0, 0, 0, 0, "fwd"},
        {784, 512, 256, 1, 0, 0, 0, "dW = h^T g"},
        {512, 256, 256, 0, 1, 0, 0, "dh = g W^T"},
        {2048, 784, 256, 0, 0, 0, 0, "fwd"},
        {784, 2048, 256, 1, 0, 0, 0, "dW = h^T g"},
        {2048, 256, 256, 0, 1, 0, 0, "dh = g W^T"},
        {512, 1024, 1024, 0, 0, 0, 0, "fwd"},
        {1024, 512, 1024, 1, 0, 0, 0, "dW = h^T g"},
        {512, 1024, 1024, 0, 1, 0, 0, "dh = g W^T"},
        {2048, 784, 1024, 0, 0, 0, 0, "fwd"},
        {784, 2048, 1024, 1, 0, 0, 0, "dW = h^T g"},
        {1024, 2048, 1024, 1, 0, 0, 0, "dW = h^T g"},
        {2048, 1024, 1024, 0, 1, 0, 0, "dh = g W^T"},
        {2048, 1024, 1024, 0, 0, 1, 0, "fwd bias+relu"},
        {2048, 1024, 1024, 0, 1, 1, 0, "dh = g W^T, bias+relu"},
        /* 38-: 784-1024-1024-10 at batch 128 */
        {128, 784, 1024, 0, 0, 0, 0, "fwd"},
        {784, 128, 1024, 1, 0, 0, 0, "dW = h^T g"},
        {1024, 128, 1024, 1, 0, 0, 0, "dW = h^T g"},
        {128, 1024, 1024, 0, 1, 0, 0, "dh = g W^T"},
    };
    printf("threads=%d reps=%d (%s)\n", nth, reps, getenv("GC_BENCH_BEST") ? "best" : "median");
    printf("%6s %6s %6s %3s %3s  %10s  %s\n", "M", "K", "N", "tA", "tB", "GFLOP/s", "what");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        if (argc > 2) { /* shape filter */
            int want = 0;
            for (const char *q = argv[2]; *q;) {
                char *e;
                long v = strtol(q, &e, 10);
                if (e == q) break;
                if (v == (long)s) want = 1;
                q = *e ? e + 1 : e;
            }
            if (!want) continue;
        }
        const shape_t *sh = &shapes[s];
        const int M = sh->M, K = sh->K, N = sh->N;
        const size_t esz = sh->dbl ? sizeof(double) : sizeof(float);
        void *A = aligned_alloc(64, ((size_t)M * K * esz + 63) & ~(size_t)63);
        void *B = aligned_alloc(64, ((size_t)K * N * esz + 63) & ~(size_t)63);
        void *C = aligned_alloc(64, ((size_t)M * N * esz + 63) & ~(size_t)63);
        float *bias = malloc(sizeof(float) * N);
        for (size_t t = 0; t < (size_t)M * K; ++t) {
            double v = (double)((t * 37) % 101) / 101.0 - 0.5;
            if (sh->dbl) ((double *)A)[t] = v; else ((float *)A)[t] = (float)v;
        }
        for (size_t t = 0; t < (size_t)K * N; ++t) {
            double v = (double)((t * 53) % 97) / 97.0 - 0.5;
            if (sh->dbl) ((double *)B)[t] = v; else ((float *)B)[t] = (float)v;
        }
        for (int t = 0; t < N; ++t) bias[t] = 0.01f * (t % 7);
        const void *ep[1] = {bias};
        const int lda = sh->tA ? M : K, ldb = sh->tB ? K : N;
        double flops = 2.0 * M * N * K;
        /* enough inner iterations for ~5 ms per sample */
        int inner = (int)(5e-3 * 100e9 / flops) + 1;
        double *t = malloc(sizeof(double) * reps);
        for (int r = -2; r < reps; ++r) {
            double t0 = now();
            for (int it = 0; it < inner; ++it) {
                if (sh->dbl)
                    bench_dgemm(M, N, K, A, lda, sh->tA, B, ldb, sh->tB, C, N, 0, ep);
                else if (sh->epi)
                    bench_sgemm_bias_relu(M, N, K, A, lda, sh->tA, B, ldb, sh->tB, C, N, 0, ep);
                else
                    bench_sgemm(M, N, K, A, lda, sh->tA, B, ldb, sh->tB, C, N, 0, ep);
            }
            double dt = (now() - t0) / inner;
            if (r >= 0) t[r] = dt;
        }
        qsort(t, reps, sizeof(double), cmp_d);
        if (getenv("GC_BENCH_BEST")) t[reps / 2] = t[0]; /* best instead of median (noisy machine) */
        printf("%6d %6d %6d %3d %3d  %10.1f  %s\n", M, K, N, sh->tA, sh->tB, flops / t[reps / 2] * 1e-9, sh->what);
        fflush(stdout);
        free(t); free(A); free(B); free(C); free(bias);
    }
    return 0;
}
