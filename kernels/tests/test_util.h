/* Shared by the kernel tests: a deterministic generator and the pass/fail counters. */
#ifndef GC_TEST_UTIL_H
#define GC_TEST_UTIL_H

static unsigned long long rng_state = 88172645463325252ULL;

/* uniform in [-1, 1) (xorshift64) */
static double frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

static long n_tests = 0, n_fail = 0;

#endif
