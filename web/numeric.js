// The numpy operations runtime/ink.py leans on, with numpy's exact definitions (for parity with the runtime).
//
//     import { median, percentile, otsu, rank } from "./numeric.js";
//     otsu(values);                          // Otsu's threshold over 256 bins, as runtime/ink.py's _otsu
//     rank(plane, w, h, 5, "max");           // runtime/ink.py's _rank: a k x k max/min, edges replicated
//
// Planes are row-major typed arrays of one channel; medians and percentiles sort a copy.

export { rint } from "./model-spec.js";

// The k-th smallest of a (0-based), rearranging a: Hoare's selection (linear on average; a full sort of
// the hundreds of thousands of values of a median costs several times more).
function select(a, k) {
  let [lo, hi] = [0, a.length - 1];
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < a[lo]) [a[mid], a[lo]] = [a[lo], a[mid]];
    if (a[hi] < a[lo]) [a[hi], a[lo]] = [a[lo], a[hi]];
    if (a[hi] < a[mid]) [a[hi], a[mid]] = [a[mid], a[hi]];
    const pivot = a[mid];
    let [i, j] = [lo, hi];
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        [a[i], a[j]] = [a[j], a[i]];
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

// The k-th and (k+1)-th smallest values (the second may be the first when k is the last index).
function pair(values, k) {
  const a = Float64Array.from(values);
  const first = select(a, k);
  if (k + 1 >= a.length) return [first, first];
  let next = Infinity;
  for (let i = k + 1; i < a.length; i++) next = Math.min(next, a[i]);
  return [first, next];
}

// Type.from(source, fn) without the iterator protocol, which is slow for big typed arrays.
export function mapTo(Type, source, fn) {
  const out = new Type(source.length);
  for (let i = 0; i < source.length; i++) out[i] = fn(source[i], i);
  return out;
}

// np.median (the mean of the two middle values for an even count; `f32` for a float32 array's result).
export function median(values, f32 = false) {
  const n = values.length;
  if (n === 0) return NaN;
  if (n % 2) return pair(values, (n - 1) / 2)[0];
  const [a, b] = pair(values, n / 2 - 1);
  return f32 ? Math.fround(a + b) / 2 : (a + b) / 2;
}

// np.percentile(values, q) with its default "linear" method and numpy's two-sided lerp.
export function percentile(values, q) {
  const index = (q / 100) * (values.length - 1);
  const below = Math.floor(index);
  const [low, high] = pair(values, below);
  const t = index - below;
  const diff = high - low;
  return t >= 0.5 ? high - diff * (1 - t) : low + diff * t;
}

// The threshold that best splits the values' 256-bin histogram over [0, max] into two classes (Otsu 1979),
// as runtime/ink.py's _otsu: bin floor(v * 256 / max) (float32 arithmetic for a Float32Array), the last bin
// closed; the threshold is the centre of the best bin.
export function otsu(values) {
  let top = 1e-6;
  for (let i = 0; i < values.length; i++) top = Math.max(top, values[i]);
  const bins = 256;
  const f32 = values instanceof Float32Array;
  const scale = f32 ? Math.fround(bins / top) : bins / top;
  const hist = new Float64Array(bins);
  for (let n = 0; n < values.length; n++) {
    const v = f32 ? Math.fround(values[n] * scale) : values[n] * scale;
    hist[Math.min(Math.trunc(v), bins - 1)] += 1;
  }
  const centre = (i) => (i + 0.5) * (top / bins);
  let w0 = 0;
  let m0 = 0;
  const w = new Float64Array(bins);
  const m = new Float64Array(bins);
  for (let i = 0; i < bins; i++) {
    const p = hist[i] / values.length;
    w[i] = w0 += p;
    m[i] = m0 += p * centre(i);
  }
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < bins; i++) {
    let between = (m0 * w[i] - m[i]) ** 2 / (w[i] * (1 - w[i]));
    if (Number.isNaN(between))
      between = 0; // np.nan_to_num: nan -> 0, inf -> the largest double
    else if (between === Infinity) between = Number.MAX_VALUE;
    if (between > bestValue) [best, bestValue] = [i, between];
  }
  return centre(best);
}

// One line of a max or min filter of width k over `line` (already padded by k >> 1 at each end), in
// O(1) per value: van Herk and Gil-Werman's running extremes within and across blocks of k.
function extremes(line, k, out, take) {
  const n = out.length;
  const ahead = new Float64Array(line.length);
  const behind = new Float64Array(line.length);
  for (let i = 0; i < line.length; i++) ahead[i] = i % k === 0 ? line[i] : take(ahead[i - 1], line[i]);
  for (let i = line.length - 1; i >= 0; i--) {
    behind[i] = i % k === k - 1 || i === line.length - 1 ? line[i] : take(behind[i + 1], line[i]);
  }
  for (let i = 0; i < n; i++) out[i] = take(behind[i], ahead[i + k - 1]);
}

// runtime/ink.py's _rank: "max" or "min" over a k x k square around each pixel (k odd), edges
// replicated; the columns' windows first, then the rows'. Returns a plane of the input's type.
export function rank(plane, width, height, k, reduce = "max") {
  const r = k >> 1;
  const line = (n) => [new Float64Array(n + 2 * r), new Float64Array(n)];
  const apply = (values, result) => extremes(values, k, result, reduce === "max" ? Math.max : Math.min);
  const vertical = new Float64Array(width * height);
  const [column, columnOut] = line(height);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height + 2 * r; y++) column[y] = plane[Math.min(height - 1, Math.max(0, y - r)) * width + x];
    apply(column, columnOut);
    for (let y = 0; y < height; y++) vertical[y * width + x] = columnOut[y];
  }
  const out = new plane.constructor(width * height);
  const [row, rowOut] = line(width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width + 2 * r; x++) row[x] = vertical[y * width + Math.min(width - 1, Math.max(0, x - r))];
    apply(row, rowOut);
    out.set(rowOut, y * width);
  }
  return out;
}

// runtime/ink.py's _stroke_width: the mean stroke width of a 0/1 mask, 2 x area / perimeter, px.
export function strokeWidth(mask, width, height) {
  let area = 0;
  let perimeter = 0;
  for (let y = 0; y <= height; y++) {
    for (let x = 0; x <= width; x++) {
      const here = y < height && x < width ? mask[y * width + x] : 0;
      const up = y > 0 && x < width ? mask[(y - 1) * width + x] : 0;
      const left = x > 0 && y < height ? mask[y * width + x - 1] : 0;
      area += here ? 1 : 0;
      perimeter += (here ? 1 : 0) !== (up ? 1 : 0) ? 1 : 0;
      perimeter += (here ? 1 : 0) !== (left ? 1 : 0) ? 1 : 0;
    }
  }
  return (2 * area) / Math.max(perimeter, 1);
}
