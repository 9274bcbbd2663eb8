/**
 * The HTTP ingest service for the benchmark, run in a process of its own so that it has its own
 * JavaScript thread, as in production, and the load generator (autocannon, in the benchmark's
 * process) does not share it:
 *
 *   node --import tsx bench/http-server.ts --db=/tmp/x/bench.db [--no-destination]
 *
 * The HMAC secret is read from STEADFAST_BENCH_SECRET. The server is built as `startService`
 * builds it (same `buildServer`, Prometheus metrics on, pino to stderr) on a processor
 * made as the other scenarios make theirs (`SqliteBackend` + `createProcessor`, `logger: false`);
 * the HTTP logger is at warn (the service's info adds one "listening" line; no request is logged at info);
 * unless --no-destination, one destination `sink` (concurrency 16, no-op async handler) is
 * started, so delivery runs alongside ingest as in a real service.
 *
 * Protocol: prints `{"event":"listening","port":N,...}` as one JSON line on stdout once it
 * listens. Stops on SIGTERM/SIGINT, or on the IPC message `{type:'stop'}` when started with
 * `fork`: closes the server, stops the processor (attempts in flight finish, up to 5 s), counts the
 * events the store holds and prints `{"event":"stopped",...}` on stdout (and sends it over IPC).
 * Over IPC, `{type:'mark'}` answers a `Mark`: cumulative CPU time, event-loop utilisation and
 * counters, so the benchmark can tell how busy the server was over a span.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { createProcessor, SqliteBackend } from '../src/index.js';
import { buildServer } from '../src/ingest/http/server.js';
import { REDACT_PATHS } from '../src/observability/logger.js';
import { createPrometheusMetrics } from '../src/observability/prometheus.js';

/** Cumulative figures at one moment; the benchmark subtracts two of them. */
export interface Mark {
  readonly type: 'mark';
  /** performance.now() of the server process, ms. */
  readonly atMs: number;
  /** process.cpuUsage(), microseconds. */
  readonly cpuUserUs: number;
  readonly cpuSystemUs: number;
  /** performance.eventLoopUtilization(), milliseconds. */
  readonly loopIdleMs: number;
  readonly loopActiveMs: number;
  /** Event-loop delay since the previous mark (ms): p99 and max, from monitorEventLoopDelay. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** Server-side time of the requests answered since the previous mark (ms): request received -> response sent. */
  readonly serverP50Ms: number;
  readonly serverP99Ms: number;
  /** `getMetrics().totalEvents`: events accepted (not duplicates) by this process. */
  readonly totalEvents: number;
  /** Calls of the destination's handler so far. */
  readonly delivered: number;
  /** The store's group commits so far, and the writes they carried (`SqliteBackend.commitStats`). */
  readonly commits: number;
  readonly writes: number;
}

export interface Stopped {
  readonly type: 'stopped';
  /** `getMetrics().totalEvents` just before stopping. */
  readonly totalEvents: number;
  /** Rows in the store's `events` table after the processor stopped. */
  readonly stored: number;
  /** Handler calls by the time the processor had stopped. */
  readonly delivered: number;
}

export interface Listening {
  readonly event: 'listening';
  readonly port: number;
  readonly destination: boolean;
}

function argValue(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

async function main(): Promise<void> {
  const dbPath = argValue('db');
  if (!dbPath) throw new Error('--db=<path of the SQLite file> is required');
  const secret = process.env.STEADFAST_BENCH_SECRET ?? '';
  if (secret.length < 16)
    throw new Error('STEADFAST_BENCH_SECRET must hold a secret of 16 characters or more');
  const withDestination = !process.argv.includes('--no-destination');

  const backend = new SqliteBackend({ path: dbPath });
  const processor = createProcessor({ backend, logger: false });
  let delivered = 0;
  if (withDestination) {
    processor.destination('sink', { concurrency: 16 }, async () => {
      delivered += 1;
    });
    await processor.start();
  }
  const metrics = createPrometheusMetrics(processor);
  const logger = pino({ name: 'steadfast', level: 'warn', redact: REDACT_PATHS }, pino.destination(2));
  const { app, lifecycle } = buildServer({
    processor,
    logger,
    metrics,
    settings: {
      hmacSecrets: [secret],
      adminToken: null,
      signatureRequired: true,
      signatureToleranceSeconds: 300,
      maxBodyBytes: 1_048_576,
      maxBatchEvents: 1000,
      rateLimit: { perIp: { ratePerSec: 0, burst: 0 }, perSecret: { ratePerSec: 0, burst: 0 } },
    },
  });
  let serverTimes: number[] = [];
  app.addHook('onResponse', (_request, reply, done) => {
    serverTimes.push(reply.elapsedTime);
    done();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  lifecycle.ready = true;
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP port');
  const listening: Listening = { event: 'listening', port: address.port, destination: withDestination };
  process.stdout.write(`${JSON.stringify(listening)}\n`);

  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const mark = async (): Promise<Mark> => {
    const cpu = process.cpuUsage();
    const loop = performance.eventLoopUtilization();
    const loopDelayP99Ms = loopDelay.percentile(99) / 1e6;
    const loopDelayMaxMs = loopDelay.max / 1e6;
    loopDelay.reset();
    const times = serverTimes.sort((a, b) => a - b);
    serverTimes = [];
    const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
    return {
      serverP50Ms: at(0.5),
      serverP99Ms: at(0.99),
      type: 'mark',
      atMs: performance.now(),
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      loopIdleMs: loop.idle,
      loopActiveMs: loop.active,
      loopDelayP99Ms,
      loopDelayMaxMs,
      totalEvents: (await processor.getMetrics()).totalEvents,
      delivered,
      commits: backend.commitStats.commits,
      writes: backend.commitStats.writes,
    };
  };

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      lifecycle.shuttingDown = true;
      lifecycle.ready = false;
      await app.close();
      const totalEvents = (await processor.getMetrics()).totalEvents;
      await processor.stop({ timeoutMs: 5_000 });
      metrics.close();
      const db = new Database(dbPath, { readonly: true });
      let stored: number;
      try {
        stored = Number(db.prepare('SELECT count(*) FROM events').pluck().get());
      } finally {
        db.close();
      }
      const stopped: Stopped = {
        type: 'stopped',
        totalEvents,
        stored,
        delivered,
      };
      process.stdout.write(`${JSON.stringify({ event: 'stopped', ...stopped })}\n`);
      if (process.send) {
        await new Promise<void>((resolve) => process.send?.(stopped, undefined, {}, () => resolve()));
        process.disconnect();
      }
    })();
    return stopping;
  };

  const stopAndExit = (): void => {
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stopAndExit);
  process.on('SIGINT', stopAndExit);
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'mark') {
      mark().then(
        (m) => process.send?.(m),
        (error: unknown) => console.error(error),
      );
    } else if (message.type === 'stop') {
      stopAndExit();
    }
  });
  // The benchmark went away without stopping us: stop rather than linger.
  process.on('disconnect', stopAndExit);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
