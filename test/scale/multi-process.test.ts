import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBackend } from '../../src/index.js';
import { killChild, spawnTsChild, waitFor, type TsChild } from '../support/child-process.js';
import {
  deleteRedisKeys,
  dropSchema,
  servicesAvailable,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
} from '../support/services.js';
import { tempDir } from '../support/temp-dir.js';

const available = await servicesAvailable('postgres', 'redis');

const EVENTS = 20_000;
const KEYS = 100;
const BATCH = 250;
const SECRET = 'multi-process-test-secret-0123456789';
const WORKER = 'test/fixtures/scale-worker.ts';
const CLI = 'src/cli/main.ts';

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) if (name.startsWith('STEADFAST_')) env[name] = undefined;
  return { ...env, ...extra };
}

async function waitForLine(child: TsChild, match: (line: string) => boolean, what: string): Promise<string> {
  let found: string | undefined;
  await waitFor(
    () => {
      found = child.lines.find(match);
      return found !== undefined;
    },
    {
      timeoutMs: 60_000,
      description: what,
      abortIf: () => (child.exit() ? `it exited: ${child.stderr()}` : null),
    },
  );
  return found as string;
}

describe.skipIf(!available)('several processes on PostgreSQL + Redis', () => {
  const id = randomBytes(4).toString('hex');
  const schema = `sf_test_${id}`;
  const prefix = `sf_test_${id}`;
  const sink = 'sink_events';
  const dir = tempDir('steadfast-scale-');
  const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
  const children: TsChild[] = [];

  const workerEnv = cleanEnv({
    SCALE_DATABASE_URL: TEST_DATABASE_URL,
    SCALE_SCHEMA: schema,
    SCALE_REDIS_URL: TEST_REDIS_URL,
    SCALE_PREFIX: prefix,
    SCALE_SINK: sink,
  });

  async function startWorker(): Promise<TsChild> {
    const child = spawnTsChild(WORKER, [], workerEnv);
    children.push(child);
    await waitForLine(child, (line) => line === 'ready', 'a worker to start');
    return child;
  }

  const sinkCount = async (): Promise<number> =>
    Number((await pool.query(`SELECT COUNT(*) AS n FROM ${schema}.${sink}`)).rows[0].n);

  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await pool.query(
      `CREATE TABLE ${schema}.${sink} (id bigserial, event_id text PRIMARY KEY, key text NOT NULL, seq int NOT NULL)`,
    );
  });

  afterAll(async () => {
    await Promise.all(children.map((child) => killChild(child, 'SIGKILL').catch(() => undefined)));
    await pool.end();
    await dropSchema(schema);
    await deleteRedisKeys(prefix);
    dir.remove();
  });

  it('one gateway and two workers: a worker killed midway and restarted, every event exactly once, in key order', async () => {
    let workerA = await startWorker();
    await startWorker();

    const configPath = join(dir.path, 'steadfast.config.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        storage: { kind: 'postgres', url: TEST_DATABASE_URL, schema },
        dispatch: { kind: 'redis', url: TEST_REDIS_URL, prefix },
        hmacSecrets: [SECRET],
        rateLimit: { perIp: { ratePerSec: 0 }, perSecret: { ratePerSec: 0 } },
        destinations: [],
        logLevel: 'warn',
      }),
    );
    const gateway = spawnTsChild(
      CLI,
      [
        'gateway',
        '--config',
        configPath,
        '--data',
        dir.path,
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--log-level',
        'info',
      ],
      cleanEnv({}),
    );
    children.push(gateway);
    const running = await waitForLine(
      gateway,
      (line) => line.includes('steadfast is running'),
      'the gateway',
    );
    const url = (JSON.parse(running) as { url: string }).url;

    // 20,000 events over HTTP in signed batches; key k<n> gets seq 0, 1, 2, … in sending order.
    const failing = new Set<string>();
    let killed = false;
    for (let start = 0; start < EVENTS; start += BATCH) {
      const events = Array.from({ length: BATCH }, (_, j) => {
        const i = start + j;
        const eventId = `mp-${id}-${i}`;
        const failTwice = i % 20 === 7; // 5 %
        if (failTwice) failing.add(eventId);
        return {
          eventId,
          type: 'order.step',
          key: `k${i % KEYS}`,
          payload: { key: `k${i % KEYS}`, seq: Math.floor(i / KEYS), failTwice },
        };
      });
      const body = JSON.stringify({ events });
      const res = await fetch(`${url}/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-hmac-signature': createHmac('sha256', SECRET).update(body).digest('hex'),
        },
        body,
      });
      expect(res.status, await res.clone().text()).toBe(202);
      const json = (await res.json()) as { accepted: boolean; count: number; duplicates: number };
      expect([json.accepted, json.count, json.duplicates]).toEqual([true, BATCH, 0]);

      // Midway: kill worker A without warning, and start it again.
      if (!killed && start >= EVENTS / 2) {
        await waitFor(async () => (await sinkCount()) >= EVENTS / 4, {
          timeoutMs: 120_000,
          description: 'a quarter of the events in the sink',
        });
        await killChild(workerA, 'SIGKILL');
        killed = true;
        workerA = await startWorker();
      }
    }
    expect(failing.size).toBe(EVENTS / 20);

    await waitFor(async () => (await sinkCount()) === EVENTS, {
      timeoutMs: 180_000,
      intervalMs: 200,
      description: `all ${EVENTS} events in the sink`,
    });

    // Exactly once: every event id, no other row.
    const rows = (await pool.query(`SELECT event_id, key, seq FROM ${schema}.${sink} ORDER BY id`)).rows as {
      event_id: string;
      key: string;
      seq: number;
    }[];
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(EVENTS);
    // Per-key order: in order of first arrival, each key's seq goes 0, 1, 2, … without a gap.
    const nextSeq = new Map<string, number>();
    for (const row of rows) {
      expect(row.seq, `key ${row.key}`).toBe(nextSeq.get(row.key) ?? 0);
      nextSeq.set(row.key, row.seq + 1);
    }

    // Nothing dead-lettered, nothing left: the planned failures were retried, not given up.
    const store = new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema });
    await store.open();
    try {
      expect((await store.deadLetters.stats()).count).toBe(0);
      await waitFor(async () => (await store.queueStats()).depth === 0, {
        timeoutMs: 30_000,
        description: 'an empty queue',
      });
      const sample = await store.getEvent([...failing][0]!);
      expect(sample?.deliveries[0]?.state).toBe('succeeded');
      expect(sample?.deliveries[0]?.attempts).toBeGreaterThanOrEqual(3);
    } finally {
      await store.close();
    }
  }, 400_000);
});
