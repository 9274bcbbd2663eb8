import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createProcessor } from '../../src/index.js';
import { killChild, spawnTsChild, waitFor, waitForExit, type TsChild } from '../support/child-process.js';

const CHILD = 'test/fixtures/crash-child.ts';
const EVENTS = 5000;
/** Kill the first child once this many events are acknowledged and this many rows are in the sink. */
const KILL_AFTER_ACKS = 1000;
const KILL_AFTER_SINK_ROWS = 200;

interface FinishReport {
  queueDepth: number;
  deadLetterCount: number;
  deadLetterStatsCount: number;
  leaseRecoveries: number;
  failures: number;
  readdedNew: number;
  readdedDuplicate: number;
}

/** Why waiting on a child is pointless: it exited, and how. */
function exitedReason(child: TsChild): string | null {
  const exit = child.exit();
  if (exit === null) return null;
  return `child exited early (code ${exit.code}, signal ${exit.signal}); stderr:\n${child.stderr()}`;
}

describe('crash recovery', () => {
  let dir: string | null = null;
  const children: TsChild[] = [];
  const sinks: Database.Database[] = [];

  afterEach(async () => {
    for (const sink of sinks.splice(0)) sink.close();
    // Only the children this test started, by their handle.
    await Promise.all(children.splice(0).map((child) => killChild(child, 'SIGKILL').catch(() => undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  it('a process killed with SIGKILL mid-run loses nothing: a new process on the same file finishes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'steadfast-crash-'));
    const storePath = join(dir, 'store.db');
    const sinkPath = join(dir, 'sink.db');
    const ackedPath = join(dir, 'acked.txt');
    const env = { CRASH_EVENTS: String(EVENTS) };

    // 1. Produce and process, then SIGKILL midway.
    const first = spawnTsChild(CHILD, ['produce-and-process', storePath, sinkPath], env);
    children.push(first);
    const acked = new Set<string>();
    first.onLine((line) => {
      const [tag, eventId] = line.split(' ');
      if (tag === 'ack' && eventId) acked.add(eventId);
    });
    await waitFor(() => first.lines.includes('ready'), {
      timeoutMs: 20_000,
      description: 'the first child to start',
      abortIf: () => exitedReason(first),
    });
    const sink = new Database(sinkPath, { readonly: true, fileMustExist: true });
    sinks.push(sink);
    const countSink = (): number => (sink.prepare('SELECT COUNT(*) AS n FROM sink').get() as { n: number }).n;

    let sinkAtKill = 0;
    await waitFor(
      () => {
        sinkAtKill = countSink();
        return acked.size >= KILL_AFTER_ACKS && sinkAtKill >= KILL_AFTER_SINK_ROWS;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 5,
        description: `${KILL_AFTER_ACKS} acks and ${KILL_AFTER_SINK_ROWS} sink rows`,
        abortIf: () => exitedReason(first),
      },
    );
    const firstExit = await killChild(first, 'SIGKILL');
    expect(firstExit.signal).toBe('SIGKILL');
    const ackedAtKill = [...acked];
    const sinkAfterKill = countSink();
    expect(ackedAtKill.length).toBeGreaterThan(0);
    expect(sinkAfterKill).toBeGreaterThan(0);
    expect(sinkAfterKill).toBeLessThan(EVENTS);

    // 2. A new process on the same file: re-adds what was never acknowledged, finishes the rest.
    writeFileSync(ackedPath, ackedAtKill.join('\n'));
    const second = spawnTsChild(CHILD, ['finish', storePath, sinkPath, ackedPath], env);
    children.push(second);
    const secondExit = await waitForExit(second, 60_000);
    expect(secondExit, `second child stderr:\n${second.stderr()}`).toEqual({ code: 0, signal: null });
    const reportLine = second.lines.find((line) => line.startsWith('report '));
    expect(reportLine, `second child output:\n${second.lines.join('\n')}`).toBeDefined();
    const report = JSON.parse((reportLine as string).slice('report '.length)) as FinishReport;

    // 3. Every acknowledged event was handled; the sink holds each event exactly once.
    const sinkIds = new Set(
      (sink.prepare('SELECT event_id FROM sink').all() as { event_id: string }[]).map((r) => r.event_id),
    );
    const missingAcked = ackedAtKill.filter((id) => !sinkIds.has(id));
    expect(missingAcked).toEqual([]);
    expect(countSink()).toBe(EVENTS);
    expect(sinkIds.size).toBe(EVENTS);
    const expectedIds = Array.from({ length: EVENTS }, (_, i) => `evt-${i}`);
    expect(expectedIds.filter((id) => !sinkIds.has(id))).toEqual([]);

    expect(report.queueDepth).toBe(0);
    expect(report.deadLetterCount).toBe(0);
    expect(report.deadLetterStatsCount).toBe(0);
    // What the first child committed but never got to acknowledge is answered as a duplicate.
    expect(report.readdedNew + report.readdedDuplicate).toBe(EVENTS - ackedAtKill.length);

    // 4. The store agrees, seen through a fresh processor: no dead letters, nothing queued,
    //    and every acknowledged event's delivery succeeded.
    const inspector = createProcessor({ storage: { kind: 'sqlite', path: storePath }, logger: false });
    try {
      expect((await inspector.deadLetters.stats()).count).toBe(0);
      expect((await inspector.getMetrics()).queueDepth).toBe(0);
      const notSucceeded: string[] = [];
      for (const id of expectedIds) {
        const record = await inspector.getEvent(id);
        const states = record?.deliveries.map((d) => d.state) ?? [];
        if (states.length !== 1 || states[0] !== 'succeeded') notSucceeded.push(`${id}: ${states.join(',')}`);
      }
      expect(notSucceeded).toEqual([]);
    } finally {
      await inspector.stop();
    }

    // 5. Redeliveries are allowed (at-least-once); report them.
    const calls = sink
      .prepare(
        `SELECT COUNT(*) AS total, COUNT(DISTINCT event_id) AS distinctEvents,
                  SUM(pid = ?) AS byFirst, SUM(pid = ?) AS bySecond
           FROM calls`,
      )
      .get(first.pid, second.pid) as {
      total: number;
      distinctEvents: number;
      byFirst: number;
      bySecond: number;
    };
    const repeated = (
      sink
        .prepare(
          'SELECT COUNT(*) AS n FROM (SELECT event_id FROM calls GROUP BY event_id HAVING COUNT(*) > 1)',
        )
        .get() as {
        n: number;
      }
    ).n;
    expect(calls.distinctEvents).toBe(EVENTS);
    console.log(
      [
        `crash test: killed after ${ackedAtKill.length} acks with ${sinkAfterKill} sink rows`,
        `second process re-added ${report.readdedNew} new + ${report.readdedDuplicate} duplicate, ` +
          `recovered ${report.leaseRecoveries} expired leases, ${report.failures} failed attempts`,
        `handler calls: ${calls.total} for ${EVENTS} events (first ${calls.byFirst}, second ${calls.bySecond}); ` +
          `redeliveries ${calls.total - EVENTS}, events called more than once ${repeated}`,
      ].join('\n'),
    );
  }, 120_000);
});
