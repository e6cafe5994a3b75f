/* The thread count the shared GEMM core object asks its module for (gc_runtime.h defines it in
 * generated modules; the C tests, which do not include gc_runtime.h, use OpenMP's default). */
#include <omp.h>
int gc__module_threads(void) { return omp_get_max_threads(); }
