type Cell = string | number | null | undefined;

const text = (c: Cell) => (c === null || c === undefined ? '-' : String(c));

/** The width of each column: its widest cell, at least `min[i]`. */
export function columnWidths(headers: string[], rows: Cell[][], min: number[] = []): number[] {
  return headers.map((h, i) => Math.max(min[i] ?? 0, h.length, ...rows.map((r) => text(r[i]).length)));
}

export function formatRow(row: Cell[], widths: number[]): string {
  return row
    .map((c, i) => text(c).padEnd(widths[i] ?? 0))
    .join('  ')
    .trimEnd();
}

/** Human output: aligned columns; scripts use --json instead. */
export function table(headers: string[], rows: Cell[][], min: number[] = []): string {
  const widths = columnWidths(headers, rows, min);
  return [headers, ...rows].map((r) => formatRow(r, widths)).join('\n');
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
