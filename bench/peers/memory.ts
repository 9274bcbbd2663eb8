/**
 * The workload's ceiling on this machine: a queue that is an array in this process, with
 * nothing durable. An add is acknowledged once it is in the array; `concurrency` workers call
 * the handler as a queue's workers would, with the same retries and backoff. What it reaches is
 * what the handler (the sink insert through a pool of 10) and the producer allow here, so the
 * distance from it to a system is that system's own cost. Not a competitor: a crash loses
 * everything it holds.
 */
import type { BenchEvent, BenchHandler, ConsumerOptions, PeerSystem, SystemFactory } from './system.js';

interface Item {
  readonly event: BenchEvent;
  /** 1-based number of the attempt this item is for. */
  readonly attempt: number;
}

class MemorySystem implements PeerSystem {
  readonly name = 'in-memory ceiling';
  readonly configuration =
    'an array in this process and one async loop per concurrency slot calling the handler; ' +
    'retries after 10 ms × 2^(attempt - 1) (setTimeout); no durability: the handler-bound ceiling';
  private items: Item[] = [];
  private head = 0;
  private readonly sleeping: (() => void)[] = [];
  private readonly retries = new Set<NodeJS.Timeout>();
  private workers: Promise<void>[] = [];
  private running = false;
  private failed = 0;

  async setup(): Promise<void> {
    this.items = [];
    this.head = 0;
    this.failed = 0;
  }

  async start(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    this.running = true;
    this.workers = Array.from({ length: options.concurrency }, () => this.work(handler, options));
  }

  async add(event: BenchEvent): Promise<void> {
    this.enqueue({ event, attempt: 1 });
  }

  async addBatch(events: readonly BenchEvent[]): Promise<void> {
    for (const event of events) this.enqueue({ event, attempt: 1 });
  }

  async deadOrFailedCount(): Promise<number> {
    return this.failed;
  }

  async teardown(): Promise<void> {
    this.running = false;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    for (const wake of this.sleeping.splice(0)) wake();
    await Promise.all(this.workers);
    this.workers = [];
  }

  private enqueue(item: Item): void {
    this.items.push(item);
    this.sleeping.pop()?.();
  }

  private next(): Item | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.head += 1;
    if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  private async work(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    while (this.running) {
      const item = this.next();
      if (!item) {
        await new Promise<void>((wake) => this.sleeping.push(wake));
        continue;
      }
      try {
        await handler(item.event);
      } catch {
        if (item.attempt >= options.maxAttempts) {
          this.failed += 1;
          continue;
        }
        const timer = setTimeout(
          () => {
            this.retries.delete(timer);
            this.enqueue({ event: item.event, attempt: item.attempt + 1 });
          },
          options.backoffBaseMs * 2 ** (item.attempt - 1),
        );
        this.retries.add(timer);
      }
    }
  }
}

export const memorySystem: SystemFactory = {
  id: 'in-memory',
  name: 'in-memory ceiling',
  family: 'baseline',
  create: () => new MemorySystem(),
};
