// A unified-style line diff (like `diff -u`) of two short texts, for `tsctl diff`. Specs are small,
// so the longest common subsequence is computed directly (quadratic, fine for hundreds of lines).

export interface DiffOptions {
  /** Unchanged lines shown around each change. */
  context?: number;
  oldLabel?: string;
  newLabel?: string;
}

type Edit = { op: ' ' | '-' | '+'; line: string; oldNo: number; newNo: number };

function edits(a: readonly string[], b: readonly string[]): Edit[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the common subsequence of a[i..] and b[j..]
  const lcs = Array.from({ length: n + 1 }, () => Array.from({ length: m + 1 }, () => 0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: Edit[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push({ op: ' ', line: a[i]!, oldNo: i++, newNo: j++ });
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // Removals before additions, as diff -u prints them.
      out.push({ op: '-', line: a[i]!, oldNo: i++, newNo: j });
    } else {
      out.push({ op: '+', line: b[j]!, oldNo: i, newNo: j++ });
    }
  }
  return out;
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  return (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
}

/** The diff as text ending in a newline, or "" when the texts are equal. */
export function unifiedDiff(oldText: string, newText: string, options: DiffOptions = {}): string {
  const context = options.context ?? 3;
  const all = edits(splitLines(oldText), splitLines(newText));
  if (all.every((e) => e.op === ' ')) return '';
  const lines = [`--- ${options.oldLabel ?? 'current'}`, `+++ ${options.newLabel ?? 'new'}`];
  let index = 0;
  while (index < all.length) {
    const firstChange = all.findIndex((e, k) => k >= index && e.op !== ' ');
    if (firstChange < 0) break;
    const start = Math.max(index, firstChange - context);
    // A hunk runs until `context * 2` unchanged lines in a row separate it from the next change.
    let end = firstChange;
    let quiet = 0;
    for (let k = firstChange; k < all.length; k++) {
      if (all[k]!.op === ' ') {
        quiet++;
        if (quiet > context * 2) break;
      } else {
        quiet = 0;
        end = k;
      }
    }
    const stop = Math.min(all.length, end + context + 1);
    const hunk = all.slice(start, stop);
    const oldCount = hunk.filter((e) => e.op !== '+').length;
    const newCount = hunk.filter((e) => e.op !== '-').length;
    const oldStart = oldCount === 0 ? hunk[0]!.oldNo : hunk[0]!.oldNo + 1;
    const newStart = newCount === 0 ? hunk[0]!.newNo : hunk[0]!.newNo + 1;
    lines.push(`@@ -${oldStart},${oldCount} +${newStart},${newCount} @@`);
    for (const e of hunk) lines.push(`${e.op}${e.line}`);
    index = stop;
  }
  return `${lines.join('\n')}\n`;
}
