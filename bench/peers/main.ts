/**
 * `npm run bench -- --peers`: the standard peer workload on an in-memory ceiling (no queue: the
 * handler and producer alone), Steadfast (sqlite, postgres, postgres + redis) and, in the same run, on BullMQ (Redis as started for development, and again
 * with appendfsync always), pg-boss and graphile-worker; one system at a time, each run on fresh
 * state that is removed afterwards. Prints one table per variant, then the targets.
 *
 *   --quick                      every count divided by 10 (a smoke run)
 *   --peers-systems=a,b          only these systems (ids: see SYSTEMS below)
 *   --peers-variants=a,b         only these variants (single, inflight, batch, failures)
 *
 * Workload: 20,000 events of about 300 bytes (eventId, type, key, payload); one destination at
 * concurrency 16 whose handler inserts the event into `sink_events(event_id uuid primary key,
 * body jsonb)` through a pool of 10. Variants: one producer awaiting each add; 16 adds in flight;
 * batches of 1,000; and 16 in flight where 10 % fail twice and 1 % always fail (3 attempts,
 * exponential backoff from 10 ms).
 */
import { cpus } from 'node:os';
import { fmt, machineFacts, markdownTable, section } from '../support.js';
import { bullmqSystems, redisFacts } from './bullmq.js';
import { graphileWorkerSystem } from './graphile-worker.js';
import { memorySystem } from './memory.js';
import { pgBossSystem } from './pg-boss.js';
import { withAdmin } from './services.js';
import { steadfastSystems } from './steadfast.js';
import type { SystemFactory } from './system.js';
import {
  CONSUMER,
  runVariant,
  Sink,
  SINK_POOL_SIZE,
  type RunLimits,
  type RunResult,
  type VariantName,
  type VariantPlan,
} from './workload.js';

const SYSTEMS: readonly SystemFactory[] = [
  memorySystem,
  ...steadfastSystems,
  ...bullmqSystems,
  pgBossSystem,
  graphileWorkerSystem,
];

const FULL_EVENTS = 20_000;

function variants(events: number): VariantPlan[] {
  return [
    {
      name: 'single',
      title: 'one producer, each add awaited',
      events,
      producer: { kind: 'single' },
      failures: false,
    },
    {
      name: 'inflight',
      title: '16 adds in flight',
      events,
      producer: { kind: 'inflight', inFlight: 16 },
      failures: false,
    },
    {
      name: 'batch',
      title: 'batches of 1,000, each awaited',
      events,
      producer: { kind: 'batch', batchSize: 1_000 },
      failures: false,
    },
    {
      name: 'failures',
      title: '16 adds in flight; 10 % fail twice, 1 % always fail',
      events,
      producer: { kind: 'inflight', inFlight: 16 },
      failures: true,
    },
  ];
}

interface Target {
  readonly variant: VariantName;
  readonly steadfast: string;
  readonly peer: string;
  readonly ratio: number;
}

/** The issue's targets, by system id: events/s of `steadfast` at least `ratio` × that of `peer`. */
const TARGETS: readonly Target[] = [
  ...(['inflight', 'batch'] as const).flatMap((variant) => [
    { variant, steadfast: 'steadfast-postgres', peer: 'pg-boss', ratio: 3 },
    { variant, steadfast: 'steadfast-postgres', peer: 'graphile-worker', ratio: 2 },
    { variant, steadfast: 'steadfast-sqlite', peer: 'bullmq', ratio: 1.5 },
    { variant, steadfast: 'steadfast-postgres-redis', peer: 'bullmq', ratio: 1.5 },
  ]),
  ...['steadfast-sqlite', 'steadfast-postgres', 'steadfast-postgres-redis'].map((steadfast) => ({
    variant: 'single' as const,
    steadfast,
    peer: 'bullmq-durable',
    ratio: 3,
  })),
];

function listArg(args: readonly string[], flag: string): string[] | null {
  const arg = args.find((a) => a.startsWith(`${flag}=`));
  if (arg === undefined) return null;
  return arg
    .slice(flag.length + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function selected<T>(all: readonly T[], wanted: string[] | null, key: (t: T) => string, flag: string): T[] {
  if (wanted === null) return [...all];
  const unknown = wanted.filter((w) => !all.some((t) => key(t) === w));
  if (unknown.length > 0) {
    throw new Error(`${flag}: unknown ${unknown.join(', ')}; known: ${all.map(key).join(', ')}`);
  }
  return all.filter((t) => wanted.includes(key(t)));
}

function checkCell(ok: boolean, text: string): string {
  return `${ok ? 'ok' : 'FAIL'} ${text}`;
}

function sinkCell(r: RunResult): string {
  const s = r.sink;
  const extras = [
    s.duplicates > 0 ? `${fmt.int(s.duplicates)} dup` : '',
    s.unexpected > 0 ? `${fmt.int(s.unexpected)} stray` : '',
    s.extraAttempts > 0 ? `${fmt.int(s.extraAttempts)} extra attempts` : '',
  ].filter(Boolean);
  return checkCell(
    s.ok,
    `${fmt.int(s.found)}/${fmt.int(s.expected)}${extras.length ? `, ${extras.join(', ')}` : ''}`,
  );
}

function resultRow(r: RunResult): string[] {
  return [
    r.system,
    fmt.int(r.events),
    fmt.int(r.eventsPerSec),
    fmt.int(r.addsPerSec),
    fmt.ms(r.latency.p50),
    fmt.ms(r.latency.p99),
    sinkCell(r),
    checkCell(r.dead.ok, `${fmt.int(r.dead.found)}/${fmt.int(r.dead.expected)}`),
    cpuCell(r.cpuPerEvent.processMs),
    cpuCell(r.cpuPerEvent.postgresMs),
    cpuCell(r.cpuPerEvent.redisMs),
    r.problem ?? '',
  ];
}

function cpuCell(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(3) : '—';
}

const RESULT_HEADERS = [
  'system',
  'events',
  'throughput/s',
  'adds acked/s',
  'p50 ms',
  'p99 ms',
  'sink: exactly once',
  'dead/failed',
  'CPU ms/event: node',
  'PostgreSQL',
  'Redis',
  'problem',
];

function valid(r: RunResult | undefined): r is RunResult {
  return r !== undefined && r.problem === null && r.sink.ok && r.dead.ok;
}

async function postgresVersion(): Promise<string> {
  return withAdmin(async (pool) => {
    const { rows } = await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return rows[0]?.v ?? 'unknown';
  });
}

export async function runPeers(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick');
  const events = quick ? FULL_EVENTS / 10 : FULL_EVENTS;
  const limits: RunLimits = {
    warmupEvents: quick ? 200 : 1_000,
    singleBudgetMs: quick ? 6_000 : 60_000,
    runLimitMs: quick ? 60_000 : 180_000,
    graceMs: 250,
  };
  const systems = selected(SYSTEMS, listArg(args, '--peers-systems'), (s) => s.id, '--peers-systems');
  const plans = selected(
    variants(events),
    listArg(args, '--peers-variants'),
    (v) => v.name,
    '--peers-variants',
  );
  const started = performance.now();
  const log = (line: string): void => void process.stderr.write(`${line}\n`);

  const redisBefore = await redisFacts();
  const cpuList = cpus();
  console.log('# Steadfast benchmark — peer comparison');
  if (quick) console.log('\n**--quick run: every count divided by 10; figures are a smoke test only.**');
  section('Machine and services');
  console.log(
    markdownTable(
      ['fact', 'value'],
      [
        ...machineFacts(),
        ['PostgreSQL', await postgresVersion()],
        [
          'Redis',
          `${redisBefore.version}; appendonly ${redisBefore.persistence.appendonly}, appendfsync ${redisBefore.persistence.appendfsync} at start`,
        ],
      ],
      ['left', 'left'],
    ),
  );

  section('Workload and configuration');
  console.log(
    `${fmt.int(events)} events of about 300 bytes (eventId, type, key, payload). One destination at concurrency ` +
      `${CONSUMER.concurrency}; its handler inserts the event into sink_events(event_id uuid primary key, body jsonb) ` +
      `through a pg.Pool of ${SINK_POOL_SIZE} (ON CONFLICT DO NOTHING; a second insert of an event is counted as a duplicate).\n` +
      `Failures: ${CONSUMER.maxAttempts} attempts, exponential backoff from ${CONSUMER.backoffBaseMs} ms where the system allows it.\n` +
      `Each run: fresh system state; ${fmt.int(limits.warmupEvents)} warm-up events with the variant's producer, delivered and cleared; ` +
      `then the measured events; time limit ${fmt.seconds(limits.runLimitMs)}. The single-awaited variant adds fewer events ` +
      `where the full count would take longer than ${fmt.seconds(limits.singleBudgetMs)} (estimated from the warm-up); the table shows the count used.\n` +
      'throughput = events / (first add call -> last event settled: in the sink, or its last attempt failed); ' +
      'adds acked/s = events / (first add call -> last add acknowledged); ' +
      'latency = add call started -> handler insert finished, per good event (retries included); ' +
      'CPU ms/event = CPU time during the measured phase, divided by its events, of this process (producer, the ' +
      "system's client side, the handler and its pool), of the PostgreSQL server processes (the sink's inserts " +
      'included) and of the Redis server. The in-memory ceiling is no queue at all: an array and one loop per slot ' +
      'calling the same handler, so it shows what the handler and producer alone allow on this machine.\n',
  );
  const configs: string[][] = [];
  for (const factory of systems) configs.push([factory.name, factory.create().configuration]);
  console.log(markdownTable(['system', 'configuration'], configs, ['left', 'left']));

  const sink = new Sink();
  await sink.open();
  const results: RunResult[] = [];
  try {
    for (const factory of systems) {
      log(`${factory.name}:`);
      for (const plan of plans) {
        const result = await runVariant(factory.create(), plan, { sink, limits, log });
        results.push(result);
        log(
          `    ${fmt.int(result.eventsPerSec)} events/s, p50 ${fmt.ms(result.latency.p50)} ms, p99 ${fmt.ms(result.latency.p99)} ms` +
            `${result.problem ? `; ${result.problem}` : ''}`,
        );
      }
    }
  } finally {
    await sink.close();
  }

  for (const plan of plans) {
    section(`${plan.name}: ${plan.title}`);
    console.log(
      markdownTable(RESULT_HEADERS, results.filter((r) => r.variant === plan.name).map(resultRow), [
        'left',
        'right',
        'right',
        'right',
        'right',
        'right',
        'left',
        'left',
        'right',
        'right',
        'right',
        'left',
      ]),
    );
  }

  const idOf = new Map(systems.map((s) => [s.name, s.id]));
  const find = (variant: VariantName, id: string): RunResult | undefined =>
    results.find((r) => r.variant === variant && idOf.get(r.system) === id);
  const nameOf = (id: string): string => SYSTEMS.find((s) => s.id === id)?.name ?? id;
  const rows = TARGETS.filter((t) => plans.some((p) => p.name === t.variant)).map((t) => {
    const ours = find(t.variant, t.steadfast);
    const theirs = find(t.variant, t.peer);
    const ratio = ours && theirs ? ours.eventsPerSec / theirs.eventsPerSec : NaN;
    const status =
      !ours || !theirs
        ? 'not run'
        : !valid(ours) || !valid(theirs)
          ? 'INVALID (a run failed its checks)'
          : ratio >= t.ratio
            ? 'PASS'
            : 'MISS';
    return [
      t.variant,
      `${nameOf(t.steadfast)} vs ${nameOf(t.peer)}`,
      ours ? fmt.int(ours.eventsPerSec) : '—',
      theirs ? fmt.int(theirs.eventsPerSec) : '—',
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '—',
      `≥ ${t.ratio}×`,
      status,
    ];
  });
  section('Summary (Markdown)');
  console.log(
    `Peers ${quick ? '(--quick) ' : ''}on ${cpuList[0]?.model.trim() ?? 'unknown CPU'} × ${cpuList.length}, Node ${process.version}; ` +
      'figures are end-to-end events/s, all systems in the same run on the same machine.\n',
  );
  console.log(
    markdownTable(['variant', 'comparison', 'Steadfast/s', 'peer/s', 'ratio', 'target', 'status'], rows, [
      'left',
      'left',
      'right',
      'right',
      'right',
      'right',
      'left',
    ]),
  );
  const checked = results.filter(valid).length;
  console.log(
    `\nChecks: ${checked} of ${results.length} runs delivered every good event exactly once, dead-lettered (or failed) ` +
      'exactly the poison events, and finished within their time limit.',
  );
  const missed = rows.filter((r) => r[6] !== 'PASS' && r[6] !== 'not run').length;
  const compared = rows.filter((r) => r[6] !== 'not run').length;
  console.log(
    compared === 0
      ? 'No target compared: a system of every pair was left out of this run.'
      : missed === 0
        ? `All ${compared} compared targets met.`
        : `${missed} of ${compared} compared target(s) missed or invalid.`,
  );
  const redisAfter = await redisFacts();
  console.log(
    `\nRedis after the run: appendonly ${redisAfter.persistence.appendonly}, appendfsync ${redisAfter.persistence.appendfsync}` +
      `${
        redisAfter.persistence.appendonly === redisBefore.persistence.appendonly &&
        redisAfter.persistence.appendfsync === redisBefore.persistence.appendfsync
          ? ' (as before)'
          : ' — NOT as before'
      }. Peer comparison took ${fmt.seconds(performance.now() - started)}.`,
  );
}
