import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import type { Backend, ClaimRequest } from '../backends/backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { RetryAfterError } from '../errors.js';

/** A real SQLite backend whose claims answer late, as under a slow disk or a busy lock. */
function slowClaims(backend: SqliteBackend, delayMs: number): Backend {
  return new Proxy(backend, {
    get(target, property, receiver) {
      if (property === 'claim') {
        return async (request: ClaimRequest) => {
          const result = await target.claim(request);
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return result;
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('DestinationRunner', () => {
  const dir = tempDir('steadfast-runner-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('claims a retry that fell due while its claim was still on the way', async () => {
    const backend = slowClaims(new SqliteBackend({ path: join(dir.path, 'store.db') }), 30);
    processor = createProcessor({ backend, logger: false });
    let calls = 0;
    processor.destination('a', {}, async () => {
      calls += 1;
      if (calls === 1) throw new RetryAfterError(10);
    });
    await processor.start();
    await processor.addEvent({ type: 't', payload: {} });
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0, { timeoutMs: 5000 });
    expect(calls).toBe(2);
  });
});
