/* The speed-of-light BCE: one fused, vectorised pass of the stable formula over x and y (see kernel.py).
 *
 * Per element, with e = exp(-|x|) (one exponential) and u = 1 + e:
 *     loss = (1 - y)·max(x, 0) + y·max(-x, 0) + log1p(e)
 *     dl/dx = (1 - y)·σ(x) − y·σ(−x),   σ(|x|) = 1/u,  σ(−|x|) = e/u
 * The mean's gradient is dl/dx / n. exp and log1p are written out here (Cephes' float polynomials, fdlibm's
 * double ones) as branch-free arithmetic, so that the compiler vectorises the whole loop without -ffast-math and
 * without a vector math library; log1p(e) = log(u) + (e − (u − 1))/u corrects the rounding of 1 + e. The loss is
 * summed in double, in every SIMD lane and thread, and returned as the sum: the caller divides by n.
 *
 * Each dtype has a forward (the sum of the loss) and a forward_backward (the sum, and the gradient of the mean
 * written into `grad`); bfloat16 is computed in float, as the frameworks' CPU kernels do, and rounded to
 * nearest even on the way out (the gradient's product with 1/n goes through float first).
 */
#include <stdint.h>
#include <string.h>

#define GRAIN 32768L /* elements below which one thread does the whole pass (PyTorch's grain size) */

static inline float bits_to_float(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline double bits_to_double(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }

/* exp(a) for a <= 0, to about 1 ulp: Cephes expf; 2^k applied in two halves so that subnormal results round
 * once more rather than flush. */
static inline float exp_nonpositive_f(float a) {
    a = a < -104.0f ? -104.0f : a;
    float k = (a * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = (a - k * 0.693359375f) + k * 2.12194440e-4f;
    float z = r * r;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r
               + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    int32_t ki = (int32_t)k, k1 = ki / 2, k2 = ki - k1;
    return p * bits_to_float((uint32_t)(k1 + 127) << 23) * bits_to_float((uint32_t)(k2 + 127) << 23);
}

/* log(u) for u in [1, 2], to about 1 ulp: Cephes logf on m = u or u/2, m in [√½, √2). */
static inline float log_1_2_f(float u) {
    int upper = u > 1.41421356f;
    float f = (upper ? 0.5f * u : u) - 1.0f, k = upper ? 1.0f : 0.0f;
    float z = f * f;
    float y = ((((((((7.0376836292e-2f * f - 1.1514610310e-1f) * f + 1.1676998740e-1f) * f - 1.2420140846e-1f) * f
                  + 1.4249322787e-1f) * f - 1.6668057665e-1f) * f + 2.0000714765e-1f) * f - 2.4999993993e-1f) * f
              + 3.3333331174e-1f) * f * z;
    y += k * -2.12194440e-4f - 0.5f * z;
    return (f + y) + k * 0.693359375f;
}

/* exp(a) for a <= 0, to below 1 ulp: fdlibm's exp (a rational approximation on |r| ≤ ln2/2). */
static inline double exp_nonpositive_d(double a) {
    a = a < -746.0 ? -746.0 : a;
    double k = (a * 1.44269504088896338700e+00 + 6755399441055744.0) - 6755399441055744.0;
    double hi = a - k * 6.93147180369123816490e-01, lo = k * 1.90821492927058770002e-10, r = hi - lo;
    double t = r * r;
    double c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03 + t * (
        6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06 + t * 4.13813679705723846039e-08))));
    double p = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    int32_t ki = (int32_t)k, k1 = ki / 2, k2 = ki - k1; /* k ≥ −1076: 32 bits vectorise without AVX-512DQ */
    return p * bits_to_double((uint64_t)(k1 + 1023) << 52) * bits_to_double((uint64_t)(k2 + 1023) << 52);
}

/* log(u) for u in [1, 2], to below 1 ulp: fdlibm's log kernel on m = u or u/2, m in [√½, √2). */
static inline double log_1_2_d(double u) {
    int upper = u > 1.41421356237309504880;
    double f = (upper ? 0.5 * u : u) - 1.0, k = upper ? 1.0 : 0.0;
    double s = f / (2.0 + f), z = s * s, w = z * z;
    double r = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w
               * 1.479819860511658591e-01))) + w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w
               * 1.531383769920937332e-01));
    double hfsq = 0.5 * f * f;
    return k * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + r) + k * 1.90821492927058770002e-10)) - f);
}

#define DEFINE_ELEMENT(T, SUFFIX)                                                                              \
    static inline T element_##SUFFIX(T x, T y, T *grad) {                                                     \
        T e = exp_nonpositive_##SUFFIX(x < 0 ? x : -x), u = 1 + e, inverse = 1 / u;                           \
        T log1p_e = log_1_2_##SUFFIX(u) + (e - (u - 1)) * inverse;                                             \
        T small = e / u; /* σ(−|x|), rounded once */                                                           \
        T sigma_x = x >= 0 ? inverse : small, sigma_minus_x = x >= 0 ? small : inverse;                        \
        *grad = (1 - y) * sigma_x - y * sigma_minus_x;                                                         \
        return (1 - y) * (x > 0 ? x : 0) + y * (x < 0 ? -x : 0) + log1p_e;                                     \
    }
DEFINE_ELEMENT(float, f)
DEFINE_ELEMENT(double, d)

/* bfloat16 is the upper half of a float, rounded to nearest even. (No float16: gcc converts _Float16 through a
 * library call per element, which would make a slow kernel the limit.) */
static inline float from_bf16(uint16_t v) { return bits_to_float((uint32_t)v << 16); }
static inline uint16_t to_bf16(float f) {
    uint32_t b = float_to_bits(f);
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
#define SAME(v) (v)

/* The loop over one block of BLOCK elements (vectorised, summed in double lanes), inside a loop over the blocks
 * (shared between the threads): a two-level sum, each block's partial sum added to its thread's total, so that
 * no running sum takes more than BLOCK / lanes elements or n / BLOCK block sums. */
#define BLOCK 1024L
#define OVER_BLOCKS(BODY)                                                                                      \
    double total = 0.0;                                                                                        \
    long blocks = (n + BLOCK - 1) / BLOCK;                                                                     \
    _Pragma("omp parallel for reduction(+ : total) schedule(static) num_threads(threads) if (n >= GRAIN)")    \
    for (long b = 0; b < blocks; b++) {                                                                        \
        long end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;                                                  \
        double partial = 0.0;                                                                                  \
        _Pragma("omp simd reduction(+ : partial)")                                                             \
        for (long i = b * BLOCK; i < end; i++) { BODY }                                                        \
        total += partial;                                                                                      \
    }                                                                                                          \
    return total;

/* The gradient of the mean, dl/dx / n, rounded once: float's product in double, double's quotient. */
#define MEAN_f(g) ((float)((double)(g) * inverse_n))
#define MEAN_d(g) ((g) / (double)n)

#define DEFINE_KERNELS(NAME, IN_T, T, SUFFIX, LOAD, STORE)                                                      \
    double bce_forward_##NAME(const IN_T *x, const IN_T *y, long n, int threads) {                             \
        OVER_BLOCKS(T g; partial += (double)element_##SUFFIX(LOAD(x[i]), LOAD(y[i]), &g);)                     \
    }                                                                                                          \
    double bce_forward_backward_##NAME(const IN_T *x, const IN_T *y, IN_T *grad, long n, int threads) {         \
        double inverse_n = 1.0 / (double)n;                                                                    \
        (void)inverse_n;                                                                                       \
        OVER_BLOCKS(T g; partial += (double)element_##SUFFIX(LOAD(x[i]), LOAD(y[i]), &g);                      \
                    grad[i] = STORE(MEAN_##SUFFIX(g));)                                                        \
    }

DEFINE_KERNELS(float32, float, float, f, SAME, SAME)
DEFINE_KERNELS(float64, double, double, d, SAME, SAME)
DEFINE_KERNELS(bfloat16, uint16_t, float, f, from_bf16, to_bf16)

/* What the compiler targeted: the widest SIMD registers its flags allow, in bits. */
int bce_simd_bits(void) {
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX__)
    return 256;
#elif defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__)
    return 128;
#else
    return 0;
#endif
}

int bce_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
