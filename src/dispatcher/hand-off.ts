import type { ClaimedDelivery, HandOff } from '../backends/backend.js';
import type { DestinationRunner } from './destination-runner.js';

/**
 * One publish's direct hand-off (see `HandOff` in backend.ts): the backend asks, delivery by
 * delivery, whether a runner of this process takes it; each yes holds a slot of that runner
 * until the publish has committed (`deliver`) or failed (`cancel`).
 */
export class HandOffSession implements HandOff {
  private held: DestinationRunner[] = [];

  constructor(private readonly runners: ReadonlyMap<string, DestinationRunner>) {}

  take(destination: string): number | null {
    const runner = this.runners.get(destination);
    if (!runner?.take()) return null;
    this.held.push(runner);
    return runner.leaseMs;
  }

  restart(): void {
    this.cancel();
  }

  /** The publish committed: each runner runs what was stored leased to it; unused slots go back. */
  deliver(taken: readonly ClaimedDelivery[]): void {
    for (const delivery of taken) {
      const i = this.held.findIndex((runner) => runner.name === delivery.destination);
      if (i < 0) continue;
      const [runner] = this.held.splice(i, 1) as [DestinationRunner];
      runner.runTaken(delivery);
    }
    this.cancel();
  }

  /** The publish failed (or took nothing): every held slot goes back. */
  cancel(): void {
    const held = this.held;
    this.held = [];
    for (const runner of held) runner.untake();
  }
}
