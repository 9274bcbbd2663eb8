/**
 * Steadfast benchmark, embedded SQLite backend. Run with `npm run bench` (add `-- --quick` for a
 * smoke run with a tenth of the work, `-- --runs=N` to run each scenario N times; default 3, or 1
 * with --quick). Prints one table per scenario, then a Markdown summary with each target beside
 * its figure. Every figure is from the median run (by events/s, or by p99 for latency), and every
 * run's figure is printed too: on a shared VM, single runs vary by 10-20 %.
 *
 *   1. addEvent durable ingest, 1 and 64 concurrent callers   target >= 20,000 events/s at 64
 *   2. addEvents in batches of 500
 *   3. end to end: 64 producers -> one destination (concurrency 16, no-op handler)
 *                                                             target >= 10,000 events/s
 *   4. addEvent -> handler start at 1,000 events/s offered    target p99 < 10 ms
 *
 * HTTP ingest (bench/http-scenarios.ts): the service runs in a child process (bench/http-server.ts,
 * fresh store, one started destination); autocannon sends signed POST /events from this process.
 *   5. single-event requests, 64 connections, max throughput  target >= 5,000 requests/s
 *   6. ack latency at 2,000 requests/s offered, 64 connections target p99 < 10 ms
 *      (autocannon overallRate, and an evenly paced open-loop sender beside it)
 *   7. batches of 500 events, 8 connections                    target >= 30,000 events/s
 *
 * `-- --server-cpu-prof=DIR` writes a V8 CPU profile of every HTTP server process into DIR.
 * `-- --only=ingest,http-latency` runs only the named scenarios (ingest, batches, end-to-end,
 * latency, http-single, http-latency, http-batch).
 *
 * `-- --peers` runs only the peer comparison instead (bench/peers/main.ts): Steadfast on SQLite,
 * PostgreSQL and PostgreSQL + Redis against BullMQ, pg-boss and graphile-worker; `--quick` works
 * there too.
 */
import { readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { SqliteBackend } from '../src/index.js';
import {
  httpScenario,
  type HttpScenarioOptions,
  type HttpScenarioResult,
  type LoadRun,
} from './http-scenarios.js';
import {
  batchScenario,
  endToEndScenario,
  ingestScenario,
  latencyScenario,
  type CommitFigures,
  type IngestResult,
} from './scenarios.js';
import {
  distribution,
  fmt,
  machineFacts,
  markdownTable,
  section,
  withFreshStore,
  type Distribution,
} from './support.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const scale = (n: number): number => (quick ? Math.max(1, Math.round(n / 10)) : n);
/** Every scenario runs this many times (each on a fresh store); the median run is reported. */
const RUNS = parseRuns(args.find((a) => a.startsWith('--runs='))) ?? (quick ? 1 : 3);
const SCENARIOS = [
  'ingest',
  'batches',
  'end-to-end',
  'latency',
  'http-single',
  'http-latency',
  'http-batch',
] as const;
const ONLY = parseOnly(args.find((a) => a.startsWith('--only=')));
const SERVER_CPU_PROF = args
  .find((a) => a.startsWith('--server-cpu-prof='))
  ?.slice('--server-cpu-prof='.length);

function parseOnly(arg: string | undefined): ReadonlySet<string> {
  if (arg === undefined) return new Set(SCENARIOS);
  const names = arg
    .slice('--only='.length)
    .split(',')
    .filter((n) => n.length > 0);
  const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(`--only: unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`);
  return new Set(names);
}

function parseRuns(arg: string | undefined): number | null {
  if (arg === undefined) return null;
  const n = Number(arg.slice('--runs='.length));
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`--runs expects an integer 1-20, got ${arg}`);
  return n;
}

/**
 * Runs `scenario` RUNS times in a row; answers the median run by `score` (with an even count, the
 * worse of the two middle runs), every score, and every result.
 */
async function repeated<T>(
  scenario: () => Promise<T>,
  score: (result: T) => number,
  better: 'higher' | 'lower' = 'higher',
): Promise<{ median: T; rates: number[]; all: T[] }> {
  const results: T[] = [];
  for (let i = 0; i < RUNS; i += 1) results.push(await scenario());
  const worseFirst = [...results].sort((a, b) =>
    better === 'higher' ? score(a) - score(b) : score(b) - score(a),
  );
  const median = worseFirst[Math.floor((worseFirst.length - 1) / 2)] as T;
  return { median, rates: results.map(score), all: results };
}

function runsCell(rates: readonly number[]): string {
  return rates.map((r) => fmt.int(r)).join(' / ');
}

const PLAN = {
  ingestOneCaller: { callers: 1, events: scale(3_000), warmup: scale(200) },
  ingestManyCallers: { callers: 64, events: scale(50_000), warmup: scale(2_000) },
  batches: { batchSize: 500, events: scale(50_000), warmupBatches: quick ? 1 : 4 },
  endToEnd: { events: scale(30_000), producers: 64, concurrency: 16, warmup: scale(1_000) },
  latency: { ratePerSec: 1_000, durationMs: scale(5_000), warmupMs: scale(500), concurrency: 16 },
  timeoutMs: 120_000,
  http: {
    /** One started destination in the server (concurrency 16, no-op handler), as a real service has. */
    destination: true,
    single: { connections: 64, warmupRequests: scale(6_000), seconds: quick ? 0.5 : 5 },
    rate: { connections: 64, ratePerSec: 2_000, warmupRequests: scale(2_000), requests: scale(10_000) },
    batch: { connections: 8, batchSize: 500, warmupRequests: quick ? 8 : 40, seconds: quick ? 0.5 : 5 },
    /** Each load run is stopped after this long, whatever is left. */
    limitMs: 30_000,
  },
} as const;

const TARGETS = {
  ingest64: 20_000,
  endToEnd: 10_000,
  latencyP99Ms: 10,
  httpSingle: 5_000,
  httpLatencyP99Ms: 10,
  httpBatch: 30_000,
} as const;

interface SummaryRow {
  readonly scenario: string;
  readonly result: string;
  readonly target: string;
  readonly status: 'PASS' | 'MISS' | '—';
}

const summary: SummaryRow[] = [];

function atLeast(value: number, target: number): 'PASS' | 'MISS' {
  return value >= target ? 'PASS' : 'MISS';
}

function below(value: number, target: number): 'PASS' | 'MISS' {
  return value < target ? 'PASS' : 'MISS';
}

function perCommit(c: CommitFigures): string {
  return c.commits > 0 ? fmt.one(c.writes / c.commits) : 'n/a';
}

/** Kilobytes written to storage per event (WAL frames, checkpoints), where the OS tells. */
function diskPerEvent(c: CommitFigures, events: number): string {
  return c.diskBytes === null ? 'n/a' : fmt.one(c.diskBytes / 1024 / events);
}

function latencyRow(label: string, d: Distribution): string[] {
  return [label, fmt.ms(d.p50), fmt.ms(d.p90), fmt.ms(d.p99), fmt.ms(d.max), fmt.ms(d.mean)];
}

const LATENCY_HEADERS = ['ms', 'p50', 'p90', 'p99', 'max', 'mean'];

// ---------------------------------------------------------------------------------------------
// Machine facts
// ---------------------------------------------------------------------------------------------

/** Whole-machine CPU time counters from /proc/stat (Linux), or null elsewhere. */
function readCpuTimes(): { total: number; idle: number; steal: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    if (fields.length < 8 || fields.some((f) => !Number.isFinite(f))) return null;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, idle: (fields[3] ?? 0) + (fields[4] ?? 0), steal: fields[7] ?? 0 };
  } catch {
    return null;
  }
}

/** Share of machine CPU time stolen by the hypervisor and spent busy, between two readings. */
function describeCpuUse(before: ReturnType<typeof readCpuTimes>): string {
  const after = readCpuTimes();
  if (!before || !after || after.total <= before.total) return 'not available';
  const total = after.total - before.total;
  const pct = (n: number): string => `${fmt.one((100 * n) / total)} %`;
  return `busy ${pct(total - (after.idle - before.idle) - (after.steal - before.steal))}, stolen by the hypervisor ${pct(after.steal - before.steal)} (all CPUs)`;
}

/** Reads the settings of the connection the backend really uses. */
async function probeBackendSettings(): Promise<{ journalMode: string; synchronous: string }> {
  return withFreshStore(async (dbPath) => {
    const backend = new SqliteBackend({ path: dbPath });
    await backend.open();
    try {
      return backend.storageSettings();
    } finally {
      await backend.close();
    }
  });
}

/**
 * The floor under every durable ingest: one single-row SQLite commit in WAL mode with
 * synchronous=FULL (one fsync of the WAL), timed without Steadfast in the way.
 */
async function probeRawCommit(commits: number): Promise<{ version: string; latency: Distribution }> {
  return withFreshStore(async (dbPath) => {
    const db = new Database(dbPath);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
      const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
      const times = new Float64Array(commits);
      for (let i = 0; i < commits; i += 1) {
        const started = performance.now();
        insert.run(`row ${i}`);
        times[i] = performance.now() - started;
      }
      const version = String(db.prepare('SELECT sqlite_version() AS v').pluck().get());
      return { version, latency: distribution(times) };
    } finally {
      db.close();
    }
  });
}

async function printMachine(): Promise<void> {
  const settings = await probeBackendSettings();
  const raw = await probeRawCommit(quick ? 300 : 3000);
  console.log('# Steadfast benchmark — embedded SQLite backend');
  if (quick) console.log('\n**--quick run: every count divided by 10; figures are a smoke test only.**');
  section('Machine');
  console.log(
    markdownTable(
      ['fact', 'value'],
      [
        ...machineFacts(),
        ['SQLite', `${raw.version} (better-sqlite3), files under ${tmpdir()}`],
        [
          'store settings',
          `journal_mode=${settings.journalMode}, synchronous=${settings.synchronous} (read from the backend's own connection)`,
        ],
        [
          'raw FULL commit',
          `p50 ${fmt.ms(raw.latency.p50)} ms, p99 ${fmt.ms(raw.latency.p99)} ms, max ${fmt.ms(raw.latency.max)} ms ` +
            `(${fmt.int(raw.latency.count)} single-row commits, no Steadfast; the max is this disk's fsync tail)`,
        ],
      ],
      ['left', 'left'],
    ),
  );
  console.log(
    '\nEvery ingest is on disk before it is acknowledged. Group commit: the writes of one event-loop turn share one' +
      '\ncommit and one fdatasync of the WAL on the thread pool; writes arriving while it runs commit together after it' +
      '\n(write-queue.ts). Bookkeeping (claims, completions) does not wait for a sync.',
  );
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

function ingestRow(r: IngestResult, rates: readonly number[]): string[] {
  return [
    String(r.callers),
    fmt.int(r.events),
    fmt.seconds(r.elapsedMs),
    fmt.int(r.eventsPerSec),
    runsCell(rates),
    fmt.ms(r.latency.p50),
    fmt.ms(r.latency.p99),
    fmt.ms(r.latency.max),
    fmt.int(r.commits.commits),
    perCommit(r.commits),
    diskPerEvent(r.commits, r.events),
  ];
}

function runsNote(unit = 'events/s'): string {
  return RUNS > 1
    ? `Each row is the median of ${RUNS} runs, each on a fresh store; "all runs" lists every run's ${unit}.\n`
    : '';
}

async function runIngest(): Promise<void> {
  section('1. addEvent durable ingest (no delivery running)');
  console.log(
    'Closed loop: each caller awaits its addEvent (durable commit) before the next. One destination is\n' +
      'declared, so every event also writes its delivery row, but the processor is not started.\n' +
      runsNote(),
  );
  const one = await repeated(
    () =>
      ingestScenario(PLAN.ingestOneCaller.callers, PLAN.ingestOneCaller.events, PLAN.ingestOneCaller.warmup),
    (r) => r.eventsPerSec,
  );
  const many = await repeated(
    () =>
      ingestScenario(
        PLAN.ingestManyCallers.callers,
        PLAN.ingestManyCallers.events,
        PLAN.ingestManyCallers.warmup,
      ),
    (r) => r.eventsPerSec,
  );
  console.log(
    markdownTable(
      [
        'callers',
        'events',
        'time',
        'events/s',
        'all runs',
        'call p50 ms',
        'call p99 ms',
        'call max ms',
        'commits',
        'events/commit',
        'disk KB/event',
      ],
      [ingestRow(one.median, one.rates), ingestRow(many.median, many.rates)],
    ),
  );
  summary.push(
    {
      scenario: 'addEvent, 1 caller',
      result: `${fmt.int(one.median.eventsPerSec)} events/s`,
      target: '—',
      status: '—',
    },
    {
      scenario: 'addEvent, 64 callers',
      result: `${fmt.int(many.median.eventsPerSec)} events/s`,
      target: `≥ ${fmt.int(TARGETS.ingest64)} events/s`,
      status: atLeast(many.median.eventsPerSec, TARGETS.ingest64),
    },
  );
}

async function runBatches(): Promise<void> {
  const plan = PLAN.batches;
  section(`2. addEvents in batches of ${plan.batchSize}`);
  console.log('One caller; each batch is one transaction, awaited before the next.\n' + runsNote());
  const { median: r, rates } = await repeated(
    () => batchScenario(plan.batchSize, plan.events, plan.warmupBatches),
    (x) => x.eventsPerSec,
  );
  console.log(
    markdownTable(
      [
        'batch size',
        'batches',
        'events',
        'time',
        'events/s',
        'all runs',
        'batch p50 ms',
        'batch p99 ms',
        'batch max ms',
        'disk KB/event',
      ],
      [
        [
          String(r.batchSize),
          fmt.int(r.batches),
          fmt.int(r.events),
          fmt.seconds(r.elapsedMs),
          fmt.int(r.eventsPerSec),
          runsCell(rates),
          fmt.ms(r.latency.p50),
          fmt.ms(r.latency.p99),
          fmt.ms(r.latency.max),
          diskPerEvent(r.commits, r.events),
        ],
      ],
    ),
  );
  summary.push({
    scenario: `addEvents, batches of ${r.batchSize}`,
    result: `${fmt.int(r.eventsPerSec)} events/s`,
    target: '—',
    status: '—',
  });
}

async function runEndToEnd(): Promise<void> {
  const plan = PLAN.endToEnd;
  section('3. End to end: addEvent -> handler');
  console.log(
    `${plan.producers} concurrent producers add ${fmt.int(plan.events)} events to a started processor with one\n` +
      `destination (concurrency ${plan.concurrency}, no-op async handler). Timed from the first addEvent until the\n` +
      `handler has been called for every event (after a ${fmt.int(plan.warmup)}-event warm-up).\n` +
      runsNote(),
  );
  const { median: r, rates } = await repeated(
    () => endToEndScenario(plan.events, plan.producers, plan.concurrency, plan.warmup, PLAN.timeoutMs),
    (x) => x.eventsPerSec,
  );
  console.log(
    markdownTable(
      ['metric', 'value'],
      [
        ['events', fmt.int(r.events)],
        ['handler calls', fmt.int(r.handlerCalls)],
        ['all addEvent calls resolved after', fmt.seconds(r.ingestMs)],
        ['handler called for all after', fmt.seconds(r.elapsedMs)],
        ['all successes recorded after', fmt.seconds(r.settledMs)],
        ['end-to-end throughput', `${fmt.int(r.eventsPerSec)} events/s`],
        ['end-to-end throughput, all runs', `${runsCell(rates)} events/s`],
        ['ingest throughput meanwhile', `${fmt.int((r.events / r.ingestMs) * 1000)} events/s`],
        ['commits (ingest + claims + completions)', fmt.int(r.commits.commits)],
        ['writes per commit', perCommit(r.commits)],
        ['written to storage per event', `${diskPerEvent(r.commits, r.events)} KB`],
      ],
    ),
  );
  summary.push({
    scenario: `end to end, ${plan.producers} producers, concurrency ${plan.concurrency}`,
    result: `${fmt.int(r.eventsPerSec)} events/s`,
    target: `≥ ${fmt.int(TARGETS.endToEnd)} events/s`,
    status: atLeast(r.eventsPerSec, TARGETS.endToEnd),
  });
}

async function runLatency(): Promise<void> {
  const plan = PLAN.latency;
  section(`4. Latency addEvent -> handler start at ${fmt.int(plan.ratePerSec)} events/s offered`);
  console.log(
    `Open loop: one addEvent every ${fmt.ms(1000 / plan.ratePerSec)} ms for ${fmt.seconds(plan.durationMs)} ` +
      `(after ${fmt.seconds(plan.warmupMs)} of warm-up), never waiting for earlier calls;\n` +
      `destination concurrency ${plan.concurrency}, no-op handler. "send" is performance.now() just before addEvent,\n` +
      `"scheduled" the time the pacing loop meant to send it; the handler reads performance.now() on entry.\n` +
      (RUNS > 1
        ? `The table is the run with the median p99 of ${RUNS} runs, each on a fresh store; all runs are listed below it.\n`
        : ''),
  );
  const { median: r, all } = await repeated(
    () => latencyScenario(plan.ratePerSec, plan.durationMs, plan.warmupMs, plan.concurrency, PLAN.timeoutMs),
    (x) => x.sendToHandler.p99,
    'lower',
  );
  console.log(
    markdownTable(LATENCY_HEADERS, [
      latencyRow('send -> handler start (target)', r.sendToHandler),
      latencyRow('scheduled -> handler start', r.dueToHandler),
      latencyRow('send -> addEvent resolved', r.commit),
      latencyRow('send lag behind schedule', r.sendLag),
    ]),
  );
  console.log(
    `\n${fmt.int(r.events)} events measured; the offered load took ${fmt.seconds(r.offeredMs)} (incl. warm-up); ` +
      `${fmt.int(r.commits.commits)} commits (${perCommit(r.commits)} writes each); ` +
      `${diskPerEvent(r.commits, r.events)} KB written to storage per event;\n` +
      `event-loop delay p50 ${fmt.ms(r.loopDelay.p50)} / p99 ${fmt.ms(r.loopDelay.p99)} / max ${fmt.ms(r.loopDelay.max)} ms; ` +
      `${r.errors} failed addEvent calls.`,
  );
  if (RUNS > 1) {
    console.log('');
    console.log(
      markdownTable(
        ['run', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'longest event-loop stall ms'],
        all.map((x, i) => [
          String(i + 1),
          fmt.ms(x.sendToHandler.p50),
          fmt.ms(x.sendToHandler.p90),
          fmt.ms(x.sendToHandler.p99),
          fmt.ms(x.sendToHandler.max),
          fmt.ms(x.loopDelay.max),
        ]),
      ),
    );
  }
  const rate = fmt.int(plan.ratePerSec);
  summary.push(
    {
      scenario: `latency p50 at ${rate}/s`,
      result: `${fmt.ms(r.sendToHandler.p50)} ms`,
      target: '—',
      status: '—',
    },
    {
      scenario: `latency p90 at ${rate}/s`,
      result: `${fmt.ms(r.sendToHandler.p90)} ms`,
      target: '—',
      status: '—',
    },
    {
      scenario: `latency p99 at ${rate}/s`,
      result: `${fmt.ms(r.sendToHandler.p99)} ms`,
      target: `< ${TARGETS.latencyP99Ms} ms`,
      status: below(r.sendToHandler.p99, TARGETS.latencyP99Ms),
    },
    {
      scenario: `latency max at ${rate}/s`,
      result: `${fmt.ms(r.sendToHandler.max)} ms`,
      target: '—',
      status: '—',
    },
  );
}

// ---------------------------------------------------------------------------------------------
// HTTP ingest
// ---------------------------------------------------------------------------------------------

/** Every HTTP run, for the check that each stored exactly what it acknowledged. */
const httpRuns: { readonly scenario: string; readonly result: HttpScenarioResult }[] = [];

function httpRunsOf(
  scenario: string,
  options: HttpScenarioOptions,
  score: (r: HttpScenarioResult) => number,
  better: 'higher' | 'lower' = 'higher',
): Promise<{ median: HttpScenarioResult; rates: number[]; all: HttpScenarioResult[] }> {
  return repeated(
    async () => {
      const result = await httpScenario(options);
      httpRuns.push({ scenario, result });
      return result;
    },
    score,
    better,
  );
}

function serverOptions(): HttpScenarioOptions['server'] {
  return {
    destination: PLAN.http.destination,
    ...(SERVER_CPU_PROF === undefined ? {} : { cpuProfDir: SERVER_CPU_PROF }),
  };
}

function httpSetup(): string {
  return (
    'The service runs in a child process (`node --import tsx bench/http-server.ts`): `buildServer` as `startService`\n' +
    'builds it (Prometheus metrics on, rate limits off, signatures required), on a fresh SQLite store per run, with\n' +
    (PLAN.http.destination
      ? 'one started destination (concurrency 16, no-op async handler), so delivery runs alongside ingest.\n'
      : 'no destination: nothing is delivered.\n') +
    'The load generator runs in this process, so server and generator each have a thread (and here a core).\n' +
    'Every request is `POST /events` to 127.0.0.1 with a body of its own (unique eventIds) and the\n' +
    '`x-hmac-signature` of those bytes, built and signed before the run. Runs are bounded by a request count so that nothing is in flight when\n' +
    'they end; "acknowledged" counts events in 2xx responses (warm-up included), "stored" the rows of the\n' +
    "store's events table after the server stopped.\n"
  );
}

/** "0" or "3 (500: 2, 503: 1)" */
function non2xxCell(run: LoadRun): string {
  const other = Object.entries(run.statusCodes).filter(([code]) => !code.startsWith('2'));
  const detail = other.length > 0 ? ` (${other.map(([c, n]) => `${c}: ${n}`).join(', ')})` : '';
  const errors = run.errors > 0 ? `, ${run.errors} errors (${run.timeouts} timeouts)` : '';
  return `${fmt.int(run.non2xx)}${detail}${errors}`;
}

function serverCells(r: HttpScenarioResult): string[] {
  return [
    fmt.ms(r.serverCores),
    `${fmt.int(r.serverLoopUtilisation * 100)} %`,
    fmt.ms(r.measured.generatorCores),
    r.commits > 0 ? fmt.one(r.writes / r.commits) : 'n/a',
    fmt.int(r.deliveredPerSec),
  ];
}

const SERVER_HEADERS = [
  'server CPU cores',
  'server loop busy',
  'generator CPU cores',
  'writes/commit',
  'delivered/s',
];

function storedLine(r: HttpScenarioResult): string {
  const delivered = PLAN.http.destination ? `; ${fmt.int(r.stopped.delivered)} delivered by the stop` : '';
  return (
    `acknowledged ${fmt.int(r.acknowledged)}, stored ${fmt.int(r.stopped.stored)} ` +
    `(getMetrics().totalEvents ${fmt.int(r.stopped.totalEvents)})${delivered}` +
    `${r.measured.cutShort ? ' — the run hit its time limit' : ''}`
  );
}

function printStored(all: readonly HttpScenarioResult[]): void {
  console.log('');
  all.forEach((r, i) => console.log(`Run ${i + 1}: ${storedLine(r)}.`));
}

async function runHttpSingle(): Promise<void> {
  const plan = PLAN.http.single;
  section(`5. HTTP: signed single-event ingest, ${plan.connections} connections, max throughput`);
  console.log(
    httpSetup() +
      `autocannon, ${plan.connections} connections, no pipelining, as fast as answers come: ${fmt.int(plan.warmupRequests)} ` +
      `requests of warm-up, then as many as the warm-up's\nrate makes last about ${plan.seconds} s. ` +
      "Latency is autocannon's per request: written to the socket -> response complete.\n" +
      runsNote('requests/s'),
  );
  const {
    median: r,
    rates,
    all,
  } = await httpRunsOf(
    'single',
    {
      sender: 'autocannon',
      batchSize: null,
      connections: plan.connections,
      warmupRequests: plan.warmupRequests,
      measure: { seconds: plan.seconds },
      server: serverOptions(),
      limitMs: PLAN.http.limitMs,
    },
    (x) => x.requestsPerSec,
  );
  const m = r.measured;
  console.log(
    markdownTable(
      [
        'requests',
        'time',
        'requests/s',
        'all runs',
        'p50 ms',
        'p99 ms',
        'max ms',
        'non-2xx',
        ...SERVER_HEADERS,
      ],
      [
        [
          fmt.int(m.ok),
          fmt.seconds(m.elapsedMs),
          fmt.int(r.requestsPerSec),
          runsCell(rates),
          fmt.ms(m.latency.p50),
          fmt.ms(m.latency.p99),
          fmt.ms(m.latency.max),
          non2xxCell(m),
          ...serverCells(r),
        ],
      ],
    ),
  );
  printStored(all);
  summary.push(
    {
      scenario: `HTTP signed single events, ${plan.connections} connections`,
      result: `${fmt.int(r.requestsPerSec)} requests/s`,
      target: `≥ ${fmt.int(TARGETS.httpSingle)} requests/s`,
      status: atLeast(r.requestsPerSec, TARGETS.httpSingle),
    },
    {
      scenario: `HTTP signed single events, p50 / p99`,
      result: `${fmt.ms(m.latency.p50)} / ${fmt.ms(m.latency.p99)} ms`,
      target: '—',
      status: '—',
    },
  );
}

async function runHttpLatency(): Promise<void> {
  const plan = PLAN.http.rate;
  const rate = fmt.int(plan.ratePerSec);
  section(`6. HTTP: ack latency at ${rate} requests/s offered, ${plan.connections} connections`);
  console.log(
    'Server, requests and checks as in 5.\n' +
      `Signed single-event requests, ${fmt.int(plan.warmupRequests)} of warm-up then ${fmt.int(plan.requests)} measured ` +
      `(${fmt.seconds((plan.requests / plan.ratePerSec) * 1000)}), two senders, each on a server of its own:\n` +
      `- autocannon with overallRate ${plan.ratePerSec}: it gives each connection a quota per second (${fmt.int(plan.ratePerSec / plan.connections)}/s) and sends\n` +
      '  it back to back from the start of each second, so the load arrives as a burst at up to 64 in flight\n' +
      '  early in each second, then nothing. Latency: written to the socket -> response complete.\n' +
      `- evenly paced: one request every ${fmt.ms(1000 / plan.ratePerSec)} ms (node:http keep-alive agent, at most ${plan.connections} connections),\n` +
      '  open loop; latency from the scheduled send time, so waiting for a free connection counts too.\n' +
      (RUNS > 1 ? `Each row is the run with the median p99 of ${RUNS}; all runs are listed below.\n` : ''),
  );
  const base = {
    batchSize: null,
    connections: plan.connections,
    overallRate: plan.ratePerSec,
    warmupRequests: plan.warmupRequests,
    measure: { requests: plan.requests },
    server: serverOptions(),
    limitMs: PLAN.http.limitMs,
  } as const;
  const bursty = await httpRunsOf(
    'latency, autocannon',
    { ...base, sender: 'autocannon' },
    (x) => x.measured.latency.p99,
    'lower',
  );
  const even = await httpRunsOf(
    'latency, paced',
    { ...base, sender: 'paced' },
    (x) => (x.measured.fromSchedule ?? x.measured.latency).p99,
    'lower',
  );
  const a = bursty.median;
  const e = even.median;
  const evenLatency = e.measured.fromSchedule ?? e.measured.latency;
  console.log(
    markdownTable(
      [...LATENCY_HEADERS, 'requests/s', 'non-2xx', ...SERVER_HEADERS],
      [
        [
          ...latencyRow('autocannon overallRate: written -> response', a.measured.latency),
          fmt.int(a.requestsPerSec),
          non2xxCell(a.measured),
          ...serverCells(a),
        ],
        [
          ...latencyRow('evenly paced: scheduled -> response', evenLatency),
          fmt.int(e.requestsPerSec),
          non2xxCell(e.measured),
          ...serverCells(e),
        ],
        [
          ...latencyRow('evenly paced: request call -> response', e.measured.latency),
          '',
          '',
          '',
          '',
          '',
          '',
          '',
        ],
      ],
    ),
  );
  if (RUNS > 1) {
    console.log('');
    console.log(
      markdownTable(
        [
          'run',
          'sender',
          'p50 ms',
          'p90 ms',
          'p99 ms',
          'max ms',
          'server p50 / p99 ms',
          'server loop delay max ms',
          'server loop busy',
          'writes/commit',
        ],
        [
          ...bursty.all.map((x, i) => ({ x, i, sender: 'autocannon', d: x.measured.latency })),
          ...even.all.map((x, i) => ({
            x,
            i,
            sender: 'paced',
            d: x.measured.fromSchedule ?? x.measured.latency,
          })),
        ].map(({ x, i, sender, d }) => [
          String(i + 1),
          sender,
          fmt.ms(d.p50),
          fmt.ms(d.p90),
          fmt.ms(d.p99),
          fmt.ms(d.max),
          `${fmt.ms(x.serverP50Ms)} / ${fmt.ms(x.serverP99Ms)}`,
          fmt.ms(x.serverLoopDelayMaxMs),
          `${fmt.int(x.serverLoopUtilisation * 100)} %`,
          x.commits > 0 ? fmt.one(x.writes / x.commits) : 'n/a',
        ]),
        ['left', 'left'],
      ),
    );
  }
  console.log('\nautocannon:');
  printStored(bursty.all);
  console.log('\nevenly paced:');
  printStored(even.all);
  summary.push(
    {
      scenario: `HTTP ack latency at ${rate}/s (autocannon), p50 / p90`,
      result: `${fmt.ms(a.measured.latency.p50)} / ${fmt.ms(a.measured.latency.p90)} ms`,
      target: '—',
      status: '—',
    },
    {
      scenario: `HTTP ack latency at ${rate}/s (autocannon), p99`,
      result: `${fmt.ms(a.measured.latency.p99)} ms`,
      target: `< ${TARGETS.httpLatencyP99Ms} ms`,
      status: below(a.measured.latency.p99, TARGETS.httpLatencyP99Ms),
    },
    {
      scenario: `HTTP ack latency at ${rate}/s (autocannon), max`,
      result: `${fmt.ms(a.measured.latency.max)} ms`,
      target: '—',
      status: '—',
    },
    {
      scenario: `HTTP ack latency at ${rate}/s (evenly paced), p50 / p90`,
      result: `${fmt.ms(evenLatency.p50)} / ${fmt.ms(evenLatency.p90)} ms`,
      target: '—',
      status: '—',
    },
    {
      scenario: `HTTP ack latency at ${rate}/s (evenly paced), p99`,
      result: `${fmt.ms(evenLatency.p99)} ms`,
      target: `< ${TARGETS.httpLatencyP99Ms} ms`,
      status: below(evenLatency.p99, TARGETS.httpLatencyP99Ms),
    },
    {
      scenario: `HTTP ack latency at ${rate}/s (evenly paced), max`,
      result: `${fmt.ms(evenLatency.max)} ms`,
      target: '—',
      status: '—',
    },
  );
}

async function runHttpBatch(): Promise<void> {
  const plan = PLAN.http.batch;
  section(`7. HTTP: signed batches of ${plan.batchSize} events, ${plan.connections} connections`);
  console.log(
    'Server, requests and checks as in 5.\n' +
      `autocannon, ${plan.connections} connections, bodies \`{ "events": [${plan.batchSize} events] }\` (~${fmt.int((plan.batchSize * 150) / 1000)} KB), as fast as answers come:\n` +
      `${plan.warmupRequests} requests of warm-up, then as many as make about ${plan.seconds} s. events/s = 2xx responses × ${plan.batchSize} / time.\n` +
      runsNote(),
  );
  const {
    median: r,
    rates,
    all,
  } = await httpRunsOf(
    'batch',
    {
      sender: 'autocannon',
      batchSize: plan.batchSize,
      connections: plan.connections,
      warmupRequests: plan.warmupRequests,
      measure: { seconds: plan.seconds },
      server: serverOptions(),
      limitMs: PLAN.http.limitMs,
    },
    (x) => x.eventsPerSec,
  );
  const m = r.measured;
  console.log(
    markdownTable(
      [
        'requests',
        'events',
        'time',
        'events/s',
        'all runs',
        'request p50 ms',
        'request p99 ms',
        'non-2xx',
        ...SERVER_HEADERS,
      ],
      [
        [
          fmt.int(m.ok),
          fmt.int(m.ok * plan.batchSize),
          fmt.seconds(m.elapsedMs),
          fmt.int(r.eventsPerSec),
          runsCell(rates),
          fmt.ms(m.latency.p50),
          fmt.ms(m.latency.p99),
          non2xxCell(m),
          ...serverCells(r),
        ],
      ],
    ),
  );
  printStored(all);
  summary.push({
    scenario: `HTTP signed batches of ${plan.batchSize}, ${plan.connections} connections`,
    result: `${fmt.int(r.eventsPerSec)} events/s`,
    target: `≥ ${fmt.int(TARGETS.httpBatch)} events/s`,
    status: atLeast(r.eventsPerSec, TARGETS.httpBatch),
  });
}

/** One summary row: every HTTP run answered 2xx only and stored exactly what it acknowledged. */
function checkHttpRuns(): void {
  const non2xx = httpRuns.reduce(
    (n, { result }) =>
      n + result.warmup.non2xx + result.measured.non2xx + result.warmup.errors + result.measured.errors,
    0,
  );
  const mismatched = httpRuns.filter(({ result }) => result.stopped.stored !== result.acknowledged);
  const matching = httpRuns.length - mismatched.length;
  for (const { scenario, result } of mismatched) {
    console.log(`\nMISMATCH in HTTP ${scenario}: ${storedLine(result)}.`);
  }
  const acknowledged = httpRuns.reduce((n, { result }) => n + result.acknowledged, 0);
  summary.push({
    scenario: 'HTTP runs: non-2xx + errors; stored = acknowledged',
    result: `${fmt.int(non2xx)}; ${matching} of ${httpRuns.length} runs (${fmt.int(acknowledged)} events)`,
    target: `0; all ${httpRuns.length}`,
    status: non2xx === 0 && matching === httpRuns.length ? 'PASS' : 'MISS',
  });
}

function printSummary(): void {
  const cpuList = cpus();
  section('Summary (Markdown)');
  console.log(
    `Steadfast ${quick ? '(--quick) ' : ''}on ${cpuList[0]?.model.trim() ?? 'unknown CPU'} × ${cpuList.length}, ` +
      `Node ${process.version}, SQLite WAL, every ingest fsynced before its acknowledgement` +
      `${RUNS > 1 ? `; each figure is from the median of ${RUNS} runs` : ''}.\n`,
  );
  console.log(
    markdownTable(
      ['Scenario', 'Result', 'Target', 'Status'],
      summary.map((row) => [row.scenario, row.result, row.target, row.status]),
      ['left', 'right', 'right', 'left'],
    ),
  );
  const missed = summary.filter((row) => row.status === 'MISS').length;
  console.log(`\n${missed === 0 ? 'All targets met.' : `${missed} target(s) missed.`}`);
}

async function main(): Promise<void> {
  if (args.includes('--peers')) {
    // Loaded only here: the peers need PostgreSQL and Redis, the scenarios below do not.
    const { runPeers } = await import('./peers/main.js');
    await runPeers(args);
    return;
  }
  const started = performance.now();
  const cpuBefore = readCpuTimes();
  await printMachine();
  if (ONLY.has('ingest')) await runIngest();
  if (ONLY.has('batches')) await runBatches();
  if (ONLY.has('end-to-end')) await runEndToEnd();
  if (ONLY.has('latency')) await runLatency();
  if (ONLY.has('http-single')) await runHttpSingle();
  if (ONLY.has('http-latency')) await runHttpLatency();
  if (ONLY.has('http-batch')) await runHttpBatch();
  if (httpRuns.length > 0) checkHttpRuns();
  printSummary();
  console.log(
    `\nBenchmark took ${fmt.seconds(performance.now() - started)}; machine CPU meanwhile: ${describeCpuUse(cpuBefore)}.`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
