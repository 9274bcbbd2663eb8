/**
 * Small helpers for the benchmark: throw-away stores, statistics, pacing and table printing.
 * Nothing here knows about the processor's internals.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

/** Runs `fn` with the path of a fresh SQLite file in a fresh temporary folder, removed afterwards. */
export async function withFreshStore<T>(fn: (dbPath: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'steadfast-bench-'));
  try {
    return await fn(join(dir, 'bench.db'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Distribution {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles of `values` (milliseconds, or anything else). */
export function distribution(values: ArrayLike<number>): Distribution {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const at = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] ?? NaN;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: n,
    min: sorted[0] ?? NaN,
    mean: sum / n,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: sorted[n - 1] ?? NaN,
  };
}

/**
 * Calls `send(i, dueAt)` for i = 0 .. count-1 at a fixed rate, open loop: event i is due at
 * `start + i * intervalMs` whatever happened to the earlier ones. Each wake-up sends every event
 * that has fallen due, so a late timer (or a blocked event loop) never makes the schedule drift;
 * how late each send was is what `send` can measure as `performance.now() - dueAt`.
 */
export function paced(
  count: number,
  intervalMs: number,
  send: (i: number, dueAt: number) => void,
): Promise<void> {
  return new Promise((resolve) => {
    const start = performance.now();
    let i = 0;
    const tick = (): void => {
      const now = performance.now();
      while (i < count && start + i * intervalMs <= now) {
        send(i, start + i * intervalMs);
        i += 1;
      }
      if (i >= count) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, start + i * intervalMs - performance.now()));
    };
    tick();
  });
}

/** Resolves when `promise` does, or rejects after `ms` with a message saying what timed out. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise with its resolve function outside. */
export function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export const fmt = {
  /** 12345.6 -> "12,346" */
  int: (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  /** 1.23456 -> "1.23" */
  ms: (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a'),
  /** 1.23456 -> "1.2" */
  one: (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a'),
  /** milliseconds -> "1.23 s" */
  seconds: (ms: number): string => `${(ms / 1000).toFixed(2)} s`,
};

export type Align = 'left' | 'right';

/**
 * A Markdown table padded so that it also reads well as plain text. `align` defaults to
 * left for the first column and right for the others.
 */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align?: Align[],
): string {
  const alignment = headers.map((_, i) => align?.[i] ?? (i === 0 ? 'left' : 'right'));
  const widths = headers.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number): string =>
    alignment[i] === 'right' ? text.padStart(widths[i] ?? 0) : text.padEnd(widths[i] ?? 0);
  const line = (cells: readonly string[]): string =>
    `| ${headers.map((_, i) => cell(cells[i] ?? '', i)).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (alignment[i] === 'right' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/**
 * Bytes this process has caused to be sent to storage so far (`write_bytes` of /proc/self/io),
 * or null where that is not available (not Linux).
 */
export function storageWriteBytes(): number | null {
  try {
    const match = /^write_bytes:\s*(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Prints a titled section. */
export function section(title: string): void {
  console.log(`\n## ${title}\n`);
}

/** The rows every benchmark's machine table starts with: Node, platform, CPU, memory, load. */
export function machineFacts(): string[][] {
  const cpuList = cpus();
  return [
    ['node', process.version],
    ['platform', `${platform()} ${release()} (${process.arch})`],
    ['CPU', `${cpuList[0]?.model.trim() ?? 'unknown'} × ${cpuList.length}`],
    ['memory', `${fmt.one(totalmem() / 2 ** 30)} GiB`],
    ['load average (1 min) at start', fmt.ms(loadavg()[0] ?? NaN)],
  ];
}
