/* int8 kernels with TensorFlow Lite Micro's reference arithmetic: see nn_int8.h. */
#include "nn_int8.h"

/* ---- gemmlowp's fixed-point arithmetic, on raw int32 values -------------------------------- */

/* round(a * b / 2^31), ties upward, saturating the one overflow (INT32_MIN * INT32_MIN). */
int32_t nn_rounding_doubling_high_mul(int32_t a, int32_t b) {
  int64_t ab;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  return (int32_t)((ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)))) / ((int64_t)1 << 31));
}

/* x / 2^exponent, rounded to nearest with ties away from zero (0 <= exponent <= 31). */
int32_t nn_rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier: the left shift in wrapping 32-bit arithmetic, as TFLM. */
int32_t nn_requantise(int32_t acc, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int32_t shifted = (int32_t)((uint32_t)acc * ((uint32_t)1 << left));
  return nn_rounding_divide_by_pot(nn_rounding_doubling_high_mul(shifted, multiplier), right);
}

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

static int8_t finish(int32_t acc, const nn_requant *q, int channel) {
  const int i = q->per_channel ? channel : 0;
  int32_t v = nn_requantise(acc, q->multiplier[i], q->shift[i]) + q->output_zero_point;
  if (v < q->act_min) v = q->act_min;
  if (v > q->act_max) v = q->act_max;
  return (int8_t)v;
}

/* One definition for both input types: TYPE is the input element. The input offset is folded into the
 * bias by the generator (bias + offset * sum of the filter: the same integer TFLM accumulates), so the
 * inner loop is a plain dot product: in NHWC the k x c window row under each filter row is contiguous. */
#define NN_CONV_POOL(NAME, TYPE)                                                                     \
  void NAME(const TYPE *in, int h, int w, int c, const int8_t *filter, int k, int oc,               \
            const int32_t *bias, const nn_requant *q, int8_t *out) {                                \
    const int ph = (h - k + 1) / 2, pw = (w - k + 1) / 2, run = k * c;                              \
    const long row_stride = (long)w * c;                                                            \
    int py, px, o, dy, dx, ky, j;                                                                   \
    (void)h;                                                                                        \
    for (py = 0; py < ph; ++py)                                                                     \
      for (px = 0; px < pw; ++px)                                                                   \
        for (o = 0; o < oc; ++o) {                                                                  \
          const int8_t *f0 = filter + (long)o * k * run;                                           \
          int8_t best = -128;                                                                       \
          for (dy = 0; dy < 2; ++dy)                                                                \
            for (dx = 0; dx < 2; ++dx) {                                                            \
              const TYPE *p0 = in + (long)(2 * py + dy) * row_stride + (long)(2 * px + dx) * c;    \
              int32_t acc = bias ? bias[o] : 0;                                                     \
              int8_t v;                                                                             \
              for (ky = 0; ky < k; ++ky) {                                                          \
                const TYPE *p = p0 + ky * row_stride;                                               \
                const int8_t *f = f0 + ky * run;                                                    \
                for (j = 0; j < run; ++j) acc += (int32_t)f[j] * (int32_t)p[j];                     \
              }                                                                                     \
              v = finish(acc, q, o);                                                                \
              if (v > best) best = v;                                                               \
            }                                                                                       \
          out[((long)py * pw + px) * oc + o] = best;                                                \
        }                                                                                           \
  }

NN_CONV_POOL(nn_conv_pool_s8, int8_t)
NN_CONV_POOL(nn_conv_pool_u8, uint8_t)

void nn_fully_connected(const int8_t *in, int depth, const int8_t *weights, int units,
                        const int32_t *bias, const nn_requant *q, int8_t *out) {
  int u, d;
  for (u = 0; u < units; ++u) {
    const int8_t *row = weights + (long)u * depth;
    int32_t acc = 0;
    for (d = 0; d < depth; ++d) acc += ((int32_t)row[d] + q->weight_offset) * ((int32_t)in[d] + q->input_offset);
    if (bias) acc += bias[u];
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
