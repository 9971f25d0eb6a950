import type { KilnError } from '@kiln/core';

/** Typed errors go to stderr: as JSON for --json callers, as one readable line otherwise. */
export function reportError(e: KilnError, json: boolean): void {
  if (json) process.stderr.write(`${JSON.stringify(e.toJSON())}\n`);
  else process.stderr.write(`Error [${e.code}]: ${e.message}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain-text table (column widths from the content), like the openstack client's. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<unknown>>): string {
  const cells = rows.map((r) => r.map((c) => (c === undefined || c === null ? '' : typeof c === 'string' ? c : JSON.stringify(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}
