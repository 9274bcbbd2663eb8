import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { PermanentError } from '../errors.js';

describe('logs', () => {
  const dir = tempDir('steadfast-logs-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('writes one line per dead letter and per handler log call, carrying event and correlation ids', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    processor = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 's.db') },
      logger: pino({ level: 'info' }, stream),
    });
    processor.destination('billing', {}, async (_event, ctx) => {
      ctx.logger.info('charging');
      throw new PermanentError('card declined');
    });
    await processor.start();
    await processor.addEvent({ eventId: 'evt-42', correlationId: 'req-7', type: 'order.paid', payload: {} });
    await waitFor(() => lines.some((l) => l.msg === 'delivery dead-lettered'));
    const fromHandler = lines.find((l) => l.msg === 'charging');
    const dead = lines.find((l) => l.msg === 'delivery dead-lettered');
    for (const line of [fromHandler, dead]) {
      expect(line).toMatchObject({ eventId: 'evt-42', correlationId: 'req-7', destination: 'billing' });
    }
    expect(fromHandler).toMatchObject({ attempt: 1, level: 30 });
    expect(dead).toMatchObject({ level: 40, reason: 'permanent', error: { code: 'permanent_error' } });
  });
});
