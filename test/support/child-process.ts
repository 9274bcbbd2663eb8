import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The project root (where `node_modules/tsx` lives); children run with it as their cwd. */
export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child Node process running a TypeScript file through tsx, with its output collected by line. */
export interface TsChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Complete stdout lines received so far. */
  readonly lines: readonly string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ChildExit>;
  /** The exit, once it happened; null while running. */
  exit(): ChildExit | null;
  /** Registers a callback for every complete stdout line from now on. */
  onLine(listener: (line: string) => void): void;
}

/**
 * Starts `node --import tsx <script> ...args` in the project root. stdin is closed; stdout is
 * split into lines; stderr is kept for error messages.
 */
export function spawnTsChild(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): TsChild {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let partial = '';
  let errText = '';
  let exitInfo: ChildExit | null = null;

  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let newline = partial.indexOf('\n');
    while (newline !== -1) {
      const line = partial.slice(0, newline).replace(/\r$/, '');
      partial = partial.slice(newline + 1);
      lines.push(line);
      for (const listener of listeners) listener(line);
      newline = partial.indexOf('\n');
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    errText += chunk;
  });

  const exited = new Promise<ChildExit>((resolve) => {
    child.once('close', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });

  return {
    process: child,
    pid: child.pid,
    lines,
    stderr: () => errText,
    exited,
    exit: () => exitInfo,
    onLine: (listener) => listeners.push(listener),
  };
}

/**
 * Polls `condition` every `intervalMs` until it answers true. Rejects after `timeoutMs`, or at
 * once if `abortIf` answers a reason (e.g. the child exited early).
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: {
    timeoutMs: number;
    intervalMs?: number;
    description: string;
    abortIf?: () => string | null;
  },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 20;
  for (;;) {
    if (await condition()) return;
    const reason = options.abortIf?.();
    if (reason) throw new Error(`gave up waiting for ${options.description}: ${reason}`);
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.description}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Resolves with the exit, or rejects if the child has not exited within `timeoutMs`. */
export async function waitForExit(child: TsChild, timeoutMs: number): Promise<ChildExit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`child ${child.pid} did not exit within ${timeoutMs} ms; stderr:\n${child.stderr()}`),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends `signal` to this child (if still running) and waits for it to exit. */
export async function killChild(
  child: TsChild,
  signal: NodeJS.Signals = 'SIGKILL',
  timeoutMs = 10_000,
): Promise<ChildExit> {
  if (child.exit() === null) child.process.kill(signal);
  return waitForExit(child, timeoutMs);
}
