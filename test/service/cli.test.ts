import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createProcessor,
  SqliteAuditStore,
  type DeadLetterPage,
  type DeliveryState,
  type EventRecord,
} from '../../src/index.js';
import {
  spawnTsChild,
  waitFor,
  waitForExit,
  type ChildExit,
  type TsChild,
} from '../support/child-process.js';

const MAIN = 'src/cli/main.ts';
/** Bound on any one CLI command (`send`, `status`, ...) and on the service's start and stop. */
const CHILD_TIMEOUT_MS = 20_000;

/** A JSON log line of the service (pino). */
interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

interface CliRun {
  readonly exit: ChildExit;
  readonly stdout: string;
  readonly stderr: string;
}

interface Service {
  readonly child: TsChild;
  readonly url: string;
}

/**
 * The children's environment: the test's own minus every `STEADFAST_*` variable (so a developer's
 * settings cannot leak in), plus info-level logs and whatever the test adds.
 */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('STEADFAST_')) env[name] = undefined; // spawn() drops undefined entries
  }
  return { ...env, STEADFAST_LOG_LEVEL: 'info', ...extra };
}

/** The JSON log lines a child printed so far; other stdout lines (the secret notice) are skipped. */
function logLines(child: TsChild): LogLine[] {
  const parsed: LogLine[] = [];
  for (const line of child.lines) {
    if (!line.startsWith('{')) continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (typeof value === 'object' && value !== null && typeof (value as LogLine).msg === 'string') {
        parsed.push(value as LogLine);
      }
    } catch {
      // not a log line
    }
  }
  return parsed;
}

function messages(child: TsChild): string[] {
  return logLines(child).map((line) => line.msg);
}

/** Why waiting on a child is pointless: it exited, and how. */
function exitedReason(child: TsChild): string | null {
  const exit = child.exit();
  if (exit === null) return null;
  return (
    `child exited early (code ${exit.code}, signal ${exit.signal}); ` +
    `stdout:\n${child.lines.join('\n')}\nstderr:\n${child.stderr()}`
  );
}

function hmacHex(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** Reads the secret `start` generated into the data directory. */
function readSecret(dir: string): string {
  return readFileSync(join(dir, 'hmac-secret'), 'utf8').trim();
}

/** POSTs one event signed like `steadfast send` does (hex HMAC-SHA256 of the raw body). */
async function postEvent(
  url: string,
  secret: string,
  event: { type: string; payload: unknown; eventId: string; key?: string },
  options: { closeConnection?: boolean } = {},
): Promise<{ status: number; body: unknown }> {
  const body = JSON.stringify(event);
  const res = await fetch(new URL('/events', url), {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/json',
      'x-hmac-signature': hmacHex(secret, body),
      // Ask for the connection to be closed after the answer (undici honours `connection: close`).
      ...(options.closeConnection ? { connection: 'close' } : {}),
    },
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

/** `GET /events/:id` on a running service; null on 404. */
async function getEvent(url: string, eventId: string): Promise<EventRecord | null> {
  const res = await fetch(new URL(`/events/${encodeURIComponent(eventId)}`, url), {
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`GET /events/${eventId} answered ${res.status}`);
  return (await res.json()) as EventRecord;
}

function stateOf(record: EventRecord | null, destination: string): DeliveryState | undefined {
  return record?.deliveries.find((d) => d.destination === destination)?.state;
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new Error(`${what} did not print valid JSON (${(error as Error).message}):\n${text}`);
  }
}

/** Sends `count` events at once; every one must be acknowledged (202, new). Answers their ids. */
async function sendBurst(url: string, secret: string, prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  const answers = await Promise.all(
    ids.map((eventId, i) =>
      postEvent(url, secret, {
        type: 'user.updated',
        payload: { principalId: `u-${i}` },
        eventId,
        key: `u-${i % 4}`,
      }),
    ),
  );
  for (const [i, answer] of answers.entries()) {
    expect(answer, ids[i]).toMatchObject({ status: 202, body: { eventId: ids[i], duplicate: false } });
  }
  return ids;
}

interface RacedAnswer {
  readonly eventId: string;
  /** 202 stored, 503 refused while shutting down, null: no answer (connection refused or reset). */
  readonly status: number | null;
  readonly error: string | null;
}

/**
 * Starts `count` sends without waiting for them, to race a SIGTERM; resolves with every outcome
 * once all have settled, after checking each is an acknowledgement or a refusal.
 */
function sendRacingWave(
  url: string,
  secret: string,
  prefix: string,
  count: number,
  options: { closeConnection?: boolean } = {},
): Promise<RacedAnswer[]> {
  const answers = Array.from({ length: count }, (_, i) => {
    const eventId = `${prefix}-${i}`;
    return postEvent(
      url,
      secret,
      { type: 'user.deleted', payload: { principalId: `r-${i}` }, eventId },
      options,
    ).then(
      (answer): RacedAnswer => ({ eventId, status: answer.status, error: null }),
      (error: unknown): RacedAnswer => ({ eventId, status: null, error: String(error) }),
    );
  });
  return Promise.all(answers).then((raced) => {
    for (const r of raced) expect([202, 503, null], JSON.stringify(r)).toContain(r.status);
    return raced;
  });
}

describe('steadfast CLI, end to end', () => {
  const children: TsChild[] = [];
  const dirs: string[] = [];

  afterEach(async () => {
    // Only the children these tests started, by their handle; SIGKILL whatever still runs.
    await Promise.all(
      children.splice(0).map(async (child) => {
        if (child.exit() === null) child.process.kill('SIGKILL');
        await waitForExit(child, 10_000).catch(() => undefined);
      }),
    );
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'steadfast-cli-'));
    dirs.push(dir);
    return dir;
  }

  function spawnCli(args: readonly string[], env: Record<string, string> = {}): TsChild {
    const child = spawnTsChild(MAIN, args, cliEnv(env));
    children.push(child);
    return child;
  }

  /** Runs one CLI command to completion. */
  async function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
    const child = spawnCli(args, env);
    const exit = await waitForExit(child, CHILD_TIMEOUT_MS);
    return { exit, stdout: child.lines.join('\n'), stderr: child.stderr() };
  }

  /** `steadfast start` on a free port; resolves with its URL once it logs that it is running. */
  async function startService(dir: string): Promise<Service> {
    const child = spawnCli(['start', '--port', '0', '--host', '127.0.0.1', '--data', dir]);
    let url: string | undefined;
    await waitFor(
      () => {
        const running = logLines(child).find((line) => line.msg === 'steadfast is running');
        if (typeof running?.url === 'string') url = running.url;
        return url !== undefined;
      },
      {
        timeoutMs: CHILD_TIMEOUT_MS,
        description: "the service's 'steadfast is running' log line",
        abortIf: () => exitedReason(child),
      },
    );
    return { child, url: url as string };
  }

  /** SIGTERM, then the exit: it must be a clean exit 0 after draining, not a death by signal. */
  async function stopService(service: Service): Promise<void> {
    service.child.process.kill('SIGTERM');
    const output = (): string =>
      `stdout:\n${service.child.lines.join('\n')}\nstderr:\n${service.child.stderr()}`;
    const exit = await waitForExit(service.child, CHILD_TIMEOUT_MS).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${output()}`);
    });
    expect(exit, output()).toEqual({ code: 0, signal: null });
    expect(messages(service.child), output()).toContain('shutting down: no new events, draining deliveries');
    expect(messages(service.child), output()).toContain('stopped cleanly');
    expect(service.child.stderr(), output()).toBe('');
  }

  it('start, send, status, SIGTERM: exit 0 and no acknowledged event is lost', async () => {
    const dir = tempDir();
    const service = await startService(dir);
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // No secret was configured: `start` generated one into the data directory and said so.
    expect(service.child.lines.some((line) => line.includes(join(dir, 'hmac-secret')))).toBe(true);
    const secret = readSecret(dir);

    // 1. `steadfast send` signs with the generated secret and prints the service's answer.
    const sent = await runCli([
      'send',
      '--type',
      'user.created',
      '--payload',
      '{"principalId":"u-1"}',
      '--id',
      'e2e-1',
      '--url',
      service.url,
      '--data',
      dir,
    ]);
    expect(sent.exit, sent.stderr).toEqual({ code: 0, signal: null });
    const answer = /^202 (\{.*\})$/.exec(sent.stdout.trim());
    expect(answer, sent.stdout).not.toBeNull();
    expect(parseJson(answer![1]!, 'send')).toMatchObject({
      accepted: true,
      eventId: 'e2e-1',
      duplicate: false,
    });

    // 2. `status --url --json` until the audit delivery has succeeded.
    let statusRecord: EventRecord | null = null;
    await waitFor(
      async () => {
        const status = await runCli(['status', 'e2e-1', '--url', service.url, '--data', dir, '--json']);
        expect(status.exit, status.stderr).toEqual({ code: 0, signal: null });
        statusRecord = parseJson<EventRecord>(status.stdout, 'status --json');
        return stateOf(statusRecord, 'audit') === 'succeeded';
      },
      {
        timeoutMs: CHILD_TIMEOUT_MS,
        intervalMs: 50,
        description: 'status e2e-1 to show the audit delivery succeeded',
        abortIf: () => exitedReason(service.child),
      },
    );
    expect(statusRecord).toMatchObject({
      event: { eventId: 'e2e-1', type: 'user.created', payload: { principalId: 'u-1' } },
      deliveries: [{ destination: 'audit', state: 'succeeded', attempts: 1 }],
    });

    // 3. `status` without --url reads the SQLite file while the service is running.
    const local = await runCli(['status', 'e2e-1', '--data', dir]);
    expect(local.exit, local.stderr).toEqual({ code: 0, signal: null });
    expect(local.stdout).toContain('user.created e2e-1');
    expect(local.stdout).toMatch(/^audit\s+succeeded\s+1\s/m);

    // 4. A burst of events, every one acknowledged, then SIGTERM at once while a second wave is
    //    still in flight: each of those is either acknowledged (then it must survive) or refused.
    const burst = await sendBurst(service.url, secret, 'burst', 20);
    const racing = sendRacingWave(service.url, secret, 'racing', 10, { closeConnection: true });
    await stopService(service);
    const raced = await racing;

    const acked = ['e2e-1', ...burst, ...raced.filter((r) => r.status === 202).map((r) => r.eventId)];

    // 5. Nothing lost: every acknowledged event is in the store with its audit delivery.
    const statesAtExit = new Map<string, number>();
    const inspector = createProcessor({
      storage: { kind: 'sqlite', path: join(dir, 'steadfast.db') },
      logger: false,
    });
    try {
      const missing: string[] = [];
      for (const eventId of acked) {
        const record = await inspector.getEvent(eventId);
        const state = stateOf(record, 'audit');
        if (record?.event.eventId !== eventId || state === undefined) missing.push(eventId);
        else statesAtExit.set(state, (statesAtExit.get(state) ?? 0) + 1);
      }
      expect(missing).toEqual([]);
      // A clean stop hands unfinished work back; nothing stays leased and nothing was dead-lettered.
      expect(statesAtExit.get('processing')).toBeUndefined();
      expect(statesAtExit.get('dead')).toBeUndefined();
      expect((await inspector.deadLetters.stats()).count).toBe(0);
    } finally {
      await inspector.stop();
    }

    // 6. A second service on the same data directory delivers whatever the first left behind.
    const second = await startService(dir);
    const notYet = new Set(acked);
    await waitFor(
      async () => {
        for (const eventId of [...notYet]) {
          if (stateOf(await getEvent(second.url, eventId), 'audit') === 'succeeded') notYet.delete(eventId);
        }
        return notYet.size === 0;
      },
      {
        timeoutMs: CHILD_TIMEOUT_MS,
        intervalMs: 50,
        description: 'every acknowledged event delivered to audit after the restart',
        abortIf: () => exitedReason(second.child),
      },
    );
    await stopService(second);

    // 7. The audit log holds exactly one record per acknowledged event.
    const audit = new SqliteAuditStore({ path: join(dir, 'audit.db') });
    audit.open();
    try {
      expect(acked.filter((eventId) => audit.get(eventId) === null)).toEqual([]);
      expect(audit.count()).toBe(acked.length);
    } finally {
      audit.close();
    }

    console.log(
      `cli e2e: ${acked.length} events acknowledged (${raced.filter((r) => r.status === 202).length} of ` +
        `${raced.length} racing the SIGTERM; ${raced.filter((r) => r.status === 503).length} answered 503, ` +
        `${raced.filter((r) => r.status === null).length} unanswered); audit states at exit: ` +
        JSON.stringify(Object.fromEntries(statesAtExit)),
    );
  }, 60_000);

  it('dlq list / stats print JSON; a bad --payload and a bad STEADFAST_PORT fail clearly', async () => {
    const dir = tempDir();
    const neverCreated = join(tempDir(), 'data');

    // Failures that need no service run alongside its start.
    const badPayload = runCli([
      'send',
      '--type',
      'user.created',
      '--payload',
      '{not json',
      '--url',
      'http://127.0.0.1:9',
      '--data',
      dir,
    ]);
    const badPort = runCli(['start', '--host', '127.0.0.1', '--data', neverCreated], {
      STEADFAST_PORT: 'abc',
    });
    const service = await startService(dir);

    const sendFailure = await badPayload;
    expect(sendFailure.exit.code, sendFailure.stderr).not.toBe(0);
    expect(sendFailure.exit.code).not.toBeNull();
    expect(sendFailure.stderr).toContain('--payload is not valid JSON');
    expect(sendFailure.stdout).toBe('');

    const startFailure = await badPort;
    expect(startFailure.exit.code, startFailure.stderr).not.toBe(0);
    expect(startFailure.exit.code).not.toBeNull();
    expect(startFailure.stderr).toContain('STEADFAST_PORT');
    expect(startFailure.stderr).toContain('"abc"');
    expect(startFailure.stdout).not.toContain('steadfast is running');
    expect(existsSync(neverCreated)).toBe(false); // a bad configuration changes nothing

    // One event delivered, one dead-lettered at once (an audit field with a value it cannot take).
    const secret = readSecret(dir);
    const good = await postEvent(service.url, secret, {
      type: 'user.created',
      payload: { principalId: 'u-1' },
      eventId: 'ok-1',
    });
    const bad = await postEvent(service.url, secret, {
      type: 'user.created',
      payload: { principalId: 'u-2', dataClassification: 'SECRET' },
      eventId: 'dead-1',
    });
    expect([good.status, bad.status]).toEqual([202, 202]);
    await waitFor(
      async () =>
        stateOf(await getEvent(service.url, 'dead-1'), 'audit') === 'dead' &&
        stateOf(await getEvent(service.url, 'ok-1'), 'audit') === 'succeeded',
      {
        timeoutMs: CHILD_TIMEOUT_MS,
        intervalMs: 50,
        description: 'dead-1 dead-lettered and ok-1 delivered',
        abortIf: () => exitedReason(service.child),
      },
    );

    // Against the data directory (SQLite read directly) and against the service (admin token).
    const [dlqLocal, statsLocal, dlqHttp, statsHttp] = await Promise.all([
      runCli(['dlq', 'list', '--json', '--data', dir]),
      runCli(['stats', '--json', '--data', dir]),
      runCli(['dlq', 'list', '--json', '--data', dir, '--url', service.url]),
      runCli(['stats', '--json', '--data', dir, '--url', service.url]),
    ]);
    for (const [name, run] of Object.entries({ dlqLocal, statsLocal, dlqHttp, statsHttp })) {
      expect(run.exit, `${name}: ${run.stderr}`).toEqual({ code: 0, signal: null });
    }
    for (const page of [
      parseJson<DeadLetterPage>(dlqLocal.stdout, 'dlq list --json'),
      parseJson<DeadLetterPage>(dlqHttp.stdout, 'dlq list --json --url'),
    ]) {
      expect(page.nextCursor).toBeNull();
      expect(page.items).toHaveLength(1);
      expect(page.items[0]).toMatchObject({ destination: 'audit', event: { eventId: 'dead-1' } });
      expect(page.items[0]?.error.message).toContain('dataClassification');
    }
    const localStats = parseJson<{ deadLetters: { count: number }; queue: { depth: number } }>(
      statsLocal.stdout,
      'stats --json',
    );
    expect(localStats.deadLetters.count).toBe(1);
    expect(localStats.queue.depth).toBe(0);
    const httpStats = parseJson<{
      deadLetters: { count: number; byDestination: Record<string, number> };
      queueDepth: number;
    }>(statsHttp.stdout, 'stats --json --url');
    expect(httpStats.deadLetters).toMatchObject({ count: 1, byDestination: { audit: 1 } });
    expect(httpStats.queueDepth).toBe(0);

    await stopService(service);
  }, 60_000);

  // A keep-alive connection busy when SIGTERM arrives must not hold the exit for Fastify's
  // keep-alive timeout (72 s): answers sent while shutting down carry `connection: close`.
  it('SIGTERM with keep-alive requests in flight still exits 0 promptly', async () => {
    const dir = tempDir();
    const service = await startService(dir);
    const secret = readSecret(dir);
    const burst = await sendBurst(service.url, secret, 'burst', 20);
    const racing = sendRacingWave(service.url, secret, 'racing', 10);
    await stopService(service);
    const raced = await racing;
    const acked = [...burst, ...raced.filter((r) => r.status === 202).map((r) => r.eventId)];
    const inspector = createProcessor({
      storage: { kind: 'sqlite', path: join(dir, 'steadfast.db') },
      logger: false,
    });
    try {
      const missing: string[] = [];
      for (const eventId of acked) if ((await inspector.getEvent(eventId)) === null) missing.push(eventId);
      expect(missing).toEqual([]);
    } finally {
      await inspector.stop();
    }
  }, 60_000);
});
