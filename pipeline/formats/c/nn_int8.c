/* int8 kernels with TensorFlow Lite Micro's reference arithmetic: see nn_int8.h. */
#include "nn_int8.h"

#include <string.h>

/* ---- gemmlowp's fixed-point arithmetic, on raw int32 values -------------------------------- */

/* round(a * b / 2^31), ties upward, without the one overflow (INT32_MIN * INT32_MIN). gemmlowp adds
 * 2^30 to a non-negative product, 1 - 2^30 to a negative one, and truncates towards zero; truncating
 * a negative sum is flooring it plus 2^31 - 1, so both cases are (ab + 2^30) >> 31 (an arithmetic
 * shift): one multiply-accumulate and a shift on a core. */
static inline int32_t high_mul(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
}

int32_t nn_rounding_doubling_high_mul(int32_t a, int32_t b) {
  return a == b && a == INT32_MIN ? INT32_MAX : high_mul(a, b);
}

/* x / 2^exponent, rounded to nearest with ties away from zero (0 <= exponent <= 31). */
static inline int32_t divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1u << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t nn_rounding_divide_by_pot(int32_t x, int exponent) { return divide_by_pot(x, exponent); }

/* TFLM's MultiplyByQuantizedMultiplier: the left shift in wrapping 32-bit arithmetic, as TFLM. The
 * multiplier is never INT32_MIN (it lies in [2^30, 2^31) or is 0), so high_mul cannot overflow. */
static inline int32_t requantise(int32_t acc, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return divide_by_pot(high_mul((int32_t)((uint32_t)acc << left), multiplier), right);
}

int32_t nn_requantise(int32_t acc, int32_t multiplier, int shift) { return requantise(acc, multiplier, shift); }

static int32_t saturating_shift_left(int32_t x, int exponent) {
  const int32_t limit = (int32_t)((1u << (31 - exponent)) - 1);
  if (x > limit) return INT32_MAX;
  if (x < -limit) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* A fixed-point value with src integer bits as one with dst integer bits. */
static int32_t rescale(int32_t x, int src_bits, int dst_bits) {
  const int exponent = src_bits - dst_bits;
  if (exponent > 0) return saturating_shift_left(x, exponent);
  return exponent < 0 ? nn_rounding_divide_by_pot(x, -exponent) : x;
}

/* exp(a) for a in [-1/4, 0), Q0.31: a Taylor polynomial around -1/8. */
static int32_t exp_on_interval(int32_t a) {
  const int32_t exp_minus_one_eighth = 1895147668, one_third = 715827883;
  const int32_t x = a + (1 << 28);
  const int32_t x2 = nn_rounding_doubling_high_mul(x, x);
  const int32_t x3 = nn_rounding_doubling_high_mul(x2, x);
  const int32_t x4_over_4 = nn_rounding_divide_by_pot(nn_rounding_doubling_high_mul(x2, x2), 2);
  const int32_t poly = nn_rounding_divide_by_pot(
      nn_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
  return exp_minus_one_eighth + nn_rounding_doubling_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 given with 5 integer bits (Q5.26), as Q0.31: exp of the remainder within a
 * quarter, times exp(-2^k) for each bit k of the rest, 0 below -32. */
static int32_t exp_on_negative_values(int32_t a) {
  enum { INT_BITS = 5, FRAC_BITS = 31 - INT_BITS };
  static const int32_t exp_of_minus_pot[7] = {1672461947, 1302514674, 790015084, 290630308,
                                              39332535,   720401,     242};
  const int32_t quarter = (int32_t)1 << (FRAC_BITS - 2);
  const int32_t below = (a & (quarter - 1)) - quarter;
  const int32_t remainder = below - a;
  int32_t result = exp_on_interval(rescale(below, INT_BITS, 0));
  int k;
  for (k = 0; k < 7; ++k) {
    if (INT_BITS > k - 2 && (remainder & ((int32_t)1 << (FRAC_BITS + k - 2))))
      result = nn_rounding_doubling_high_mul(result, exp_of_minus_pot[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps from 48/17 - 32/17 x. */
static int32_t one_over_one_plus(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t c48_17 = 1515870810, c_minus_32_17 = -1010580540; /* Q2.29 */
  int32_t x = c48_17 + nn_rounding_doubling_high_mul(half_denominator, c_minus_32_17);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = ((int32_t)1 << 29) - nn_rounding_doubling_high_mul(half_denominator, x);
    x += saturating_shift_left(nn_rounding_doubling_high_mul(x, one_minus), 2);
  }
  return saturating_shift_left(x, 1);
}

static int leading_zeros(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

/* ---- layers ------------------------------------------------------------------------------------ */

/* Cores with the DSP extension (Cortex-M4, M7, M33 ...) multiply two pairs of 16-bit values and add
 * both products to an accumulator in one instruction (SMLAD); SXTB16 widens bytes 0 and 2 of a word
 * to two 16-bit halves, and with a rotation by 8, bytes 1 and 3. Weights and inputs are widened the
 * same way, so the pairs line up and the sum is the dot product's, integer for integer: the same
 * int32 as the plain C path, which every other core (and the host) runs. NN_PLAIN_C forces it. */
#if defined(__ARM_FEATURE_SIMD32) && !defined(NN_PLAIN_C)
#include <arm_acle.h>
#define NN_SIMD 1
#endif

/* A conv filter is stored in the order the DSP path reads its window: each filter row's whole words
 * (k * c values, rounded down to a multiple of 4), row after row, then the rows' leftover values
 * (k * c mod 4 of each), zero-padded to a multiple of 4. Each whole word is one load of the input. */
enum { NN_WIDE_DEPTH = 160 }; /* filters up to this long widen four positions at once, longer ones two */

int nn_conv_depth(int k, int c) {
  const int run = k * c, whole = run / 4 * 4;
  return k * whole + (k * (run - whole) + 3) / 4 * 4;
}

int nn_conv_scratch_words(int k, int c) {
  const int depth = nn_conv_depth(k, c), positions = depth <= NN_WIDE_DEPTH ? 4 : 2;
  return positions * depth / 2; /* 16 bits a value */
}

/* The requantised, clamped output of accumulator acc in channel o. */
static inline int8_t finish(int32_t acc, const nn_requant *q, int channel) {
  const int i = q->per_channel ? channel : 0;
  int32_t v = requantise(acc, q->multiplier[i], q->shift[i]) + q->output_zero_point;
  if (v < q->act_min) v = q->act_min;
  if (v > q->act_max) v = q->act_max;
  return (int8_t)v;
}

#ifndef NN_SIMD

/* Plain C. The input offset is in the bias (codegen.py folds bias + offset * the filter's sum, the
 * integer TFLM accumulates), so the inner loop is a plain dot product over the window; in NHWC the
 * k x c values under each filter row are contiguous. Requantisation rises with the accumulator
 * (codegen.py checks that it cannot wrap), so the pool takes the largest of the four accumulators
 * and requantises once. */
#define NN_CONV_POOL(NAME, TYPE)                                                                     \
  void NAME(const TYPE *in, int h, int w, int c, const int8_t *filter, int k, int oc,               \
            const int32_t *bias, const nn_requant *q, int32_t *scratch, int8_t *out) {              \
    const int ph = (h - k + 1) / 2, pw = (w - k + 1) / 2, run = k * c, whole = run / 4 * 4;        \
    const int depth = nn_conv_depth(k, c);                                                          \
    const long row = (long)w * c;                                                                   \
    int py, px, o, ky, j;                                                                           \
    (void)h, (void)scratch;                                                                         \
    for (py = 0; py < ph; ++py)                                                                     \
      for (px = 0; px < pw; ++px) {                                                                 \
        const TYPE *p0 = in + (long)(2 * py) * row + (long)(2 * px) * c;                           \
        const TYPE *at[4];                                                                          \
        at[0] = p0, at[1] = p0 + c, at[2] = p0 + row, at[3] = p0 + row + c;                         \
        for (o = 0; o < oc; ++o) {                                                                  \
          const int8_t *f = filter + (long)o * depth;                                               \
          int32_t a0 = bias ? bias[o] : 0, a1 = a0, a2 = a0, a3 = a0;                               \
          for (ky = 0; ky < k; ++ky) { /* the rows' whole words, then their leftover values */     \
            const TYPE *r0 = at[0] + ky * row, *r1 = at[1] + ky * row;                              \
            const TYPE *r2 = at[2] + ky * row, *r3 = at[3] + ky * row;                              \
            const int8_t *fw = f + ky * whole, *fl = f + k * whole + ky * (run - whole) - whole;     \
            for (j = 0; j < whole; ++j) {                                                           \
              const int32_t v = fw[j];                                                              \
              a0 += v * r0[j], a1 += v * r1[j], a2 += v * r2[j], a3 += v * r3[j];                   \
            }                                                                                       \
            for (; j < run; ++j) {                                                                  \
              const int32_t v = fl[j];                                                              \
              a0 += v * r0[j], a1 += v * r1[j], a2 += v * r2[j], a3 += v * r3[j];                   \
            }                                                                                       \
          }                                                                                         \
          a0 = a1 > a0 ? a1 : a0, a2 = a3 > a2 ? a3 : a2;                                           \
          out[((long)py * pw + px) * oc + o] = finish(a2 > a0 ? a2 : a0, q, o);                     \
        }                                                                                           \
      }                                                                                             \
  }

NN_CONV_POOL(nn_conv_pool_s8, int8_t)
NN_CONV_POOL(nn_conv_pool_u8, uint8_t)

#else

/* A 32-bit word from any address: one load (Cortex-M3 and up load unaligned words). */
static inline uint32_t load32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

static inline int32_t uxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

static inline int32_t sxtb16(uint32_t x) { return __sxtb16((int32_t)x); }
static inline int32_t uxtb16(uint32_t x) { return (int32_t)__uxtb16(x); }

/* Two widened words of a window and the pointer past them: one LDRD (GCC does not pair the loads). */
#define NN_LOAD_PAIR(x, lo, hi) __asm__ volatile("ldrd %0, %1, [%2], #8" : "=&r"(lo), "=&r"(hi), "+r"(x) : : "memory")

/* The largest of the accumulators bias + f . x_i over n values (a multiple of 4) for 4 (or 2)
 * interleaved positions: each widened weight word serves every position. */
static inline __attribute__((always_inline)) int32_t pooled4(const int8_t *f, const int32_t *x, int n, int32_t b) {
  int32_t a0 = b, a1 = b, a2 = b, a3 = b, lo, hi;
  const int8_t *end = f + n;
  for (; f < end; f += 4) {
    const uint32_t wv = load32(f);
    const int32_t even = sxtb16(wv), odd = sxtb16_ror8(wv);
    NN_LOAD_PAIR(x, lo, hi);
    a0 = __smlad(hi, odd, __smlad(lo, even, a0));
    NN_LOAD_PAIR(x, lo, hi);
    a1 = __smlad(hi, odd, __smlad(lo, even, a1));
    NN_LOAD_PAIR(x, lo, hi);
    a2 = __smlad(hi, odd, __smlad(lo, even, a2));
    NN_LOAD_PAIR(x, lo, hi);
    a3 = __smlad(hi, odd, __smlad(lo, even, a3));
  }
  a0 = a1 > a0 ? a1 : a0, a2 = a3 > a2 ? a3 : a2;
  return a2 > a0 ? a2 : a0;
}

static inline __attribute__((always_inline)) int32_t pooled2(const int8_t *f, const int32_t *x, int n, int32_t b) {
  int32_t a0 = b, a1 = b, lo, hi;
  const int8_t *end = f + n;
  for (; f < end; f += 4) {
    const uint32_t wv = load32(f);
    const int32_t even = sxtb16(wv), odd = sxtb16_ror8(wv);
    NN_LOAD_PAIR(x, lo, hi);
    a0 = __smlad(hi, odd, __smlad(lo, even, a0));
    NN_LOAD_PAIR(x, lo, hi);
    a1 = __smlad(hi, odd, __smlad(lo, even, a1));
  }
  return a1 > a0 ? a1 : a0;
}

/* The windows of np positions, from at[0..np), widened to 16-bit pairs, (v0, v2) and (v1, v3) per 4
 * values as the weights are, interleaved (position i's group g at x[2 * (g * np + i)]) and in the
 * filters' order: each row's whole words, then the rows' leftover bytes packed into words, the last
 * one zero-padded. One function per input type: LOW and HIGH widen a word. */
#define NN_WIDEN_TO(x, src, LOW, HIGH)                                                               \
  do {                                                                                              \
    const uint32_t v_ = load32(src);                                                                \
    (x)[0] = LOW(v_), (x)[1] = HIGH(v_);                                                            \
  } while (0)
#define NN_FILL(NAME, LOW, HIGH)                                                                     \
  static __attribute__((noinline)) void NAME(int32_t *x, const uint8_t *const *at, int np, int k,   \
                                             int run, long row) {                                   \
    const int words = run / 4, left = run % 4;                                                      \
    const uint8_t *p0 = at[0], *p1 = at[1], *p2 = at[np - 2], *p3 = at[np - 1];                     \
    int ky, g, i, j;                                                                                \
    for (ky = 0; ky < k; ++ky, p0 += row, p1 += row, p2 += row, p3 += row)                          \
      for (g = 0; g < 4 * words; g += 4, x += 2 * np) {                                             \
        NN_WIDEN_TO(x, p0 + g, LOW, HIGH);                                                          \
        NN_WIDEN_TO(x + 2, p1 + g, LOW, HIGH);                                                      \
        if (np == 4) {                                                                              \
          NN_WIDEN_TO(x + 4, p2 + g, LOW, HIGH);                                                    \
          NN_WIDEN_TO(x + 6, p3 + g, LOW, HIGH);                                                    \
        }                                                                                           \
      }                                                                                             \
    for (i = 0; left && i < np; ++i) { /* the leftover bytes, packed into words as they come */      \
      const uint8_t *src = at[i] + 4 * words;                                                       \
      int32_t *dst = x + 2 * i;                                                                     \
      uint32_t v = 0;                                                                               \
      int b = 0;                                                                                    \
      for (ky = 0; ky < k; ++ky, src += row)                                                        \
        for (j = 0; j < left; ++j) {                                                                \
          v |= (uint32_t)src[j] << b;                                                               \
          if ((b += 8) == 32) dst[0] = LOW(v), dst[1] = HIGH(v), dst += 2 * np, v = 0, b = 0;       \
        }                                                                                           \
      if (b) dst[0] = LOW(v), dst[1] = HIGH(v);                                                     \
    }                                                                                               \
  }
NN_FILL(fill_s8, sxtb16, sxtb16_ror8)
NN_FILL(fill_u8, uxtb16, uxtb16_ror8)

/* Every filter over the np widened windows in x: dst[o] is the requantised largest accumulator, or
 * (first == 0, the second pass of two) the larger of that and dst[o]: requantisation rises with the
 * accumulator, so the two agree. A function of its own keeps the inner loop's registers its own. */
static __attribute__((noinline)) void channels(const int8_t *filter, int oc, int depth, int np, const int32_t *x,
                                               const int32_t *bias, const nn_requant *q, int first, int8_t *dst) {
  const int32_t *multiplier = q->multiplier, zero_point = q->output_zero_point;
  const int8_t *shift = q->shift;
  const int step = q->per_channel ? 1 : 0, lo = q->act_min, hi = q->act_max;
  int o;
  for (o = 0; o < oc; ++o, filter += depth, multiplier += step, shift += step) {
    const int32_t b = bias ? bias[o] : 0;
    const int32_t acc = np == 4 ? pooled4(filter, x, depth, b) : pooled2(filter, x, depth, b);
    int32_t v = requantise(acc, *multiplier, *shift) + zero_point;
    v = v < lo ? lo : v > hi ? hi : v;
    if (first || v > dst[o]) dst[o] = (int8_t)v;
  }
}

/* SMLAD, one body for both input types: the windows of the 4 pooling positions (2 at a time for long
 * filters) are widened into scratch and every filter runs over them; the pool keeps the largest. */
static void conv_pool(const uint8_t *in, int u8, int h, int w, int c, const int8_t *filter, int k, int oc,
                      const int32_t *bias, const nn_requant *q, int32_t *scratch, int8_t *out) {
  const int ph = (h - k + 1) / 2, pw = (w - k + 1) / 2, run = k * c, depth = nn_conv_depth(k, c);
  const int np = depth <= NN_WIDE_DEPTH ? 4 : 2;
  const long row = (long)w * c;
  int py, px, pass;
  (void)h;
  for (py = 0; py < ph; ++py)
    for (px = 0; px < pw; ++px) {
      const uint8_t *p0 = in + (long)(2 * py) * row + (long)(2 * px) * c;
      const uint8_t *at[4];
      at[0] = p0, at[1] = p0 + c, at[2] = p0 + row, at[3] = p0 + row + c;
      for (pass = 0; pass < 4 / np; ++pass) {
        (u8 ? fill_u8 : fill_s8)(scratch, at + pass * np, np, k, run, row);
        channels(filter, oc, depth, np, scratch, bias, q, pass == 0, out + ((long)py * pw + px) * oc);
      }
    }
}

void nn_conv_pool_s8(const int8_t *in, int h, int w, int c, const int8_t *filter, int k, int oc,
                     const int32_t *bias, const nn_requant *q, int32_t *scratch, int8_t *out) {
  conv_pool((const uint8_t *)in, 0, h, w, c, filter, k, oc, bias, q, scratch, out);
}

void nn_conv_pool_u8(const uint8_t *in, int h, int w, int c, const int8_t *filter, int k, int oc,
                     const int32_t *bias, const nn_requant *q, int32_t *scratch, int8_t *out) {
  conv_pool(in, 1, h, w, c, filter, k, oc, bias, q, scratch, out);
}

#endif

/* Fully connected. With a zero weight offset the input offset is in the bias too (codegen.py), and two
 * units at a time share each input (on the DSP path each widened input word); else the offsets go
 * term by term. */
void nn_fully_connected(const int8_t *in, int depth, const int8_t *weights, int units,
                        const int32_t *bias, const nn_requant *q, int8_t *out) {
  int u = 0, d;
#ifdef NN_SIMD
  if (q->weight_offset == 0 && q->input_offset == 0 && depth % 4 == 0)
    for (; u + 1 < units; u += 2) {
      const int8_t *w0 = weights + (long)u * depth, *w1 = w0 + depth;
      int32_t a0 = bias ? bias[u] : 0, a1 = bias ? bias[u + 1] : 0;
      for (d = 0; d < depth; d += 4) {
        const uint32_t x = load32(in + d), v0 = load32(w0 + d), v1 = load32(w1 + d);
        const int32_t even = sxtb16(x), odd = sxtb16_ror8(x);
        a0 = __smlad(sxtb16_ror8(v0), odd, __smlad(sxtb16(v0), even, a0));
        a1 = __smlad(sxtb16_ror8(v1), odd, __smlad(sxtb16(v1), even, a1));
      }
      out[u] = finish(a0, q, u);
      out[u + 1] = finish(a1, q, u + 1);
    }
#else
  if (q->weight_offset == 0 && q->input_offset == 0) /* the offsets are in the bias: two units share each input */
    for (; u + 1 < units; u += 2) {
      const int8_t *w0 = weights + (long)u * depth, *w1 = w0 + depth;
      int32_t a0 = bias ? bias[u] : 0, a1 = bias ? bias[u + 1] : 0;
      for (d = 0; d < depth; ++d) {
        const int32_t x = in[d];
        a0 += w0[d] * x, a1 += w1[d] * x;
      }
      out[u] = finish(a0, q, u);
      out[u + 1] = finish(a1, q, u + 1);
    }
#endif
  for (; u < units; ++u) {
    const int8_t *w = weights + (long)u * depth;
    int32_t acc = bias ? bias[u] : 0;
    for (d = 0; d < depth; ++d) acc += ((int32_t)w[d] + q->weight_offset) * ((int32_t)in[d] + q->input_offset);
    out[u] = finish(acc, q, u);
  }
}

/* Fully connected with palette-coded weights (codegen.py): each weight is one of at most 16 int8
 * values and stored as its 4-bit index. Of each 4 weights, one byte holds the indices of the 1st and
 * 3rd (low nibble first), the next byte those of the 2nd and 4th; pairs[b] is the two weights byte b
 * stands for as the 16-bit pair SMLAD takes, lined up with an input word widened by SXTB16. So a
 * weight costs half a byte of flash and its decoding one table load per two weights. depth is a
 * multiple of 4 and the offsets are in the bias. */
void nn_fully_connected_p4(const int8_t *in, int depth, const uint8_t *indices, const int32_t *pairs, int units,
                           const int32_t *bias, const nn_requant *q, int8_t *out) {
  const int row = depth / 2;
  int u = 0, d;
#ifdef NN_SIMD
  for (; u + 1 < units; u += 2) {
    const uint8_t *i0 = indices + (long)u * row, *i1 = i0 + row;
    int32_t a0 = bias ? bias[u] : 0, a1 = bias ? bias[u + 1] : 0;
    for (d = 0; d < depth; d += 4, i0 += 2, i1 += 2) {
      const uint32_t x = load32(in + d);
      const int32_t even = sxtb16(x), odd = sxtb16_ror8(x);
      a0 = __smlad(pairs[i0[1]], odd, __smlad(pairs[i0[0]], even, a0));
      a1 = __smlad(pairs[i1[1]], odd, __smlad(pairs[i1[0]], even, a1));
    }
    out[u] = finish(a0, q, u);
    out[u + 1] = finish(a1, q, u + 1);
  }
#endif
  for (; u < units; ++u) {
    const uint8_t *idx = indices + (long)u * row;
    int32_t acc = bias ? bias[u] : 0;
    for (d = 0; d < depth; d += 4, idx += 2) {
      const int32_t a = pairs[idx[0]], b = pairs[idx[1]]; /* (1st, 3rd) and (2nd, 4th) as 16-bit halves */
      acc += (int16_t)a * in[d] + (a >> 16) * in[d + 2] + (int16_t)b * in[d + 1] + (b >> 16) * in[d + 3];
    }
    out[u] = finish(acc, q, u);
  }
}

/* The same with a table of at most 16 int8 values per unit (tables[16 * u + i]): what per-channel
 * quantisation of a clustered layer leaves (each unit's own scale maps its 16 values to its own 16
 * integers). Index bytes as above. One table load per weight. */
void nn_fully_connected_p4c(const int8_t *in, int depth, const uint8_t *indices, const int8_t *tables, int units,
                            const int32_t *bias, const nn_requant *q, int8_t *out) {
  const int row = depth / 2;
  int u, d;
  for (u = 0; u < units; ++u) {
    const uint8_t *idx = indices + (long)u * row;
    const int8_t *t = tables + 16 * u;
    int32_t acc = bias ? bias[u] : 0;
    for (d = 0; d < depth; d += 4, idx += 2) {
      const unsigned a = idx[0], b = idx[1];
      acc += t[a & 15] * in[d] + t[a >> 4] * in[d + 2] + t[b & 15] * in[d + 1] + t[b >> 4] * in[d + 3];
    }
    out[u] = finish(acc, q, u);
  }
}

void nn_softmax(const int8_t *in, int depth, int32_t input_multiplier, int input_left_shift,
                int32_t diff_min, int8_t *out) {
  enum { ACCUMULATION_BITS = 12 };
  int8_t top = -128;
  int32_t sum = 0, reciprocal;
  int i, headroom, bits_over_unit;
  for (i = 0; i < depth; ++i)
    if (in[i] > top) top = in[i];
  for (i = 0; i < depth; ++i) {
    const int32_t diff = (int32_t)in[i] - top;
    if (diff >= diff_min) {
      const int32_t scaled = nn_rounding_doubling_high_mul(diff * (1 << input_left_shift), input_multiplier);
      sum += nn_rounding_divide_by_pot(exp_on_negative_values(scaled), ACCUMULATION_BITS);
    }
  }
  headroom = leading_zeros((uint32_t)sum);
  bits_over_unit = ACCUMULATION_BITS - headroom;
  reciprocal = one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
  for (i = 0; i < depth; ++i) {
    const int32_t diff = (int32_t)in[i] - top;
    int32_t v = -128;
    if (diff >= diff_min) {
      const int32_t scaled = nn_rounding_doubling_high_mul(diff * (1 << input_left_shift), input_multiplier);
      const int32_t p = nn_rounding_doubling_high_mul(reciprocal, exp_on_negative_values(scaled));
      v = nn_rounding_divide_by_pot(p, bits_over_unit + 31 - 8) - 128;
      if (v > 127) v = 127;
      if (v < -128) v = -128;
    }
    out[i] = (int8_t)v;
  }
}
