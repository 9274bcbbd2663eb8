import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/support/temp-dir.js';
import { SqliteAuditStore } from '../../audit/sqlite-audit-store.js';
import { createProcessor } from '../../core/processor.js';
import { BackendError, LeaseLostError } from '../../errors.js';
import { toEnvelope } from '../../event.js';
import type { HandOff } from '../backend.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { SCHEMA_VERSION } from './migrations.js';
import { SqliteBackend } from './sqlite-backend.js';

describe('SqliteBackend', () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  const opened: SqliteBackend[] = [];

  const open = async () => {
    const backend = new SqliteBackend({ path });
    opened.push(backend);
    await backend.open();
    return backend;
  };

  beforeEach(() => {
    dir = tempDir('steadfast-sqlite-');
    path = join(dir.path, 'nested', 'folder', 'store.db');
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
    dir.remove();
  });

  it('creates the file and its folders, in WAL mode, at the current schema version', async () => {
    await open();
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    raw.close();
    expect(opened[0]!.storageSettings()).toEqual({
      journalMode: 'WAL',
      synchronous: 'WAL fdatasync off the event loop',
    });
  });

  it('copies committed events into the database file on the checkpointer thread', async () => {
    const backend = new SqliteBackend({ path, checkpointIntervalMs: 5 });
    opened.push(backend);
    const processor = createProcessor({ backend, logger: false });
    processor.destination('a', {}, async () => undefined);
    await processor.addEvents(
      Array.from({ length: 200 }, (_, i) => ({ eventId: `c${i}`, type: 't', payload: { i } })),
    );
    // The database file alone, without its WAL, holds the events once a checkpoint ran.
    const copy = join(dir.path, 'copy.db');
    await waitFor(() => {
      copyFileSync(path, copy);
      const raw = new Database(copy);
      try {
        return (raw.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n === 200;
      } catch {
        return false; // the copy caught the file before its first checkpoint
      } finally {
        raw.close();
      }
    });
  });

  it('keeps the WAL from growing while commits follow each other without a pause', async () => {
    const backend = new SqliteBackend({ path, checkpointIntervalMs: 100, walRestartPages: 64 });
    opened.push(backend);
    const processor = createProcessor({ backend, logger: false });
    processor.destination('a', {}, async () => undefined);
    // Eight producers keep a write queued at all times, and each checkpoint copies 100 ms of
    // commits: one always lands while it runs, so the log is never fully copied at the moment a
    // transaction begins and SQLite alone would never start it over.
    const total = 4_000;
    let next = 0;
    let walPeak = 0;
    const producer = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        await processor.addEvent({ eventId: `w${i}`, type: 't', payload: { i, text: 'x'.repeat(400) } });
        walPeak = Math.max(walPeak, statSync(`${path}-wal`).size);
      }
    };
    await Promise.all(Array.from({ length: 8 }, producer));
    expect(backend.commitStats.commits).toBeGreaterThan(400);
    // Unbounded, the log holds every page of every commit (about 25 MiB here).
    expect(walPeak).toBeLessThan(8 * 1024 * 1024);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare(`SELECT COUNT(*) AS n FROM events WHERE event_id LIKE 'w%'`).get()).toEqual({
      n: total,
    });
    raw.close();
    await processor.stop();
  });

  it('cuts a WAL grown past walLimitBytes back to nothing once it is copied', async () => {
    const backend = new SqliteBackend({
      path,
      checkpointIntervalMs: 5,
      walRestartPages: 1,
      walLimitBytes: 0,
    });
    opened.push(backend);
    const processor = createProcessor({ backend, logger: false });
    processor.destination('a', {}, async () => undefined);
    await processor.addEvents(
      Array.from({ length: 500 }, (_, i) => ({ eventId: `t${i}`, type: 't', payload: { i } })),
    );
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    await waitFor(() => statSync(`${path}-wal`).size === 0);
    expect(await backend.getEvent('t499')).not.toBeNull();
    await processor.stop();
  });

  it('shares one commit among concurrent addEvent calls, each answered after it is visible to others', async () => {
    const backend = new SqliteBackend({ path });
    const processor = createProcessor({ backend, logger: false });
    processor.destination('a', {}, async () => undefined);
    await processor.addEvent({ type: 'warm-up', payload: {} });
    const before = backend.commitStats.commits;
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        processor.addEvent({ eventId: `e${i}`, type: 't', payload: { i } }),
      ),
    );
    const commits = backend.commitStats.commits - before;
    expect(results.every((r) => !r.duplicate)).toBe(true);
    expect(commits).toBeLessThanOrEqual(2);
    // Another connection (as another process would) sees every acknowledged event.
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare(`SELECT COUNT(*) AS n FROM events WHERE event_id LIKE 'e%'`).get()).toEqual({ n: 64 });
    expect(raw.prepare(`SELECT COUNT(*) AS n FROM deliveries`).get()).toEqual({ n: 65 });
    raw.close();
    await processor.stop();
  });

  it('isolates a failing write from the others in its group commit', async () => {
    const backend = await open();
    const [ok, lost] = await Promise.allSettled([
      backend.publish([toEnvelope({ eventId: 'kept', type: 't', payload: {} }, { now: Date.now() })], {
        dedupWindowMs: 1000,
      }),
      backend.complete({ deliveryId: '999', token: 'nobody' }, { startedAt: 0, durationMs: 0 }),
    ]);
    expect(ok.status).toBe('fulfilled');
    expect(lost.status === 'rejected' && lost.reason).toBeInstanceOf(LeaseLostError);
    expect(await backend.getEvent('kept')).not.toBeNull();
  });

  it('runs a hand-off again from the start when its group commit is redone, leaving one leased delivery', async () => {
    const backend = await open();
    await backend.registerDestination({ name: 'a', types: '*', ordered: false, onDeadLetter: 'skip' });
    // A hand-off that holds at most one slot, as a runner with one free slot does.
    let held = 0;
    let takes = 0;
    let restarts = 0;
    const handOff: HandOff = {
      take: () => {
        takes += 1;
        if (held >= 1) return null;
        held += 1;
        return 30_000;
      },
      restart: () => {
        restarts += 1;
        held = 0;
      },
    };
    // The failing completion makes the batch roll back and run again, write by write.
    const [published, lost] = await Promise.allSettled([
      backend.publish(
        [toEnvelope({ eventId: 'handed', type: 't', payload: { n: 1 } }, { now: Date.now() })],
        {
          dedupWindowMs: 1000,
          handOff,
        },
      ),
      backend.complete({ deliveryId: '999', token: 'nobody' }, { startedAt: 0, durationMs: 0 }),
    ]);
    expect(lost.status).toBe('rejected');
    expect(published.status).toBe('fulfilled');
    const [result] = published.status === 'fulfilled' ? published.value : [];
    expect(takes).toBe(2);
    expect(restarts).toBe(2);
    expect(held).toBe(1);
    expect(result?.taken).toHaveLength(1);
    const taken = result!.taken![0]!;
    expect(taken).toMatchObject({ destination: 'a', attempt: 1, recoveredLease: false });
    expect(taken.event).toMatchObject({ eventId: 'handed', type: 't', payload: { n: 1 } });
    const record = await backend.getEvent('handed');
    expect(record?.deliveries).toHaveLength(1);
    expect(record?.deliveries[0]).toMatchObject({ state: 'processing', attempts: 1 });
    // The lease is real: completing with it settles the delivery.
    await backend.complete(taken.lease, { startedAt: Date.now(), durationMs: 1 });
    expect((await backend.getEvent('handed'))?.deliveries[0]?.state).toBe('succeeded');
  });

  it('refuses a file written by a newer version of the schema', async () => {
    const first = await open();
    await first.close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    await expect(new SqliteBackend({ path }).open()).rejects.toBeInstanceOf(BackendError);
  });

  it('opens an existing file again without migrating it twice', async () => {
    const backends = await Promise.all(Array.from({ length: 4 }, () => open()));
    expect(backends).toHaveLength(4);
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    raw.close();
  });

  it("refuses a file that is not an event store, such as the audit log's", async () => {
    const audit = new SqliteAuditStore({ path: join(dir.path, 'audit.db') });
    audit.open();
    audit.close();
    await expect(new SqliteBackend({ path: join(dir.path, 'audit.db') }).open()).rejects.toThrow(
      /is not a Steadfast event store/,
    );
  });

  it('answers writes after close with a BackendError', async () => {
    const backend = await open();
    await backend.close();
    await expect(
      backend.claim({ destination: 'a', limit: 1, leaseMs: 1000, workerId: 'w' }),
    ).rejects.toBeInstanceOf(BackendError);
  });
});
