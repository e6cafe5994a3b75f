/*
 * gc_gemm_core.c -- gc_gemm.h's shared driver (packing, micro-kernels, paths) as a translation
 * unit of its own: float and double, or one of them with -DGC_GEMM_CORE_ONLY=32 or 64 (the
 * runtime builds one object per element type its modules use).  graphc compiles it once per compiler and flags into an
 * object in the compile cache (graphc/runtime/gemm_core.py) and links that object into every
 * generated module that multiplies matrices; those modules include gc_gemm.h with
 * GC_GEMM_CORE_EXTERN, so they compile only their epilogues.  The driver is most of a module's
 * compile time: the 784-256-256-10 training step took 2.3-3.0 s to compile with it, about a
 * second without.
 *
 * Thread count: the module's (gc_set_threads, gc_runtime.h), through gc__module_threads, which
 * every module defines with hidden visibility.
 */
#undef GC_GEMM_CORE_EXTERN /* this is the core, whatever the flags of its users say */
int gc__module_threads(void);
#define GC_GEMM_MAX_THREADS() gc__module_threads()
#define GC_GEMM_CORE_BUILD
#include "gc_gemm.h"
