/*
 * gc_math.h -- scalar functions of graphc's elementwise expressions, written once for every
 * target (C, CUDA, OpenCL). Include after gc_runtime.h (CPU) or gc_dialect.h (GPU), which
 * define GC_INLINE and the gc_expf-style math names.
 *
 * They implement the custom SymPy functions of graphc/symbolic.py in their stable forms.
 */
#ifndef GC_MATH_H
#define GC_MATH_H

GC_INLINE float gc_sigmoidf(float x) {
    /* 1/(1+exp(-x)) without overflow: exp of a non-positive number only */
    float e = gc_expf(-gc_fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
GC_INLINE float gc_softplusf(float x) {
    /* log(1+exp(x)) = max(x,0) + log1p(exp(-|x|)); the max is a select, not fmaxf: gcc calls
     * fmaxf out of line (no -ffast-math), which keeps the loop from vectorizing (NaN in gives
     * NaN either way through the log1p term) */
    return (x > 0.0f ? x : 0.0f) + gc_log1pf(gc_expf(-gc_fabsf(x)));
}
/* elementwise max/min that propagate NaN like numpy/PyTorch (fmaxf would drop it) */
GC_INLINE float gc_max2f(float a, float b) { return (a > b || a != a) ? a : b; }
GC_INLINE float gc_min2f(float a, float b) { return (a < b || a != a) ? a : b; }
GC_INLINE float gc_signf(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

#if !defined(GC_NO_DOUBLE)
GC_INLINE double gc_sigmoid(double x) {
    double e = gc_exp(-gc_fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
GC_INLINE double gc_softplus(double x) {
    return (x > 0.0 ? x : 0.0) + gc_log1p(gc_exp(-gc_fabs(x)));
}
GC_INLINE double gc_max2(double a, double b) { return (a > b || a != a) ? a : b; }
GC_INLINE double gc_min2(double a, double b) { return (a < b || a != a) ? a : b; }
GC_INLINE double gc_sign(double x) { return (double)((x > 0.0) - (x < 0.0)); }
#endif

/* integer a ** b as PyTorch's integer pow (graphc/symbolic.py IPow): exponentiation by
 * squaring in unsigned 64-bit arithmetic, which wraps modulo 2**64 (signed products would be
 * undefined on overflow); the low bits are the wrapped result in every narrower type, which
 * the store truncates to.  A negative exponent: 1 for a == 1, +-1 by its parity for a == -1,
 * else 0 (a == 0 too, as PyTorch). */
GC_INLINE gc_i64 gc_ipow(gc_i64 a, gc_i64 b) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    gc_u64 base = (gc_u64)a, r = 1, e = (gc_u64)b;
    while (e) {
        if (e & 1) r *= base;
        base *= base;
        e >>= 1;
    }
    return (gc_i64)r;
}

/* Counter-based uniform generator shared by every backend (and numpy): splitmix64 of a key
 * mixing seed, call counter and element index; 24 random bits -> [0, 1). */
GC_INLINE float gc_uniform01(gc_u64 seed, gc_u64 counter, gc_u64 index) {
    gc_u64 z = seed * 0x9E3779B97F4A7C15ULL + counter * 0xD1B54A32D192ED03ULL
             + index * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

#endif /* GC_MATH_H */
