// The preprocessing's constants: runtime/preprocess.json, the one file runtime/*.py reads too.
//
//     import { K } from "./constants.js";
//     K.WORK_SIZE;  // 120 (px); preprocess.json says what each one means
//
// The site holds preprocess.json beside this module (pipeline/web.py copies it from runtime/).

import table from "./preprocess.json" with { type: "json" };

export const K = Object.freeze(
  Object.fromEntries(Object.entries(table).flatMap(([name, entry]) => (entry?.value === undefined ? [] : [[name, entry.value]]))),
);
