/* Steps 2-5 of runtime/preprocess.py in C: a reduced image's float pixels -> the digit's ink, then the 28x28; and
   step 1's reduction of an opaque 8-bit image, as Pillow's pixels.

       double k[INK_CONSTANTS];  ink_configure(k);          // runtime/preprocess.json's values, in ink_names order
       int c = ink_reduce(rgbx, width, 4, left, top, right, bottom, factor, pixels);  // step 1's reduction: c 1 or 3
       int box[4]; double stroke;
       int status = ink_find(pixels, w, h, c, alpha, ink, box, &stroke);  // 0, or an INK_* reason there is no digit
       ink_centre(ink, w, h, out);                           // float[28 * 28], white ink on black

   Function for function runtime/ink.py, runtime/blobs.py and the crop and centring of runtime/preprocess.py:
   their docstrings say why each step is there. numpy is the reference (tests/test_native.py holds this file to
   it); float where numpy computes in float32, double where it computes in float64, the same order of steps.
   Compile without contracting a * b + c into one rounding (-ffp-contract=off), or float32 results drift.

   C99 and libm only, no global state but the constants: runtime/native/__init__.py builds it for the host and
   loads it with ctypes. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INK_OK 0
#define INK_TRANSPARENT 1 /* the image is fully transparent */
#define INK_BLANK 2       /* blank or nearly uniform */
#define INK_NOISE 3       /* nothing stands out of the background's noise as ink */
#define INK_SPECKS 4      /* only specks differ from the background */
#define INK_MEMORY 5      /* out of memory */

/* The constants this file reads, in the order ink_configure takes their values. */
#define CONSTANTS(X)                                                                                            \
  X(BOX) X(SIZE) X(THIN) X(STROKE) X(INK_CUT) X(MIN_CONTRAST) X(NOISE_SIGMAS) X(NOISY) X(SPECK) X(BORDER_CONTACT) \
  X(SURFACE_GAIN) X(FLAT_SHARE) X(GRID) X(FIT_ROUNDS) X(MAD_SIGMA) X(TOLERANCE_SIGMAS) X(TOLERANCE_MIN)           \
  X(SHADOW_SHARE) X(EXPLAINED_MIN) X(LIGHT_INK) X(TOPHAT_STROKES) X(WIDE_STROKE) X(TOPHAT_FRACTION) X(MASK_GROW)  \
  X(SURFACE_MIN_SIDE)
#define AS_ENUM(name) K_##name,
#define AS_NAME(name) #name ","
enum { CONSTANTS(AS_ENUM) INK_CONSTANTS };

const char ink_names[] = CONSTANTS(AS_NAME);
const int ink_constants = INK_CONSTANTS;
static double K[INK_CONSTANTS];

void ink_configure(const double *values) { memcpy(K, values, sizeof K); }

/* ---- memory: every buffer of one call comes from its arena and goes with it ---- */

typedef struct Block {
  struct Block *next;
  double data[];
} Block;

typedef struct {
  Block *blocks;
  int failed;
} Arena;

static void *take(Arena *arena, size_t bytes) {
  Block *b = arena->failed ? NULL : malloc(sizeof(Block) + bytes + 1);
  if (!b) {
    arena->failed = 1;
    return NULL;
  }
  b->next = arena->blocks;
  arena->blocks = b;
  return b->data;
}

static void release(Arena *arena) {
  while (arena->blocks) {
    Block *next = arena->blocks->next;
    free(arena->blocks);
    arena->blocks = next;
  }
}

#define NEW(arena, type, n) ((type *)take((arena), sizeof(type) * (size_t)((n) > 0 ? (n) : 1)))

/* A plane of values: float32 ones (single) are held rounded to float, as numpy holds them. */
typedef struct {
  double *v;
  int w, h, single;
} Plane;

static double rf(double x, int single) { return single ? (double)(float)x : x; }

/* Python's min and max: the first unless the second is strictly past it (a NaN first stays). */
static double pmin(double a, double b) { return b < a ? b : a; }
static double pmax(double a, double b) { return b > a ? b : a; }

/* ---- numpy's statistics ---- */

/* The k-th smallest of a[0..n) (0-based), rearranging a: Hoare's selection. */
static double select_kth(double *a, int n, int k) {
  int lo = 0, hi = n - 1;
  while (hi > lo) {
    int mid = (lo + hi) >> 1, i = lo, j = hi;
    double t;
    if (a[mid] < a[lo]) t = a[mid], a[mid] = a[lo], a[lo] = t;
    if (a[hi] < a[lo]) t = a[hi], a[hi] = a[lo], a[lo] = t;
    if (a[hi] < a[mid]) t = a[hi], a[hi] = a[mid], a[mid] = t;
    double pivot = a[mid];
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) t = a[i], a[i] = a[j], a[j] = t, i++, j--;
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      return a[k];
  }
  return a[k];
}

/* The least and the greatest of a[0..n) (n > 0) and how many equal the least, in four lanes: one would wait on each
   comparison before the next. */
static void extent(const double *a, int n, double *least, double *most, int *lowest) {
  double lo[4] = {a[0], a[0], a[0], a[0]}, hi[4] = {a[0], a[0], a[0], a[0]};
  int at[4] = {0, 0, 0, 0}, i = 0; /* each lane's count of its least so far */
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; j++) {
      double v = a[i + j];
      int below = v < lo[j];
      at[j] = below ? 1 : at[j] + (v == lo[j]);
      lo[j] = below ? v : lo[j], hi[j] = v > hi[j] ? v : hi[j];
    }
  for (; i < n; i++) {
    int below = a[i] < lo[0];
    at[0] = below ? 1 : at[0] + (a[i] == lo[0]);
    lo[0] = below ? a[i] : lo[0], hi[0] = a[i] > hi[0] ? a[i] : hi[0];
  }
  *least = pmin(pmin(lo[0], lo[1]), pmin(lo[2], lo[3])), *most = pmax(pmax(hi[0], hi[1]), pmax(hi[2], hi[3]));
  *lowest = 0;
  for (int j = 0; j < 4; j++) *lowest += lo[j] == *least ? at[j] : 0;
}

/* The greatest of start and a[0..n), in four lanes (as one running "a[i] > top ? a[i] : top" from start). */
static double greatest(const double *a, int n, double start) {
  double hi[4] = {start, start, start, start};
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; j++) hi[j] = a[i + j] > hi[j] ? a[i + j] : hi[j];
  for (; i < n; i++) hi[0] = a[i] > hi[0] ? a[i] : hi[0];
  return pmax(pmax(hi[0], hi[1]), pmax(hi[2], hi[3]));
}

/* The k-th and (k+1)-th smallest of a (the second the first when k is the last index), rearranging a. Exact, and
   with few mispredicted branches: a histogram over [min, max] (monotone in the value; about n / 4 bins, so that a
   short array does not pay for a long histogram) finds the bins that hold the two ranks; Hoare's selection runs on
   those values only. */
#define SELECT_BINS 1024
static int k2_of(int n, int k) { return k + 1 < n ? k + 1 : k; }

static void select_pair(double *a, int n, int k, double *first, double *next) {
  double lo, hi;
  int lowest;
  extent(a, n, &lo, &hi, &lowest);
  int bins = 64;
  while (bins < SELECT_BINS && 4 * bins < n) bins *= 2;
  double scale = bins / (hi - lo);
  if (!(hi > lo) || !isfinite(scale)) { /* all equal, or a range too wide or narrow to bin: select them all */
    *first = select_kth(a, n, k);
    *next = k2_of(n, k) == k ? *first : INFINITY;
    for (int i = k + 1; i < n; i++) *next = a[i] < *next ? a[i] : *next;
    return;
  }
#define BIN(v) ((int)(((v) - lo) * scale) < bins - 1 ? (int)(((v) - lo) * scale) : bins - 1)
  int lanes[4 * SELECT_BINS], counts[SELECT_BINS], k2 = k2_of(n, k), b = 0, below = 0;
  if (lowest > k2) { /* both ranks hold the least value (clean paper: most distances and steps are 0) */
    *first = *next = lo;
    return;
  }
  memset(lanes, 0, sizeof(int) * 4 * bins);
  int i = 0; /* four histograms: equal values would wait on one bin */
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; j++) lanes[j * bins + BIN(a[i + j])]++;
  for (; i < n; i++) lanes[BIN(a[i])]++;
  for (int v = 0; v < bins; v++) counts[v] = lanes[v] + lanes[bins + v] + lanes[2 * bins + v] + lanes[3 * bins + v];
  while (below + counts[b] <= k) below += counts[b++];
  int b2 = b, below2 = below;
  while (below2 + counts[b2] <= k2) below2 += counts[b2++];
  int m = 0, m2 = 0; /* in one pass, the values of bin b to a[0, m), then those of bin b2 to a[m, m2) */
  for (i = 0; i < n; i++) {
    int bin = BIN(a[i]);
    double t = a[i];
    if (bin == b) { /* a[m] (a value of b2, if any) moves up to a[m2], a[m2] to a[i] */
      a[i] = a[m2], a[m2] = a[m], a[m] = t, m++, m2++;
    } else if (bin == b2) {
      a[i] = a[m2], a[m2] = t, m2++;
    }
  }
#undef BIN
  *first = select_kth(a, m, k - below);
  if (b2 != b) {
    *next = select_kth(a + m, m2 - m, k2 - below2);
  } else { /* the least value past the k-th, where the selection left the larger ones */
    *next = k2 == k ? *first : INFINITY;
    for (int i = k - below + 1; i < m && k2 != k; i++) *next = a[i] < *next ? a[i] : *next;
  }
}

/* np.median of a[0..n), rearranging a; the mean of the middle two in float32 for float32 values. */
static double median(double *a, int n, int single) {
  if (n == 0) return NAN;
  double x, y;
  select_pair(a, n, n % 2 ? n / 2 : n / 2 - 1, &x, &y);
  if (n % 2) return x;
  return rf(rf(x + y, single) / 2, single);
}

/* np.percentile(a, q) (linear, numpy's two-sided lerp) of a non-empty a, rearranging it. */
static double percentile(double *a, int n, double q, int single) {
  double share = q / 100, index = n * share + (1 - share) - 1, low, high; /* numpy's virtual index, as it rounds */
  int below = (int)index;
  double t = index - below;
  select_pair(a, n, below, &low, &high);
  double diff = rf(high - low, single);
  return t >= 0.5 ? rf(high - rf(diff * (1 - t), single), single) : rf(low + rf(diff * t, single), single);
}

/* Otsu's threshold over a 256-bin histogram of [0, max] (runtime/ink.py's _otsu). */
static double otsu(const double *x, int n, int single) {
  double top = 1e-6, w[256], m[256], w0 = 0, m0 = 0, best_value = -INFINITY;
  int lanes[4][256] = {{0}}; /* four histograms, summed after: most values share a bin, and one would wait on it */
  if (n > 0) top = pmax(greatest(x, n, x[0]), 1e-6);
  double scale = rf(256 / top, single), width = top / 256;
  int v = 0, bin[4];
  for (; v + 4 <= n; v += 4) { /* float32 values are binned as numpy bins them, rounded to float */
    for (int j = 0; j < 4; j++) bin[j] = single ? (int)(float)(x[v + j] * scale) : (int)(x[v + j] * scale);
    for (int j = 0; j < 4; j++) lanes[j][bin[j] < 255 ? bin[j] : 255]++;
  }
  for (; v < n; v++) {
    bin[0] = (int)rf(x[v] * scale, single);
    lanes[0][bin[0] < 255 ? bin[0] : 255]++;
  }
  for (int i = 0; i < 256; i++) {
    double p = (double)(lanes[0][i] + lanes[1][i] + lanes[2][i] + lanes[3][i]) / n;
    w[i] = w0 += p;
    m[i] = m0 += p * ((i + 0.5) * width);
  }
  int best = 0;
  for (int i = 0; i < 256; i++) {
    double d = m0 * w[i] - m[i], between = d * d / (w[i] * (1 - w[i]));
    if (isnan(between) || between < 0) between = 0; /* np.fmax(between, 0): an empty class counts as 0 */
    if (between > best_value) best = i, best_value = between;
  }
  return (best + 0.5) * width;
}

static double tolerance(double *d, int n, int single) {
  return pmax(K[K_TOLERANCE_SIGMAS] * K[K_MAD_SIGMA] * median(d, n, single), K[K_TOLERANCE_MIN]);
}

/* ---- filters ---- */

/* Whether mask[0..n) is all 0, eight bytes at a time: most rows of a digit's mask are. */
static int empty(const unsigned char *mask, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    memcpy(&word, mask + i, 8);
    if (word) return 0;
  }
  for (; i < n; i++)
    if (mask[i]) return 0;
  return 1;
}

/* The max (or min) over a k-window of line[i .. i + k) for each i < n: van Herk and Gil-Werman, O(1) per value. */
#define EXTREMES(name, better)                                                                                  \
  static void name(const double *line, int length, int k, double *out, int n, double *ahead, double *behind) { \
    for (int i = 0; i < length; i++) ahead[i] = i % k == 0 || better(line[i], ahead[i - 1]) ? line[i] : ahead[i - 1]; \
    for (int i = length - 1; i >= 0; i--)                                                                       \
      behind[i] = i % k == k - 1 || i == length - 1 || better(line[i], behind[i + 1]) ? line[i] : behind[i + 1];  \
    for (int i = 0; i < n; i++) out[i] = better(ahead[i + k - 1], behind[i]) ? ahead[i + k - 1] : behind[i];   \
  }
#define GREATER(a, b) ((a) > (b))
#define LESS(a, b) ((a) < (b))
EXTREMES(maxima, GREATER)
EXTREMES(minima, LESS)

/* runtime/ink.py's _rank: the max (or min) over a k x k square around each pixel (k odd), edges replicated;
   the columns' windows first, then the rows'. In place on a w x h plane. */
static int rank(Arena *arena, double *plane, int w, int h, int k, int take_max) {
  int r = k / 2, longest = (w > h ? w : h) + 2 * r;
  double *line = NEW(arena, double, longest), *out = NEW(arena, double, longest);
  double *ahead = NEW(arena, double, longest), *behind = NEW(arena, double, longest);
  if (arena->failed) return 0;
  for (int x = 0; x < w; x++) {
    for (int y = 0; y < h + 2 * r; y++) {
      int from = y - r < 0 ? 0 : (y - r > h - 1 ? h - 1 : y - r);
      line[y] = plane[from * w + x];
    }
    (take_max ? maxima : minima)(line, h + 2 * r, k, out, h, ahead, behind);
    for (int y = 0; y < h; y++) plane[y * w + x] = out[y];
  }
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w + 2 * r; x++) {
      int from = x - r < 0 ? 0 : (x - r > w - 1 ? w - 1 : x - r);
      line[x] = plane[y * w + from];
    }
    (take_max ? maxima : minima)(line, w + 2 * r, k, out, w, ahead, behind);
    memcpy(plane + (size_t)y * w, out, sizeof(double) * w);
  }
  return 1;
}

/* A 0/1 mask grown by a k x k square (k odd; rank's max, edges replicated): out is 1 where the window holds a 1.
   Counts of ones in running windows, the columns' first, then the rows'; an empty row adds nothing to the columns'
   counts, and a row with no ink within r rows of it comes out empty. */
static int grow(Arena *arena, const unsigned char *mask, int w, int h, int k, unsigned char *out) {
  int r = k / 2, *here = NEW(arena, int, w), *counts = NEW(arena, int, w), inked = 0; /* here: the row's columns */
  unsigned char *has = NEW(arena, unsigned char, h); /* whether row y holds a 1 */
  if (arena->failed) return 0;
  for (int y = 0; y < h; y++) has[y] = !empty(mask + (size_t)y * w, w);
  memset(counts, 0, sizeof(int) * w); /* each column's count, row by row: along memory, so it vectorises */
  for (int y = 0; y < r && y < h; y++) {
    inked += has[y];
    if (has[y])
      for (int x = 0; x < w; x++) counts[x] += mask[(size_t)y * w + x];
  }
  for (int y = 0; y < h; y++) {
    int in = y + r, gone = y - r - 1;
    if (in < h && has[in]) {
      inked++;
      for (int x = 0; x < w; x++) counts[x] += mask[(size_t)in * w + x];
    }
    if (gone >= 0 && has[gone]) {
      inked--;
      for (int x = 0; x < w; x++) counts[x] -= mask[(size_t)gone * w + x];
    }
    if (!inked) { /* no ink in the window's rows: the row comes out empty */
      memset(out + (size_t)y * w, 0, w);
      continue;
    }
    for (int x = 0; x < w; x++) here[x] = counts[x] > 0;
    int ones = 0;
    for (int x = 0; x < r && x < w; x++) ones += here[x];
    for (int x = 0; x < w; x++) {
      if (x + r < w) ones += here[x + r];
      if (x - r - 1 >= 0) ones -= here[x - r - 1];
      out[(size_t)y * w + x] = ones > 0;
    }
  }
  return 1;
}

/* ImageFilter.MedianFilter(3) of an 8-bit plane: the 5th of the 9 sorted neighbours, edges replicated. */
static void median3(const unsigned char *in, unsigned char *out, int w, int h) {
  static const unsigned char net[19][2] = {{1, 2}, {4, 5}, {7, 8}, {0, 1}, {3, 4}, {6, 7}, {1, 2},
                                           {4, 5}, {7, 8}, {0, 3}, {5, 8}, {4, 7}, {3, 6}, {1, 4},
                                           {2, 5}, {4, 7}, {4, 2}, {6, 4}, {4, 2}}; /* Paeth's median-of-9 network */
  for (int y = 0; y < h; y++) {
    int rows[3] = {(y > 0 ? y - 1 : 0) * w, y * w, (y < h - 1 ? y + 1 : h - 1) * w};
    for (int x = 0; x < w; x++) {
      int cols[3] = {x > 0 ? x - 1 : 0, x, x < w - 1 ? x + 1 : w - 1}, v[9];
      for (int j = 0; j < 9; j++) v[j] = in[rows[j / 3] + cols[j % 3]];
      for (int s = 0; s < 19; s++) {
        int a = net[s][0], b = net[s][1];
        if (v[a] > v[b]) {
          int t = v[a];
          v[a] = v[b], v[b] = t;
        }
      }
      out[y * w + x] = (unsigned char)v[4];
    }
  }
}

/* Pillow's Lanczos filter (Resample.c). */
static double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * 3.14159265358979323846; /* M_PI, which C99 does not define */
  return sin(x) / x;
}

static double lanczos(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

/* One pass of Image.resize(..., LANCZOS) on an "F" image, along rows (horizontal) or columns, as Resample.c:
   per output pixel, normalised weights over a window; float pixels accumulate in double and store float. */
static int resample(Arena *arena, const float *in, int w, int h, float *out, int out_size, int horizontal) {
  int in_size = horizontal ? w : h;
  double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 3.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  double *weights = NEW(arena, double, (size_t)out_size * ksize);
  int *bounds = NEW(arena, int, 2 * out_size);
  if (arena->failed) return 0;
  for (int xx = 0; xx < out_size; xx++) {
    double centre = (xx + 0.5) * scale, total = 0.0, ss = 1.0 / filterscale, *k = weights + (size_t)xx * ksize;
    int xmin = (int)(centre - support + 0.5), xmax = (int)(centre + support + 0.5);
    xmin = xmin < 0 ? 0 : xmin;
    xmax = (xmax > in_size ? in_size : xmax) - xmin;
    for (int x = 0; x < xmax; x++) total += k[x] = lanczos((x + xmin - centre + 0.5) * ss);
    for (int x = 0; x < xmax; x++)
      if (total != 0.0) k[x] /= total;
    bounds[2 * xx] = xmin, bounds[2 * xx + 1] = xmax;
  }
  int ow = horizontal ? out_size : w, oh = horizontal ? h : out_size;
  for (int y = 0; y < oh; y++) {
    for (int x = 0; x < ow; x++) {
      int i = horizontal ? x : y, step = horizontal ? 1 : w;
      const float *at = horizontal ? in + (size_t)y * w + bounds[2 * i] : in + (size_t)bounds[2 * i] * w + x;
      const double *k = weights + (size_t)i * ksize;
      double sum = 0.0;
      for (int j = 0; j < bounds[2 * i + 1]; j++, at += step) sum += *at * k[j];
      out[y * ow + x] = (float)sum;
    }
  }
  return 1;
}

/* ---- masks and blobs ---- */

/* runtime/ink.py's _stroke_width: 2 x area / perimeter of a 0/1 mask, px. */
static double stroke_width(const unsigned char *mask, int w, int h) {
  long area = 0, perimeter = 0; /* edges between set and unset pixels, the outside unset */
  int was_empty = 1;            /* whether the row above is all 0: an empty row under one adds no edge */
  for (int y = 0; y < h; y++) {
    const unsigned char *row = mask + (size_t)y * w, *up = y ? row - w : row;
    int is_empty = empty(row, w);
    if (is_empty && was_empty) continue;
    was_empty = is_empty;
    int left = row[0] != 0, last = row[w - 1] != 0;
    area += last, perimeter += left + last + (y ? last != (up[w - 1] != 0) : last);
    for (int x = 0; x + 1 < w; x++) { /* the others' edges above and to the right (the last one's are counted) */
      int here = row[x] != 0, right = row[x + 1] != 0, over = y ? up[x] != 0 : 0;
      area += here, perimeter += (here != over) + (here != right);
    }
  }
  for (int x = 0; x < w; x++) perimeter += mask[(size_t)(h - 1) * w + x] != 0;
  return 2.0 * area / (perimeter > 1 ? perimeter : 1);
}

static int count(const unsigned char *mask, int n) {
  int found = 0;
  for (int i = 0; i < n; i++) found += mask[i] != 0;
  return found;
}

/* values > t of a plane (a float32 plane against t rounded to float, as numpy compares with a Python float). */
static void above(const Plane *p, double t, unsigned char *restrict mask) {
  double limit = rf(t, p->single);
  const double *restrict v = p->v; /* locals: a store to mask may alias anything, the plane's fields too */
  for (int i = 0, n = p->w * p->h; i < n; i++) mask[i] = v[i] > limit;
}

static int find_root(int *parent, int i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

/* runtime/blobs.py's _digit, in place: the mask's 8-connected blobs (union-find over row runs) that make the digit;
   when some do not touch the border, those touching it along more than BORDER_CONTACT of its side, or from one side to
   the other, go; then specks: blobs under SPECK x the largest's area, outside the box of the bigger ones. */
static int digit_blobs(Arena *arena, unsigned char *mask, int w, int h) {
  int most = (w + 1) / 2 * h + 1, n = 0;
  int *row = NEW(arena, int, most), *start = NEW(arena, int, most), *end = NEW(arena, int, most);
  int *first = NEW(arena, int, h + 1), *parent = NEW(arena, int, most);
  if (arena->failed) return 0;
  for (int y = 0; y < h; y++) {
    first[y] = n;
    for (int x = empty(mask + (size_t)y * w, w) ? w : 0; x < w;) {
      if (!mask[y * w + x]) {
        x++;
        continue;
      }
      row[n] = y, start[n] = x;
      while (x < w && mask[y * w + x]) x++;
      end[n] = x, parent[n] = n, n++;
    }
  }
  first[h] = n;
  if (n == 0) return 1;
  for (int r = 1; r < h; r++) { /* join runs of neighbouring rows that overlap or touch diagonally */
    for (int i = first[r - 1], j = first[r]; i < first[r] && j < first[r + 1];) {
      if (start[j] <= end[i] && start[i] <= end[j]) {
        int a = find_root(parent, i), b = find_root(parent, j);
        parent[a < b ? b : a] = a < b ? a : b;
      }
      if (end[i] < end[j])
        i++;
      else
        j++;
    }
  }
  double *area = NEW(arena, double, n), *contact = NEW(arena, double, n), *in_box = NEW(arena, double, n);
  unsigned char *sides = NEW(arena, unsigned char, n); /* 1 top, 2 bottom, 4 left, 8 right */
  int *root = NEW(arena, int, n);
  if (arena->failed) return 0;
  memset(area, 0, sizeof(double) * n), memset(contact, 0, sizeof(double) * n), memset(sides, 0, n);
  memset(in_box, 0, sizeof(double) * n);
  for (int i = 0; i < n; i++) {
    int b = root[i] = find_root(parent, i), edge_row = row[i] == 0 || row[i] == h - 1;
    area[b] += end[i] - start[i];
    contact[b] += edge_row ? end[i] - start[i] : (start[i] == 0) + (end[i] == w);
    sides[b] |= (row[i] == 0) | (row[i] == h - 1) << 1 | (start[i] == 0) << 2 | (end[i] == w) << 3;
  }
  double largest = 0;
  for (int b = 0; b < n; b++) largest = area[b] > largest ? area[b] : largest;
  int inside = 0;
  for (int b = 0; b < n; b++) inside |= area[b] > 0 && area[b] >= K[K_SPECK] * largest && contact[b] == 0;
  if (inside) {
    double side = w < h ? w : h;
    for (int b = 0; b < n; b++)
      if (contact[b] > K[K_BORDER_CONTACT] * side || (sides[b] & 3) == 3 || (sides[b] & 12) == 12) area[b] = 0;
  }
  largest = 0;
  for (int b = 0; b < n; b++) largest = area[b] > largest ? area[b] : largest;
  int top = h, bottom = -1, left = w, right = -1;
  for (int i = 0; i < n; i++) {
    double a = area[root[i]];
    if (!(a >= K[K_SPECK] * largest && a > 0)) continue;
    top = row[i] < top ? row[i] : top, bottom = row[i] > bottom ? row[i] : bottom;
    left = start[i] < left ? start[i] : left, right = end[i] > right ? end[i] : right;
  }
  for (int i = 0; i < n; i++) in_box[root[i]] += row[i] >= top && row[i] <= bottom && end[i] > left && start[i] < right;
  memset(mask, 0, (size_t)w * h);
  for (int i = 0; i < n; i++)
    if (in_box[root[i]] > 0 && area[root[i]] > 0) memset(mask + (size_t)row[i] * w + start[i], 1, end[i] - start[i]);
  return 1;
}

/* ---- the paper's noise ---- */

/* The paper's spread (runtime/ink.py's _spread): MAD_SIGMA x the median |x| of every other pixel of every other row,
   of those within the tolerance (and, unless wide, below Otsu's cut). */
static double spread(Arena *arena, const Plane *p, int wide) {
  int n = 0, kept = 0;
  double *d = NEW(arena, double, ((p->w + 1) / 2) * ((p->h + 1) / 2)), *work = NEW(arena, double, ((p->w + 1) / 2) * ((p->h + 1) / 2));
  if (arena->failed) return NAN;
  for (int y = 0; y < p->h; y += 2)
    for (int x = 0; x < p->w; x += 2) d[n++] = fabs(p->v[y * p->w + x]);
  memcpy(work, d, sizeof(double) * n);
  double cut = tolerance(work, n, p->single);
  if (!wide) cut = pmin(cut, otsu(d, n, p->single));
  cut = rf(cut, p->single);
  for (int i = 0; i < n; i++)
    if (d[i] <= cut) work[kept++] = d[i];
  return K[K_MAD_SIGMA] * median(work, kept, p->single);
}

/* The noise told by neighbouring pixels (runtime/ink.py's _grain): the smaller of what first and second differences
   along every other row say; data is h rows of w pixels of c interleaved channels, the rms over them. */
static double grain(Arena *arena, const double *data, int w, int h, int c, int single) {
  double *line = NEW(arena, double, (size_t)w * c), *steps = NEW(arena, double, (size_t)w * ((h + 1) / 2));
  if (arena->failed) return NAN;
  double found = INFINITY;
  for (int order = 1; order <= 2; order++) {
    int n = 0;
    for (int y = 0; y < h; y += 2) {
      int width = w;
      memcpy(line, data + (size_t)y * w * c, sizeof(double) * w * c);
      for (int k = 0; k < order; k++, width--)
        for (int i = 0; i < (width - 1) * c; i++) line[i] = rf(line[i + c] - line[i], single);
      for (int x = 0; x < width; x++) {
        if (c == 1) {
          steps[n++] = fabs(line[x]);
          continue;
        }
        double s = 0;
        for (int ch = 0; ch < c; ch++) s = rf(s + rf(line[x * c + ch] * line[x * c + ch], single), single);
        steps[n++] = rf(sqrt(rf(s / c, single)), single);
      }
    }
    double g = K[K_MAD_SIGMA] * median(steps, n, single) / sqrt(order == 1 ? 2.0 : 6.0);
    found = order == 1 ? g : pmin(found, g);
  }
  return found;
}

/* The paper's noise: the smaller of its spread and its grain (given if known already, else NAN). */
static double sigma(Arena *arena, const Plane *p, double known_grain) {
  double s = spread(arena, p, 0);
  return pmin(s, isnan(known_grain) ? grain(arena, p->v, p->w, p->h, 1, p->single) : known_grain);
}

/* ---- the paper ---- */

/* Pixel coordinates scaled to [-1, 1] (np.linspace(-1, 1, n, dtype=float32)). */
static void axis(float *out, int n) {
  double step = n > 1 ? 2.0 / (n - 1) : 0;
  for (int i = 0; i < n; i++) out[i] = (float)(i == n - 1 && n > 1 ? 1.0 : -1.0 + i * step);
}

/* How far each of the grid's samples [n, c] is from the paper coef [6][c] over the terms [n, 6]: the rms over the
   channels (d [n]). A flat paper (flat: only the constant term) is its constant: the same sum without the terms'
   +-0 products. */
static void off_paper(const double *terms, const double *sample, int n, int c, const double *coef, int flat,
                      double *d) {
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int ch = 0; ch < c; ch++) {
      double fit = flat ? coef[ch] : 0;
      for (int t = 0; t < 6 && !flat; t++) fit += terms[i * 6 + t] * coef[t * c + ch];
      double diff = sample[i * c + ch] - fit;
      s = ch ? s + diff * diff : diff * diff;
    }
    d[i] = sqrt(s / c);
  }
}

/* The share of the distances d [n] within tol. */
static double share(const double *d, int n, double tol) {
  int near = 0;
  for (int i = 0; i < n; i++) near += d[i] <= tol;
  return (double)near / n;
}

/* The normal equations' solution, Gaussian elimination with partial pivoting ([6][6 + c], in place); a term the
   samples cannot tell apart from the others gets 0. */
static void solve(double a[6][9], int c, double *coef) {
  for (int col = 0; col < 6; col++) {
    int pivot = col;
    for (int r = col + 1; r < 6; r++)
      if (fabs(a[r][col]) > fabs(a[pivot][col])) pivot = r;
    for (int j = 0; j < 6 + c; j++) {
      double t = a[col][j];
      a[col][j] = a[pivot][j], a[pivot][j] = t;
    }
    if (fabs(a[col][col]) < 1e-300) continue;
    for (int r = 0; r < 6; r++) {
      if (r == col) continue;
      double f = a[r][col] / a[col][col];
      for (int j = col; j < 6 + c; j++) a[r][j] -= f * a[col][j];
    }
  }
  for (int t = 0; t < 6; t++)
    for (int ch = 0; ch < c; ch++) coef[t * c + ch] = fabs(a[t][t]) < 1e-300 ? 0 : a[t][6 + ch] / a[t][t];
}

/* The normal equations [A^T A | A^T b] of the samples near the paper, for c channels (a constant, so that the
   loops unroll): the upper half of A^T A, which is symmetric, then the lower half copied. */
static inline void normal_equations(const double *terms, const double *sample, const unsigned char *near, int n,
                                    double a[6][9], const int c) {
  double ata[21] = {0}, atb[6 * 3] = {0};
  for (int i = 0; i < n; i++) {
    if (!near[i]) continue;
    const double *t = terms + i * 6, *b = sample + i * c;
    for (int r = 0, k = 0; r < 6; r++) {
      for (int q = r; q < 6; q++, k++) ata[k] += t[r] * t[q];
      for (int ch = 0; ch < c; ch++) atb[r * c + ch] += t[r] * b[ch];
    }
  }
  for (int r = 0, k = 0; r < 6; r++) {
    for (int q = r; q < 6; q++, k++) a[r][q] = a[q][r] = ata[k];
    for (int ch = 0; ch < c; ch++) a[r][6 + ch] = atb[r * c + ch];
  }
}

static void normal1(const double *terms, const double *sample, const unsigned char *near, int n, double a[6][9]) {
  normal_equations(terms, sample, near, n, a, 1);
}

static void normal3(const double *terms, const double *sample, const unsigned char *near, int n, double a[6][9]) {
  normal_equations(terms, sample, near, n, a, 3);
}

/* runtime/ink.py's _minus_paper, its paper part: flat (the border's median) or a quadratic surface per channel
   fitted to the samples near it. Sets coef [6][c] (float32 values), whether it is a surface, the share explained. */
static int fit_paper(Arena *arena, const float *px, int w, int h, int c, const float *ax, const float *ay,
                     double *coef, int *uneven, double *explained) {
  int longest = w > h ? w : h, step = longest / (int)K[K_GRID];
  step = step < 1 ? 1 : step;
  int rows = (h + step - 1) / step, cols = (w + step - 1) / step, n = rows * cols, border_n = 2 * cols + 2 * rows;
  double *terms = NEW(arena, double, (size_t)n * 6), *sample = NEW(arena, double, (size_t)n * c);
  double *border = NEW(arena, double, border_n), *d = NEW(arena, double, n), *work = NEW(arena, double, n);
  unsigned char *near = NEW(arena, unsigned char, n), *before = NEW(arena, unsigned char, n);
  if (arena->failed) return 0;
  for (int gy = 0, i = 0; gy < rows; gy++) {
    for (int gx = 0; gx < cols; gx++, i++) {
      float tx = ax[gx * step], ty = ay[gy * step];
      double *t = terms + i * 6;
      t[0] = 1, t[1] = tx, t[2] = ty, t[3] = (float)(tx * tx), t[4] = (float)(tx * ty), t[5] = (float)(ty * ty);
      for (int ch = 0; ch < c; ch++) sample[i * c + ch] = px[((size_t)gy * step * w + (size_t)gx * step) * c + ch];
    }
  }
  double flat[6 * 3] = {0};
  for (int ch = 0; ch < c; ch++) { /* grid[0], grid[-1], grid[:, 0], grid[:, -1], as np.concatenate has them */
    int k = 0;
    for (int gx = 0; gx < cols; gx++) border[k++] = sample[gx * c + ch];
    for (int gx = 0; gx < cols; gx++) border[k++] = sample[((rows - 1) * cols + gx) * c + ch];
    for (int gy = 0; gy < rows; gy++) border[k++] = sample[(gy * cols) * c + ch];
    for (int gy = 0; gy < rows; gy++) border[k++] = sample[(gy * cols + cols - 1) * c + ch];
    flat[ch] = median(border, k, 1);
  }
  double tol = pmax(K[K_TOLERANCE_SIGMAS] * grain(arena, sample, cols, rows, c, 1), K[K_TOLERANCE_MIN]);
  off_paper(terms, sample, n, c, flat, 1, d);
  double paper = share(d, n, tol), fit[6 * 3];
  memcpy(fit, flat, sizeof flat);
  *explained = paper;
  *uneven = 0;
  if (paper < K[K_FLAT_SHARE] && (w < h ? w : h) >= K[K_SURFACE_MIN_SIDE]) {
    int current = 1; /* whether d holds the distances to fit as it is (the flat paper's, to begin with) */
    for (int round = 0; round < (int)K[K_FIT_ROUNDS]; round++) {
      if (!current) off_paper(terms, sample, n, c, fit, 0, d);
      current = 1;
      memcpy(work, d, sizeof(double) * n);
      double cut = tolerance(work, n, 0);
      int close = 0, same = round > 0;
      for (int i = 0; i < n; i++) {
        unsigned char is = d[i] <= cut;
        same &= is == near[i];
        before[i] = near[i], near[i] = is, close += is;
      }
      if (close < 24 || same) break; /* too few samples near the paper, or the same ones as last time */
      double a[6][9];
      (c == 3 ? normal3 : normal1)(terms, sample, near, n, a);
      solve(a, c, fit);
      current = 0;
    }
    if (!current) off_paper(terms, sample, n, c, fit, 0, d); /* the rounds ran out after a refit */
    *explained = pmax(paper, share(d, n, tol));
    *uneven = !(*explained < paper + K[K_SURFACE_GAIN]);
  }
  for (int i = 0; i < 6 * c; i++) coef[i] = (float)(*uneven ? fit[i] : flat[i]);
  return 1;
}

/* ---- ink from paper ---- */

/* runtime/ink.py's _unshade: on uneven paper still not flat, the white top-hat; the paper's noise. In place. */
static double unshade(Arena *arena, Plane *along, double stroke, int uneven) {
  int w = along->w, h = along->h, n = w * h;
  double side = w < h ? w : h;
  int wide = uneven && stroke > side / K[K_WIDE_STROKE];
  stroke = pmin(stroke, side / K[K_WIDE_STROKE]);
  int k = 2 * (int)rint(pmax(K[K_TOPHAT_STROKES] * stroke, side / K[K_TOPHAT_FRACTION])) + 1;
  double g = NAN;
  if (uneven && k < (w < h ? w : h) / 4) {
    g = grain(arena, along->v, w, h, 1, along->single);
    if (wide || spread(arena, along, 1) > 2 * g + K[K_NOISY]) {
      double *opened = NEW(arena, double, n), *work = NEW(arena, double, n);
      if (arena->failed) return NAN;
      memcpy(opened, along->v, sizeof(double) * n);
      rank(arena, opened, w, h, k, 0);
      rank(arena, opened, w, h, k, 1);
      for (int i = 0; i < n; i++) work[i] = along->v[i] = rf(along->v[i] - opened[i], along->single);
      double middle = median(work, n, along->single);
      for (int i = 0; i < n; i++) along->v[i] = rf(along->v[i] - middle, along->single);
      g = NAN;
    }
  }
  double noise = sigma(arena, along, g);
  for (int i = 0; i < n; i++) along->v[i] = along->v[i] > 0 ? along->v[i] : 0;
  return noise;
}

/* runtime/ink.py's _minus_paper: how far each pixel is from the paper towards the ink's colour (distance, a plane of
   w x h it fills), and the paper's noise. */
static int minus_paper(Arena *arena, const float *px, int w, int h, int c, Plane *distance, double *noise) {
  int n = w * h;
  float *ax = NEW(arena, float, w), *ay = NEW(arena, float, h), *residual = NEW(arena, float, (size_t)n * c);
  unsigned char *ink = NEW(arena, unsigned char, n), *upper = NEW(arena, unsigned char, n);
  double *work = NEW(arena, double, n), coef[6 * 3];
  if (arena->failed) return 0;
  axis(ax, w), axis(ay, h);
  int uneven;
  double explained;
  if (!fit_paper(arena, px, w, h, c, ax, ay, coef, &uneven, &explained)) return 0;
  distance->w = w, distance->h = h, distance->single = 1;
  double *restrict far = distance->v; /* a local: stores through the plane's pointer would make it reload it */
  if (!uneven && c == 1) { /* a flat paper: the same sums without the surface's terms, in loops that vectorise */
    float k0 = (float)coef[0];
    for (int i = 0; i < n; i++) {
      float r = residual[i] = px[i] - k0;
      far[i] = sqrtf(r * r);
    }
  } else if (!uneven && c == 3) {
    float k0 = (float)coef[0], k1 = (float)coef[1], k2 = (float)coef[2];
    for (int i = 0; i < n; i++) {
      float r0 = residual[3 * i] = px[3 * i] - k0, r1 = residual[3 * i + 1] = px[3 * i + 1] - k1;
      float r2 = residual[3 * i + 2] = px[3 * i + 2] - k2;
      far[i] = sqrtf((r0 * r0 + r1 * r1 + r2 * r2) / 3);
    }
  }
  for (int y = 0; y < h && uneven; y++) {
    for (int x = 0; x < w; x++) {
      int i = y * w + x;
      float squares = 0;
      for (int ch = 0; ch < c; ch++) {
        float k0 = (float)coef[ch], fit = k0;
        if (uneven) {
          float tx = ax[x], ty = ay[y], k1 = (float)coef[c + ch], k2 = (float)coef[2 * c + ch];
          float k3 = (float)coef[3 * c + ch], k4 = (float)coef[4 * c + ch], k5 = (float)coef[5 * c + ch];
          fit = (float)(k0 + (float)(k1 * tx));
          fit = (float)(fit + (float)(k2 * ty));
          fit = (float)(fit + (float)((float)(k3 * tx) * tx));
          fit = (float)(fit + (float)((float)(k4 * tx) * ty));
          fit = (float)(fit + (float)((float)(k5 * ty) * ty));
        }
        float r = residual[(size_t)i * c + ch] = px[(size_t)i * c + ch] - fit;
        squares = ch ? squares + r * r : r * r;
      }
      far[i] = sqrtf(c == 1 ? squares : squares / c); /* x / 1 is x */
    }
  }
  double cut = pmax(otsu(distance->v, n, 1), K[K_NOISE_SIGMAS] * spread(arena, distance, 0));
  above(distance, cut, ink);
  if (!digit_blobs(arena, ink, w, h)) return 0;
  double side = w < h ? w : h;
  Plane along = {work, w, h, 0};
  if (count(ink, n) < 3) {
    if (explained < K[K_EXPLAINED_MIN]) { /* _either_way: the darker side's top-hat, or the lighter one's */
      double *light = NEW(arena, double, n), *a = NEW(arena, double, n), *b = NEW(arena, double, n);
      if (arena->failed) return 0;
      for (int i = 0; i < n; i++) {
        float s = 0;
        for (int ch = 0; ch < c; ch++) s = ch ? s + residual[(size_t)i * c + ch] : residual[(size_t)i * c];
        work[i] = -(double)(s / c), light[i] = (double)(s / c);
      }
      Plane bright = {light, w, h, 0};
      double dark_noise = unshade(arena, &along, side / K[K_WIDE_STROKE], 1);
      double light_noise = unshade(arena, &bright, side / K[K_WIDE_STROKE], 1);
      memcpy(a, work, sizeof(double) * n), memcpy(b, light, sizeof(double) * n);
      int lighter = percentile(b, n, 99.5, 0) > K[K_LIGHT_INK] * percentile(a, n, 99.5, 0);
      memcpy(distance->v, lighter ? light : work, sizeof(double) * n);
      distance->single = 0, *noise = lighter ? light_noise : dark_noise;
      return !arena->failed;
    }
    *noise = sigma(arena, distance, NAN);
    return !arena->failed;
  }
  double stroke = stroke_width(ink, w, h);
  unsigned char *coloured = ink;
  if (!uneven && stroke > side / K[K_WIDE_STROKE]) {
    int m = 0;
    for (int i = 0; i < n; i++)
      if (ink[i]) work[m++] = distance->v[i];
    double level = rf(otsu(work, m, 1), 1);
    for (int i = 0; i < n; i++) upper[i] = ink[i] && distance->v[i] > level;
    int shadow = count(upper, n) < K[K_SHADOW_SHARE] * count(ink, n) || stroke_width(upper, w, h) < stroke / 2;
    if (shadow) uneven = 1, coloured = upper;
  }
  float mean[3] = {0}, unit[3];
  int m = count(coloured, n);
  for (int i = 0; i < n; i++)
    if (coloured[i])
      for (int ch = 0; ch < c; ch++) mean[ch] += residual[(size_t)i * c + ch];
  float dot = 0;
  for (int ch = 0; ch < c; ch++) mean[ch] = mean[ch] / m, dot += mean[ch] * mean[ch];
  float norm = (float)pmax(sqrtf(dot), 1e-6);
  for (int ch = 0; ch < c; ch++) unit[ch] = mean[ch] / norm;
  double root = sqrt((double)c);
  if (c == 1) { /* x / 1 is x: no division per pixel of a grey image */
    for (int i = 0; i < n; i++) work[i] = (float)(0.0f + residual[i] * unit[0]);
  } else {
    for (int i = 0; i < n; i++) {
      float s = 0;
      for (int ch = 0; ch < c; ch++) s += residual[(size_t)i * c + ch] * unit[ch];
      work[i] = s / root;
    }
  }
  *noise = unshade(arena, &along, stroke, uneven);
  memcpy(distance->v, work, sizeof(double) * n);
  distance->single = 0;
  return !arena->failed;
}

/* runtime/ink.py's _ink: distance from paper -> ink in [0, 1], 0 away from the digit (out, w x h floats). */
static int ink_from(Arena *arena, Plane *distance, double noise, float *out, int *status) {
  int w = distance->w, h = distance->h, n = w * h;
  double *work = NEW(arena, double, n);
  unsigned char *grown = NEW(arena, unsigned char, n), *grey = NEW(arena, unsigned char, n), *smooth = NEW(arena, unsigned char, n), *digit = grey;
  if (arena->failed) return 0;
  double floor_ = pmax(K[K_NOISE_SIGMAS] * noise, 0.5 / 255);
  if (noise > K[K_NOISY]) { /* visibly noisy: a 3x3 median of the 8-bit distance */
    double top = greatest(distance->v, n, 0), scale = rf(255 / top, distance->single);
    for (int i = 0; i < n; i++) grey[i] = (unsigned char)rint(rf(distance->v[i] * scale, distance->single));
    median3(grey, smooth, w, h);
    float back = (float)(top / 255);
    for (int i = 0; i < n; i++) distance->v[i] = (float)((float)smooth[i] * back);
    distance->single = 1;
  }
  unsigned char *mask = smooth;
  above(distance, pmax(otsu(distance->v, n, distance->single), floor_), mask);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (mask[i]) work[m++] = distance->v[i];
  double full = m ? percentile(work, m, 75, distance->single) : 0.0;
  if (full < pmax(K[K_MIN_CONTRAST], 1.5 * floor_)) {
    *status = greatest(distance->v, n, 0) < K[K_MIN_CONTRAST] ? INK_BLANK : INK_NOISE;
    return 1;
  }
  floor_ = pmin(floor_, full / 2);
  above(distance, floor_ + K[K_INK_CUT] * (full - floor_), digit);
  if (!digit_blobs(arena, digit, w, h)) return 0;
  m = 0;
  for (int i = 0; i < n; i++)
    if (digit[i]) work[m++] = distance->v[i];
  if (m < pmax(3, 2e-4 * n)) {
    *status = INK_SPECKS;
    return 1;
  }
  double level = pmax(percentile(work, m, 75, distance->single), 2 * floor_);
  if (!grow(arena, digit, w, h, (int)K[K_MASK_GROW], grown)) return 0;
  const double *v = distance->v;
  for (int i = 0; i < n; i++) {
    double x = 0; /* away from the grown mask: no division */
    if (grown[i] && distance->single) {
      x = (float)((float)(v[i] - (float)floor_) / (float)(level - floor_));
    } else if (grown[i]) {
      x = (v[i] - floor_) / (level - floor_);
    }
    out[i] = (float)(x < 0 ? 0 : (x > 1 ? 1 : x));
  }
  *status = INK_OK;
  return 1;
}

/* runtime/ink.py's _onto_paper: transparent pixels onto the opaque part's median colour if it is the majority, else
   onto the colour its ink is not. Returns the composited pixels, or px itself when alpha is NULL. */
static const float *onto_paper(Arena *arena, const float *px, int n, int c, const float *alpha, int *status) {
  if (!alpha) return px;
  double *values = NEW(arena, double, n);
  float *out = NEW(arena, float, (size_t)n * c), paper[3];
  if (arena->failed) return NULL;
  int opaque = 0;
  for (int i = 0; i < n; i++) opaque += alpha[i] > 0.5f;
  if (!opaque) {
    *status = INK_TRANSPARENT;
    return NULL;
  }
  float mean = 0;
  for (int ch = 0; ch < c; ch++) {
    int m = 0;
    for (int i = 0; i < n; i++)
      if (alpha[i] > 0.5f) values[m++] = px[(size_t)i * c + ch];
    paper[ch] = (float)median(values, m, 1);
    mean = ch ? mean + paper[ch] : paper[ch];
  }
  mean /= c;
  for (int ch = 0; ch < c && 2 * opaque < n; ch++) paper[ch] = mean < 0.5f ? 1.0f : 0.0f; /* not the majority */
  for (int i = 0; i < n; i++)
    for (int ch = 0; ch < c; ch++)
      out[(size_t)i * c + ch] = px[(size_t)i * c + ch] * alpha[i] + paper[ch] * (1 - alpha[i]);
  return out;
}

/* Step 1's reduction (runtime/decode.py's Source.region) of an opaque 8-bit image, read where Pillow keeps it: rows of
   width pixels of bytes bytes (1 for L; 4 for RGB, which Pillow stores as RGBX). Its box left..right x top..bottom,
   reduced by factor as Pillow's Image.reduce does (each block's mean in its fixed point, ((sum + n / 2) * (2^24 / n))
   >> 24, the last blocks partial) -> float pixels v / 255 [h][w][c] (out, room for 3 channels). c is 3 for RGB, or
   1 when every pixel's channels are within 2/255 of its first (grey stored as RGB). Returns c, or 0 if out of memory
   or factor is over REDUCE_MAX.
   The rows of a block are summed first, column by column, in 16 bits, in loops over whole rows that vectorise. */
#define REDUCE_MAX 16 /* the largest factor: a block's sums fit in 16 bits, 16 x 16 x 255 < 2^16 */
const int ink_reduce_max = REDUCE_MAX;

int ink_reduce(const unsigned char *px, int width, int bytes, int left, int top, int right, int bottom, int factor,
               float *out) {
  Arena arena = {NULL, 0};
  int w = right - left, h = bottom - top, ow = (w + factor - 1) / factor, oh = (h + factor - 1) / factor;
  int c = bytes == 1 ? 1 : 3, span = w * bytes, grey = c == 3;
  uint16_t *restrict sums = NEW(&arena, uint16_t, span);
  if (factor > REDUCE_MAX || arena.failed) return release(&arena), 0;
  float value[256]; /* v / 255 as numpy divides a float32 by 255 */
  for (int v = 0; v < 256; v++) value[v] = (float)v / 255.0f;
  const float near = (float)(2.0 / 255); /* numpy compares its float32 maximum with 2 / 255 in float32 */
  for (int oy = 0; oy < oh; oy++) {
    int y0 = top + oy * factor, rows = y0 + factor < bottom ? factor : bottom - y0;
    const unsigned char *restrict row = px + ((size_t)y0 * width + left) * bytes;
    for (int i = 0; i < span; i++) sums[i] = row[i];
    for (int y = 1; y < rows; y++) {
      row += (size_t)width * bytes;
      for (int i = 0; i < span; i++) sums[i] += row[i];
    }
    float *restrict line = out + (size_t)oy * ow * c;
    uint32_t n = (uint32_t)(rows * factor), amend = n / 2, multiplier = (1u << 24) / n; /* a whole block's */
    for (int ox = 0; ox < ow; ox++) {
      int x0 = ox * factor, cols = x0 + factor < w ? factor : w - x0;
      if (cols < factor) n = (uint32_t)(rows * cols), amend = n / 2, multiplier = (1u << 24) / n; /* the last one */
      const uint16_t *block = sums + (size_t)x0 * bytes;
      if (c == 1) {
        uint32_t s = 0;
        for (int x = 0; x < cols; x++) s += block[x];
        line[ox] = value[((s + amend) * multiplier) >> 24];
        continue;
      }
      uint64_t all = 0, lane; /* a pixel's four 16-bit sums added as one word: no sum passes 16 bits to carry */
      for (int x = 0; x < cols; x++) memcpy(&lane, block + 4 * x, 8), all += lane;
      uint16_t four[4];
      memcpy(four, &all, 8);
      uint32_t s0 = four[0], s1 = four[1], s2 = four[2];
      float *v = line + 3 * ox;
      v[0] = value[((s0 + amend) * multiplier) >> 24], v[1] = value[((s1 + amend) * multiplier) >> 24];
      v[2] = value[((s2 + amend) * multiplier) >> 24];
      grey &= (fabsf(v[1] - v[0]) < near) & (fabsf(v[2] - v[0]) < near);
    }
  }
  if (grey)
    for (size_t i = 0, n = (size_t)ow * oh; i < n; i++) out[i] = out[3 * i];
  release(&arena);
  return grey ? 1 : c;
}

/* The ink's bounding box (left, top, right, bottom, exclusive); 0 if there is no ink. A row with ink is looked at
   from its ends inwards, only as far as its first and last ink or the box found so far. */
static int ink_box(const float *ink, int w, int h, int *box) {
  int left = w, top = h, right = -1, bottom = -1;
  for (int y = 0; y < h; y++) {
    const float *row = ink + (size_t)y * w;
    int any = 0, x = 0;
    for (int i = 0; i < w; i++) any |= row[i] != 0; /* no early exit: the test of a whole row vectorises */
    if (!any) continue;
    while (x < left && row[x] == 0) x++;
    left = x < left ? x : left;
    x = w - 1;
    while (x > right && row[x] == 0) x--;
    right = x > right ? x : right;
    top = y < top ? y : top, bottom = y;
  }
  box[0] = left, box[1] = top, box[2] = right + 1, box[3] = bottom + 1;
  return right >= 0;
}

static double ink_stroke(Arena *arena, const float *ink, int w, int h) {
  unsigned char *mask = NEW(arena, unsigned char, w * h);
  if (arena->failed) return NAN;
  for (int i = 0; i < w * h; i++) mask[i] = ink[i] > (float)K[K_INK_CUT];
  return stroke_width(mask, w, h);
}

/* Steps 2-4 of runtime/preprocess.py: a region's float pixels [h][w][c] (c = 1 or 3) and alpha [h][w] (or NULL) ->
   the digit's ink (ink [h][w]), its bounding box and its stroke width over INK_CUT. Returns INK_OK or a reason. */
int ink_find(const float *px, int w, int h, int c, const float *alpha, float *ink, int *box, double *stroke) {
  Arena arena = {NULL, 0};
  int status = INK_MEMORY, n = w * h;
  Plane distance = {NEW(&arena, double, n), w, h, 1};
  double noise;
  const float *pixels = arena.failed ? NULL : onto_paper(&arena, px, n, c, alpha, &status);
  if (pixels && minus_paper(&arena, pixels, w, h, c, &distance, &noise) &&
      ink_from(&arena, &distance, noise, ink, &status) && status == INK_OK) {
    ink_box(ink, w, h, box);
    *stroke = ink_stroke(&arena, ink, w, h);
  }
  if (arena.failed) status = INK_MEMORY;
  release(&arena);
  return status;
}

/* Step 5 of runtime/preprocess.py: crop to the ink (ink [h][w]), thicken a pen much thinner than MNIST's, scale the
   longer side to BOX px (Lanczos), place the centre of mass at the centre of SIZE x SIZE (out). INK_OK or a reason. */
int ink_centre(const float *ink, int w, int h, float *out) {
  Arena arena = {NULL, 0};
  int box[4], size = (int)K[K_SIZE];
  memset(out, 0, sizeof(float) * size * size);
  if (!ink_box(ink, w, h, box)) return INK_SPECKS;
  int cw = box[2] - box[0], ch = box[3] - box[1], length = cw > ch ? cw : ch;
  float *crop = NEW(&arena, float, cw * ch);
  if (arena.failed) return INK_MEMORY;
  for (int y = 0; y < ch; y++) memcpy(crop + y * cw, ink + (size_t)(box[1] + y) * w + box[0], sizeof(float) * cw);
  double width = ink_stroke(&arena, crop, cw, ch);
  if (width * K[K_BOX] / length < K[K_THIN]) { /* grow by k - 1 px: (width + k - 1) / (length + k - 1) = STROKE/BOX */
    int k = 1 + 2 * (int)rint((K[K_STROKE] * length / K[K_BOX] - width) / (1 - K[K_STROKE] / K[K_BOX]) / 2);
    if (k > 1) {
      int m = k / 2, pw = cw + 2 * m, ph = ch + 2 * m;
      double *padded = NEW(&arena, double, pw * ph);
      float *thick = NEW(&arena, float, pw * ph);
      if (arena.failed) return release(&arena), INK_MEMORY;
      memset(padded, 0, sizeof(double) * pw * ph);
      for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) padded[(y + m) * pw + x + m] = crop[y * cw + x];
      if (!rank(&arena, padded, pw, ph, k, 1)) return release(&arena), INK_MEMORY;
      for (int i = 0; i < pw * ph; i++) thick[i] = (float)padded[i];
      crop = thick, cw = pw, ch = ph;
    }
  }
  double scale = K[K_BOX] / (cw > ch ? cw : ch);
  int sw = (int)rint(cw * scale), sh = (int)rint(ch * scale);
  sw = sw < 1 ? 1 : sw, sh = sh < 1 ? 1 : sh;
  float *digit = crop;
  if (sw != cw || sh != ch) { /* Pillow: the horizontal pass first, each only if that side changes */
    float *wide = crop;
    if (sw != cw) {
      wide = NEW(&arena, float, sw * ch);
      if (arena.failed || !resample(&arena, crop, cw, ch, wide, sw, 1)) return release(&arena), INK_MEMORY;
    }
    digit = wide;
    if (sh != ch) {
      digit = NEW(&arena, float, sw * sh);
      if (arena.failed || !resample(&arena, wide, sw, ch, digit, sh, 0)) return release(&arena), INK_MEMORY;
    }
  }
  double mass = 0, my = 0, mx = 0;
  for (int y = 0; y < sh; y++)
    for (int x = 0; x < sw; x++) {
      float v = digit[y * sw + x];
      v = v < 0 ? 0 : (v > 1 ? 1 : v);
      digit[y * sw + x] = v, mass += v, my += (double)y * v, mx += (double)x * v;
    }
  int top = (int)rint(size / 2.0 - my / mass), left = (int)rint(size / 2.0 - mx / mass);
  for (int y = top > 0 ? top : 0; y < top + sh && y < size; y++)
    for (int x = left > 0 ? left : 0; x < left + sw && x < size; x++) out[y * size + x] = digit[(y - top) * sw + x - left];
  release(&arena);
  return INK_OK;
}
