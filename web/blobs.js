// The blobs of a mask that make the digit: runtime/ink.py's _digit and _blobs in JavaScript.
//
//     import { blobMask } from "./blobs.js";
//     const digit = blobMask(mask, width, height);   // Uint8Array 0/1 plane -> the digit's blobs only
//
// Blobs are 8-connected, found by union-find over the mask's row runs. When some blobs do not touch the
// border, those that do along more than BORDER_CONTACT of its side, or from one side to the other, are dropped
// (a table, the paper's edge, a shadow); then specks go: blobs under SPECK x the largest one's area,
// outside the box of the bigger ones.

import { K } from "./constants.js";

const maxOf = (values) => values.reduce((m, v) => Math.max(m, v), -Infinity);

// Each run of the mask: its row, start, end (exclusive) and blob (the index of one of its runs).
function blobs(mask, width, height) {
  const rows = [];
  const starts = [];
  const ends = [];
  const first = [0];
  for (let y = 0; y < height; y++) {
    let x = 0;
    while (x < width) {
      if (!mask[y * width + x]) {
        x++;
        continue;
      }
      const start = x;
      while (x < width && mask[y * width + x]) x++;
      rows.push(y);
      starts.push(start);
      ends.push(x);
    }
    first.push(rows.length);
  }
  const parent = rows.map((_, i) => i);
  const find = (i) => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (let r = 1; r < height; r++) {
    let [i, j] = [first[r - 1], first[r]]; // runs of the row above, of this row
    while (i < first[r] && j < first[r + 1]) {
      if (starts[j] <= ends[i] && starts[i] <= ends[j]) parent[find(j)] = find(i); // overlapping or diagonal
      if (ends[i] < ends[j]) i++;
      else j++;
    }
  }
  return { rows, starts, ends, roots: rows.map((_, i) => find(i)) };
}

export function blobMask(mask, width, height) {
  const { rows, starts, ends, roots } = blobs(mask, width, height);
  const n = rows.length;
  if (n === 0) return mask;
  const perBlob = (value) => {
    const sums = new Float64Array(n);
    for (let i = 0; i < n; i++) sums[roots[i]] += value(i);
    return sums;
  };
  const area = perBlob((i) => ends[i] - starts[i]);
  const touches = (edge) =>
    Array.from(
      perBlob((i) => (edge(i) ? 1 : 0)),
      (v) => v > 0,
    );
  const top = touches((i) => rows[i] === 0);
  const bottom = touches((i) => rows[i] === height - 1);
  const left = touches((i) => starts[i] === 0);
  const right = touches((i) => ends[i] === width);
  const contact = perBlob((i) =>
    rows[i] === 0 || rows[i] === height - 1 ? ends[i] - starts[i] : (starts[i] === 0) + (ends[i] === width),
  );
  const largest = maxOf(area);
  if (area.some((a, b) => a >= K.SPECK * largest && contact[b] === 0)) {
    for (let b = 0; b < n; b++) {
      if (contact[b] > K.BORDER_CONTACT * Math.min(height, width) || (top[b] && bottom[b]) || (left[b] && right[b])) area[b] = 0;
    }
  }
  const bigArea = K.SPECK * maxOf(area);
  const big = roots.map((b) => area[b] >= bigArea && area[b] > 0);
  const box = { top: Infinity, bottom: -Infinity, left: Infinity, right: -Infinity };
  for (let i = 0; i < n; i++) {
    if (!big[i]) continue;
    box.top = Math.min(box.top, rows[i]);
    box.bottom = Math.max(box.bottom, rows[i]);
    box.left = Math.min(box.left, starts[i]);
    box.right = Math.max(box.right, ends[i]);
  }
  const inBox = perBlob((i) =>
    rows[i] >= box.top && rows[i] <= box.bottom && ends[i] > box.left && starts[i] < box.right ? 1 : 0,
  );
  const out = new Uint8Array(width * height);
  for (let i = 0; i < n; i++) {
    if (inBox[roots[i]] > 0 && area[roots[i]] > 0) out.fill(1, rows[i] * width + starts[i], rows[i] * width + ends[i]);
  }
  return out;
}
