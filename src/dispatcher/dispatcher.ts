import type { ResolvedDestination } from '../core/destination.js';
import { DestinationRunner, type RunnerDeps } from './destination-runner.js';
import { HandOffSession } from './hand-off.js';

/**
 * Owns one runner per destination this process handles and routes "new work" signals from
 * the backend to them. A process claims only the deliveries of destinations it runs.
 */
export class Dispatcher {
  private readonly runners = new Map<string, DestinationRunner>();
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly deps: RunnerDeps) {}

  get destinations(): string[] {
    return [...this.runners.keys()];
  }

  /** Attempts running right now, all destinations together. */
  get active(): number {
    let total = 0;
    for (const runner of this.runners.values()) total += runner.active;
    return total;
  }

  get started(): boolean {
    return this.unsubscribe !== null;
  }

  /** Circuit state of each destination this process runs (`none` without a breaker). */
  circuitStates(): Record<string, 'closed' | 'open' | 'half-open' | 'none'> {
    return Object.fromEntries([...this.runners].map(([name, runner]) => [name, runner.circuitState]));
  }

  /** A hand-off for one publish, or null while this process runs no destination. */
  handOff(): HandOffSession | null {
    return this.started && this.runners.size > 0 ? new HandOffSession(this.runners) : null;
  }

  add(destination: ResolvedDestination): void {
    const runner = new DestinationRunner(destination, this.deps);
    this.runners.set(destination.spec.name, runner);
    if (this.started) runner.start();
  }

  start(): void {
    if (this.started) return;
    this.unsubscribe = this.deps.backend.onWork((destinations) => {
      if (destinations === 'all') {
        for (const runner of this.runners.values()) runner.notify();
        return;
      }
      for (const name of destinations) this.runners.get(name)?.notify();
    });
    for (const runner of this.runners.values()) runner.start();
  }

  /**
   * Stops claiming everywhere, waits up to `timeoutMs` for running attempts, then releases
   * what is left. Answers how many deliveries were released.
   */
  async stop(timeoutMs: number): Promise<number> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    // A shutdown grace period is wall-clock time, whatever clock the processor runs on.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      const released = await Promise.all([...this.runners.values()].map((runner) => runner.stop(deadline)));
      return released.reduce((a, b) => a + b, 0);
    } finally {
      clearTimeout(timer);
    }
  }
}
