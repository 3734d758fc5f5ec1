// Plain column tables in kubectl's style: uppercase headers, columns padded to their widest cell and
// separated by three spaces, no borders, no trailing spaces.

export interface TableOptions {
  /** Spaces between columns. */
  gap?: number;
}

// A cell must stay on one line or the columns fall apart.
function oneLine(cell: string): string {
  return cell.replace(/\s*[\r\n]+\s*/g, ' ');
}

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): string {
  const gap = ' '.repeat(options.gap ?? 3);
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((row) => headers.map((_, i) => oneLine(row[i] ?? '')))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const lines = cells.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join(gap)
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

/** Shortens a long cell (messages) with an ellipsis, so one task's error does not widen the table. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
