/**
 * HTTP ingest scenarios: the service (bench/http-server.ts) runs in a child process with a
 * fresh SQLite store; autocannon, in this process, sends it signed `POST /events` requests over
 * 127.0.0.1. Server and load generator thus each have a JavaScript thread (and, on a 2-core
 * machine, a core) of their own.
 *
 * Every request carries a body of its own (unique eventIds from a counter) and the
 * `x-hmac-signature` of exactly those bytes, all built before each run (`prebuilt`) and handed
 * out by autocannon's `setupRequest` (or the paced sender) as it sends.
 * Load runs are bounded by a request count (`amount`), not a duration: autocannon ends a timed
 * run by dropping the requests still in flight, which the server may have stored all the same,
 * so "acknowledged = stored" could not be checked exactly. The measured count is the warm-up's
 * rate times the wanted duration, so a run lasts about that long; a time limit stops a run that
 * would not end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { Listening, Mark, Stopped } from './http-server.js';
import { orderPayload } from './scenarios.js';
import { distribution, paced, withFreshStore, type Distribution } from './support.js';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER_SCRIPT = fileURLToPath(new URL('./http-server.ts', import.meta.url));
/** The signing secret shared by the benchmark and the server it starts (>= 16 characters). */
const SECRET = 'steadfast-bench-hmac-secret-0123456789';

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

export interface ServerOptions {
  /** One started destination (concurrency 16, no-op handler), or none. */
  readonly destination: boolean;
  /** Write a V8 CPU profile of the server process into this folder (`--cpu-prof`). */
  readonly cpuProfDir?: string;
}

interface ServerHandle {
  readonly port: number;
  readonly child: ChildProcess;
  mark(): Promise<Mark>;
  /** Stops the server and its processor; answers what the store holds afterwards. */
  stop(): Promise<Stopped>;
}

function startServer(dbPath: string, options: ServerOptions, timeoutMs = 30_000): Promise<ServerHandle> {
  const execArgv = ['--import', 'tsx'];
  if (options.cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
  const args = [`--db=${dbPath}`, ...(options.destination ? [] : ['--no-destination'])];
  const child = fork(SERVER_SCRIPT, args, {
    cwd: PROJECT_ROOT,
    execArgv,
    env: { ...process.env, STEADFAST_BENCH_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const marks: ((m: Mark) => void)[] = [];
  let onStopped: ((s: Stopped) => void) | null = null;
  let exited = false;
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exited = true;
      resolve(code);
    });
  });
  child.on('message', (message: Mark | Stopped) => {
    if (message.type === 'mark') marks.shift()?.(message);
    else if (message.type === 'stopped') onStopped?.(message);
  });

  return new Promise<ServerHandle>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the benchmark server did not listen within ${timeoutMs} ms`));
    }, timeoutMs);
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the benchmark server exited with code ${code} before listening`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let parsed: Partial<Listening> | null = null;
      try {
        parsed = JSON.parse(line) as Partial<Listening>;
      } catch {
        // not one of ours: pass it on
      }
      if (parsed?.event !== 'listening') {
        if (parsed?.event !== 'stopped') console.error(`[server] ${line}`);
        return;
      }
      clearTimeout(timer);
      const port = parsed.port ?? 0;
      resolve({
        port,
        child,
        mark: () =>
          new Promise<Mark>((done, fail) => {
            if (exited) return fail(new Error('the benchmark server has exited'));
            marks.push(done);
            child.send({ type: 'mark' });
          }),
        stop: () =>
          new Promise<Stopped>((done, fail) => {
            if (exited) return fail(new Error('the benchmark server has exited'));
            const limit = setTimeout(() => {
              child.kill('SIGKILL');
              fail(new Error('the benchmark server did not stop within 30 s'));
            }, 30_000);
            onStopped = (s) => {
              clearTimeout(limit);
              // Wait for the exit too, so that a CPU profile is complete when we return.
              void exit.then(() => done(s));
            };
            child.send({ type: 'stop' });
          }),
      });
    });
  });
}

async function withServer<T>(options: ServerOptions, fn: (server: ServerHandle) => Promise<T>): Promise<T> {
  return withFreshStore(async (dbPath) => {
    const server = await startServer(dbPath, options);
    try {
      return await fn(server);
    } finally {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Signed bodies
// ---------------------------------------------------------------------------------------------

export function sign(body: Buffer): string {
  return createHmac('sha256', SECRET).update(body).digest('hex');
}

interface SignedBody {
  readonly body: Buffer;
  readonly signature: string;
}

/**
 * `count` signed bodies built now, handed out in turn (then built on demand should a run ask for
 * more): serialising and signing belong to the load generator, not to the server under test,
 * and doing them before the run keeps the generator's own pauses out of the latencies.
 */
function prebuilt(make: () => Buffer, count: number): () => SignedBody {
  const sign1 = (): SignedBody => {
    const body = make();
    return { body, signature: sign(body) };
  };
  const bodies = Array.from({ length: count }, sign1);
  let next = 0;
  return () => bodies[next++] ?? sign1();
}

/** Answers a new body each call: one event, or `{ events: [...] }` of `batchSize` events. */
function bodyFactory(tag: string, batchSize: number | null): () => Buffer {
  let next = 0;
  const event = (): { eventId: string; type: string; payload: ReturnType<typeof orderPayload> } => {
    const i = next;
    next += 1;
    return { eventId: `${tag}-${i}`, type: 'order.placed', payload: orderPayload(i) };
  };
  if (batchSize === null) return () => Buffer.from(JSON.stringify(event()));
  return () => Buffer.from(JSON.stringify({ events: Array.from({ length: batchSize }, event) }));
}

// ---------------------------------------------------------------------------------------------
// One autocannon run
// ---------------------------------------------------------------------------------------------

export interface LoadRun {
  /** Requests sent (each body built is sent). */
  readonly sent: number;
  /** 2xx responses. */
  readonly ok: number;
  readonly non2xx: number;
  /** Connection errors and timeouts (autocannon counts timeouts as errors too). */
  readonly errors: number;
  readonly timeouts: number;
  /** Responses by status code. */
  readonly statusCodes: Readonly<Record<string, number>>;
  /** From starting autocannon to the last response. */
  readonly elapsedMs: number;
  /** 2xx responses per second over the second half of the run's responses (past any start-up). */
  readonly lateRatePerSec: number;
  /**
   * Per response (ms): autocannon times from the request written to the response complete; the
   * paced sender from its `http.request` call (the request may still wait for a free connection).
   */
  readonly latency: Distribution;
  /** Paced sender only: scheduled send time -> response complete (ms), free of coordinated omission. */
  readonly fromSchedule: Distribution | null;
  /** CPU time of this (the load generator's) process over the run, in cores. */
  readonly generatorCores: number;
  /** True when the time limit stopped the run before all `amount` requests were answered. */
  readonly cutShort: boolean;
}

interface LoadOptions {
  readonly port: number;
  readonly connections: number;
  readonly amount: number;
  /** autocannon `overallRate`: requests/s shared by all connections; absent = as fast as possible. */
  readonly overallRate?: number;
  /** The next request body and its signature, built before the run (see `prebuilt`). */
  readonly body: () => SignedBody;
  readonly limitMs: number;
}

function runLoad(options: LoadOptions): Promise<LoadRun> {
  return new Promise<LoadRun>((resolve, reject) => {
    let sent = 0;
    const latencies: number[] = [];
    const okAt: number[] = [];
    let lastResponseAt = NaN;
    let cutShort = false;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${options.port}`,
        connections: options.connections,
        pipelining: 1,
        amount: options.amount,
        ...(options.overallRate === undefined ? {} : { overallRate: options.overallRate }),
        timeout: 10,
        // How often autocannon checks whether it is done: a run ends at most this long after its last response.
        sampleInt: 50,
        requests: [
          {
            method: 'POST',
            path: '/events',
            setupRequest: (request) => {
              const { body, signature } = options.body();
              sent += 1;
              return {
                ...request,
                body,
                headers: {
                  ...request.headers,
                  'content-type': 'application/json',
                  'x-hmac-signature': signature,
                },
              };
            },
          },
        ],
      },
      (error: unknown, result: autocannon.Result) => {
        clearTimeout(limit);
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        const cpu = process.cpuUsage(cpuBefore);
        const elapsedMs = lastResponseAt - started;
        const half = Math.floor(okAt.length / 2);
        const lateSpan = (okAt[okAt.length - 1] ?? NaN) - (okAt[half] ?? NaN);
        const statusCodes: Record<string, number> = {};
        for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
          statusCodes[code] = stats.count ?? 0;
        }
        resolve({
          sent,
          ok: result['2xx'],
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          elapsedMs,
          lateRatePerSec: ((okAt.length - 1 - half) / lateSpan) * 1000,
          latency: distribution(latencies),
          fromSchedule: null,
          generatorCores: (cpu.user + cpu.system) / 1000 / (performance.now() - started),
          cutShort,
        });
      },
    );
    instance.on('response', (_client, status, _bytes, responseTime) => {
      lastResponseAt = performance.now();
      latencies.push(responseTime);
      if (status >= 200 && status < 300) okAt.push(lastResponseAt);
    });
    const limit = setTimeout(() => {
      cutShort = true;
      instance.stop();
    }, options.limitMs);
  });
}

/**
 * Open loop at an even rate: request i is sent at `start + i / rate` whatever happened to the
 * earlier ones (support.ts `paced`), over at most `connections` keep-alive connections of a
 * node:http Agent; a request finding them all busy waits in the agent's queue, and that wait
 * counts in `fromSchedule`. Not autocannon: its `overallRate` sends each connection's share of a
 * second back to back at the start of the second, so its "2,000 requests/s" arrive as bursts.
 */
async function runPaced(
  options: LoadOptions & { readonly overallRate: number; readonly agent: Agent },
): Promise<LoadRun> {
  const { amount } = options;
  const latencies = new Float64Array(amount);
  const fromSchedule = new Float64Array(amount);
  const statusCodes: Record<string, number> = {};
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  let answered = 0;
  let lastResponseAt = NaN;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const pending: Promise<void>[] = [];
  await paced(amount, 1000 / options.overallRate, (i, dueAt) => {
    const { body, signature } = options.body();
    sent += 1;
    const sentAt = performance.now();
    pending.push(
      new Promise<void>((resolve) => {
        const req = request(
          {
            agent: options.agent,
            host: '127.0.0.1',
            port: options.port,
            method: 'POST',
            path: '/events',
            headers: {
              'content-type': 'application/json',
              'content-length': body.length,
              'x-hmac-signature': signature,
            },
            timeout: 10_000,
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              const now = performance.now();
              lastResponseAt = now;
              latencies[answered] = now - sentAt;
              fromSchedule[answered] = now - dueAt;
              answered += 1;
              const status = res.statusCode ?? 0;
              statusCodes[status] = (statusCodes[status] ?? 0) + 1;
              if (status >= 200 && status < 300) ok += 1;
              else non2xx += 1;
              resolve();
            });
          },
        );
        req.on('timeout', () => {
          timeouts += 1;
          req.destroy(new Error('request timed out'));
        });
        req.on('error', () => {
          errors += 1;
          resolve();
        });
        req.end(body);
      }),
    );
  });
  let timer: NodeJS.Timeout | undefined;
  const cutShort = await Promise.race([
    Promise.all(pending).then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), options.limitMs))),
  ]);
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpuBefore);
  return {
    sent,
    ok,
    non2xx,
    errors,
    timeouts,
    statusCodes,
    elapsedMs: lastResponseAt - started,
    lateRatePerSec: NaN,
    latency: distribution(latencies.subarray(0, answered)),
    fromSchedule: distribution(fromSchedule.subarray(0, answered)),
    generatorCores: (cpu.user + cpu.system) / 1000 / (performance.now() - started),
    cutShort,
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

export interface HttpScenarioOptions {
  /** Events per request: null for single-event bodies, n for `{ events: [n events] }`. */
  readonly batchSize: number | null;
  readonly connections: number;
  readonly overallRate?: number;
  /** Who sends: autocannon, or the even open-loop sender (needs `overallRate`). */
  readonly sender: 'autocannon' | 'paced';
  /** Requests of warm-up (same connections and rate), left out of the figures. */
  readonly warmupRequests: number;
  /** Measured requests: a fixed count, or as many as the warm-up's rate makes last `seconds`. */
  readonly measure: { readonly requests: number } | { readonly seconds: number };
  readonly server: ServerOptions;
  /** Time limit of each load run. */
  readonly limitMs: number;
}

export interface HttpScenarioResult {
  readonly options: HttpScenarioOptions;
  readonly warmup: LoadRun;
  readonly measured: LoadRun;
  readonly requestsPerSec: number;
  readonly eventsPerSec: number;
  /** Events acknowledged with a 2xx (warm-up and measured runs). */
  readonly acknowledged: number;
  /** What the server reported after stopping: rows in the store, totalEvents, deliveries. */
  readonly stopped: Stopped;
  /** Server CPU time over the measured run, in cores, and its event-loop utilisation (0-1). */
  readonly serverCores: number;
  readonly serverLoopUtilisation: number;
  /** Handler calls during the measured run, per second (0 without a destination). */
  readonly deliveredPerSec: number;
  /** Group commits in the store during the measured run, and writes (ingests, claims, completions) they carried. */
  readonly commits: number;
  readonly writes: number;
  /** Server side, over the measured run: request received -> response sent (ms), and the longest event-loop delay. */
  readonly serverP50Ms: number;
  readonly serverP99Ms: number;
  readonly serverLoopDelayMaxMs: number;
}

export function httpScenario(options: HttpScenarioOptions): Promise<HttpScenarioResult> {
  const perRequest = options.batchSize ?? 1;
  return withServer(options.server, async (server) => {
    const tag = `bench-${process.pid}-${Date.now()}`;
    const body = bodyFactory(tag, options.batchSize);
    const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
    const load = (amount: number): Promise<LoadRun> => {
      const requests = Math.max(amount, options.connections);
      const common = {
        port: server.port,
        connections: options.connections,
        amount: requests,
        body: prebuilt(body, requests),
        limitMs: options.limitMs,
      };
      if (options.sender === 'autocannon') {
        return runLoad(
          options.overallRate === undefined ? common : { ...common, overallRate: options.overallRate },
        );
      }
      if (options.overallRate === undefined) throw new Error('the paced sender needs overallRate');
      return runPaced({ ...common, overallRate: options.overallRate, agent });
    };
    const warmup = await load(options.warmupRequests);
    const amount =
      'requests' in options.measure
        ? options.measure.requests
        : Math.round((warmup.lateRatePerSec || 1) * options.measure.seconds);
    const before = await server.mark();
    const measured = await load(amount);
    const after = await server.mark();
    agent.destroy();
    const stopped = await server.stop();
    const seconds = measured.elapsedMs / 1000;
    const cpuMs = (after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1000;
    const active = after.loopActiveMs - before.loopActiveMs;
    const idle = after.loopIdleMs - before.loopIdleMs;
    return {
      options,
      warmup,
      measured,
      requestsPerSec: measured.ok / seconds,
      eventsPerSec: (measured.ok * perRequest) / seconds,
      acknowledged: (warmup.ok + measured.ok) * perRequest,
      stopped,
      serverCores: cpuMs / (after.atMs - before.atMs),
      serverLoopUtilisation: active / (active + idle),
      deliveredPerSec: (after.delivered - before.delivered) / seconds,
      commits: after.commits - before.commits,
      writes: after.writes - before.writes,
      serverP50Ms: after.serverP50Ms,
      serverP99Ms: after.serverP99Ms,
      serverLoopDelayMaxMs: after.loopDelayMaxMs,
    };
  });
}
