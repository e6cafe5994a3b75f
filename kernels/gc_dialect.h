/*
 * gc_dialect.h -- one kernel text, two GPU dialects.
 *
 * Kernel text emitted by graphc is written only with the macros below and is
 * compiled either as CUDA C++ (NVRTC / nvcc / cupy.RawModule) or as OpenCL C
 * (pyopencl, e.g. PoCL on the CPU in CI).  The OpenCL dialect is selected when
 * __OPENCL_VERSION__ (set by every OpenCL C compiler) or GC_OPENCL is defined.
 *
 * This header includes no other file, so it can be prepended inline to a
 * program source (NVRTC then needs no include paths).
 *
 * Rules for kernel text: no warp intrinsics, no float atomics, no fast math;
 * GC_LOCAL arrays are declared at kernel function scope (OpenCL requirement);
 * index helpers return int.
 */
#ifndef GC_DIALECT_H
#define GC_DIALECT_H

#if defined(__OPENCL_VERSION__) || defined(GC_OPENCL)
/* ======================================================= OpenCL C ===== */
#ifndef GC_OPENCL
#define GC_OPENCL 1
#endif
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#elif !defined(GC_NO_DOUBLE)
#define GC_NO_DOUBLE 1 /* no double-precision helpers (gc_math.h) on this device */
#endif

typedef ulong gc_u64;
typedef long gc_i64;
typedef uint gc_u32;
typedef int gc_i32;
typedef ushort gc_u16;
typedef short gc_i16;
typedef uchar gc_u8;
typedef char gc_i8;

#define GC_KERNEL __kernel
#define GC_WG_SIZE(n) __attribute__((reqd_work_group_size((n), 1, 1)))
#define GC_GLOBAL __global
#define GC_LOCAL __local
#define GC_LOCAL_PTR __local /* qualifier of a pointer into GC_LOCAL memory */
#define GC_ALIGN(n) __attribute__((aligned(n)))
#define GC_CONSTANT __constant
#define GC_RESTRICT restrict
#define GC_INLINE static inline
#define GC_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)

GC_INLINE float gc_ocl_tanhf(float x)
{
    return fabs(x) >= 9.1f ? copysign(1.0f, x) : tanh(x);
}

#define GC_LOCAL_ID(d) ((int)get_local_id(d))
#define GC_GROUP_ID(d) ((int)get_group_id(d))
#define GC_LOCAL_SIZE(d) ((int)get_local_size(d))
#define GC_GLOBAL_ID(d) ((int)get_global_id(d))
#define GC_NUM_GROUPS(d) ((int)get_num_groups(d))
#define GC_GLOBAL_SIZE(d) ((int)get_global_size(d))

/* float math */
#define gc_expf(x) exp(x)
#define gc_logf(x) log(x)
#define gc_sqrtf(x) sqrt(x)
#define gc_rsqrtf(x) rsqrt(x)
#define gc_fabsf(x) fabs(x)
/* PoCL's vectorized tanhf saturates at +-(1 - 2^-24), never +-1: gelu(x, "tanh") = 0.5 x
 * (1 + tanh(..)) then gave -3e22 instead of -0 at x = -1e30 and -inf instead of NaN at -inf.
 * tanh rounds to +-1 in float for |x| > 9.01; clamp there (NaN falls through to tanh). */
#define gc_tanhf(x) gc_ocl_tanhf(x)
#define gc_powf(x, y) pow((x), (y))
#define gc_erff(x) erf(x)
#define gc_log1pf(x) log1p(x)
#define gc_expm1f(x) expm1(x)
#define gc_cosf(x) cos(x)
#define gc_sinf(x) sin(x)
#define gc_tanf(x) tan(x)
#define gc_fmaxf(x, y) fmax((x), (y))
#define gc_fminf(x, y) fmin((x), (y))
#define gc_floorf(x) floor(x)
#define gc_ceilf(x) ceil(x)
#define gc_fmaf(x, y, z) fma((x), (y), (z))
/* double math (OpenCL builtins are overloaded) */
#define gc_exp(x) exp(x)
#define gc_log(x) log(x)
#define gc_sqrt(x) sqrt(x)
#define gc_rsqrt(x) rsqrt(x)
#define gc_fabs(x) fabs(x)
#define gc_tanh(x) tanh(x)
#define gc_pow(x, y) pow((x), (y))
#define gc_erf(x) erf(x)
#define gc_log1p(x) log1p(x)
#define gc_expm1(x) expm1(x)
#define gc_cos(x) cos(x)
#define gc_sin(x) sin(x)
#define gc_tan(x) tan(x)
#define gc_fmax(x, y) fmax((x), (y))
#define gc_fmin(x, y) fmin((x), (y))
#define gc_floor(x) floor(x)
#define gc_ceil(x) ceil(x)
#define gc_fma(x, y, z) fma((x), (y), (z))

#else
/* ========================================================= CUDA C++ ===== */
#define GC_CUDA 1

typedef unsigned long long gc_u64;
typedef long long gc_i64;
typedef unsigned int gc_u32;
typedef int gc_i32;
typedef unsigned short gc_u16;
typedef short gc_i16;
typedef unsigned char gc_u8;
typedef signed char gc_i8;

/* NVRTC compiles without <math.h>: the C99 constants generated code may use */
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

#define GC_KERNEL extern "C" __global__
#define GC_WG_SIZE(n) __launch_bounds__(n)
#define GC_GLOBAL
#define GC_LOCAL __shared__
#define GC_LOCAL_PTR
#define GC_ALIGN(n) __align__(n)
#define GC_CONSTANT __constant__
#define GC_RESTRICT __restrict__
#define GC_INLINE static __device__ __forceinline__
#define GC_BARRIER() __syncthreads()

#define GC_DIM3_(v, d) ((d) == 0 ? (int)(v).x : (d) == 1 ? (int)(v).y : (int)(v).z)
#define GC_LOCAL_ID(d) GC_DIM3_(threadIdx, d)
#define GC_GROUP_ID(d) GC_DIM3_(blockIdx, d)
#define GC_LOCAL_SIZE(d) GC_DIM3_(blockDim, d)
#define GC_NUM_GROUPS(d) GC_DIM3_(gridDim, d)
#define GC_GLOBAL_ID(d) (GC_GROUP_ID(d) * GC_LOCAL_SIZE(d) + GC_LOCAL_ID(d))
#define GC_GLOBAL_SIZE(d) (GC_NUM_GROUPS(d) * GC_LOCAL_SIZE(d))

/* float math */
#define gc_expf(x) expf(x)
#define gc_logf(x) logf(x)
#define gc_sqrtf(x) sqrtf(x)
#define gc_rsqrtf(x) rsqrtf(x)
#define gc_fabsf(x) fabsf(x)
#define gc_tanhf(x) tanhf(x)
#define gc_powf(x, y) powf((x), (y))
#define gc_erff(x) erff(x)
#define gc_log1pf(x) log1pf(x)
#define gc_expm1f(x) expm1f(x)
#define gc_cosf(x) cosf(x)
#define gc_sinf(x) sinf(x)
#define gc_tanf(x) tanf(x)
#define gc_fmaxf(x, y) fmaxf((x), (y))
#define gc_fminf(x, y) fminf((x), (y))
#define gc_floorf(x) floorf(x)
#define gc_ceilf(x) ceilf(x)
#define gc_fmaf(x, y, z) fmaf((x), (y), (z))
/* double math */
#define gc_exp(x) exp(x)
#define gc_log(x) log(x)
#define gc_sqrt(x) sqrt(x)
#define gc_rsqrt(x) rsqrt(x)
#define gc_fabs(x) fabs(x)
#define gc_tanh(x) tanh(x)
#define gc_pow(x, y) pow((x), (y))
#define gc_erf(x) erf(x)
#define gc_log1p(x) log1p(x)
#define gc_expm1(x) expm1(x)
#define gc_cos(x) cos(x)
#define gc_sin(x) sin(x)
#define gc_tan(x) tan(x)
#define gc_fmax(x, y) fmax((x), (y))
#define gc_fmin(x, y) fmin((x), (y))
#define gc_floor(x) floor(x)
#define gc_ceil(x) ceil(x)
#define gc_fma(x, y, z) fma((x), (y), (z))

#endif /* dialect */

/* ============================================================ common ===== */

/* finite test without math-library macros (exact without fast math, which graphc never uses):
 * x - x is 0 for finite x and NaN for +-inf and NaN */
#define gc_isfinite(x) (((x) - (x)) == ((x) - (x)))

/* Counter-based RNG (splitmix64 finalizer over a keyed sum); must match the
 * C backend and the numpy reference bit for bit.  Uniform in [0, 1). */
GC_INLINE gc_u64 gc_mix64(gc_u64 seed, gc_u64 counter, gc_u64 index)
{
    gc_u64 z = seed * (gc_u64)0x9E3779B97F4A7C15UL
             + counter * (gc_u64)0xD1B54A32D192ED03UL
             + index * (gc_u64)0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 30)) * (gc_u64)0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * (gc_u64)0x94D049BB133111EBUL;
    z = z ^ (z >> 31);
    return z;
}

GC_INLINE float gc_uniform(gc_u64 seed, gc_u64 counter, gc_u64 index)
{
    return (float)(gc_mix64(seed, counter, index) >> 40) * (1.0f / 16777216.0f);
}

#endif /* GC_DIALECT_H */
