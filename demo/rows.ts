/**
 * Rows typed or pasted for prediction: one sample per line, the dense
 * features (as the model sees them) then the categorical ids, e.g.
 *   0.12 0.5 0.33 ... | 17 4 250 ...
 * A '|' separates the two parts; without it the first numDense numbers are
 * dense. Commas, tabs and spaces all separate values.
 */
import type { Batch } from "../src/data/batch.ts";

export function parseRows(text: string, numDense: number, tableRows: readonly number[]): { batch: Batch; lines: string[] } {
  const T = tableRows.length;
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (lines.length === 0) throw new Error(`type at least one row: ${numDense} dense values, '|', then ${T} category ids`);
  if (lines.length > 256) throw new Error(`at most 256 rows at a time (got ${lines.length})`);
  const B = lines.length;
  const dense = new Float32Array(B * numDense);
  const ids: number[][] = [];
  lines.forEach((line, b) => {
    const nums = (s: string) => s.split(/[\s,;]+/).filter(Boolean);
    const [a, c] = line.includes("|") ? line.split("|", 2).map(nums) as [string[], string[]] : [nums(line).slice(0, numDense), nums(line).slice(numDense)];
    const where = `row ${b + 1}`;
    if (a.length !== numDense) throw new Error(`${where}: ${a.length} dense values, the model takes ${numDense}`);
    if (c.length !== T) throw new Error(`${where}: ${c.length} category ids, the model has ${T} tables`);
    a.forEach((v, j) => {
      const x = Number(v);
      if (!Number.isFinite(x)) throw new Error(`${where}: dense value ${j + 1} '${v}' is not a number`);
      dense[b * numDense + j] = x;
    });
    ids.push(c.map((v, t) => {
      const x = Number(v);
      if (!Number.isInteger(x) || x < 0 || x >= tableRows[t]!) throw new Error(`${where}: id '${v}' for table ${t} must be an integer in [0, ${tableRows[t]! - 1}]`);
      return x;
    }));
  });
  const offsets = new Uint32Array(T * B + 1);
  const indices = new Uint32Array(T * B);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      offsets[t * B + b] = t * B + b;
      indices[t * B + b] = ids[b]![t]!;
    }
  }
  offsets[T * B] = T * B;
  return { batch: { size: B, numDense, numTables: T, dense, offsets, indices, labels: new Float32Array(B) }, lines };
}
