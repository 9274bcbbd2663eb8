import type { Command } from 'commander';
import type { DeadLetterFilter, DeadLetterSelector } from '../../backends/backend.js';
import { openClient, type ClientFlags, type OperatorClient } from '../client.js';
import { iso, print, table } from '../format.js';

interface OutputFlags extends ClientFlags {
  readonly json?: boolean;
}

function common(command: Command): Command {
  return command
    .option('--url <url>', 'ask a running service over HTTP instead of reading the data directory')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <path>', 'config file')
    .option('--json', 'print JSON');
}

async function withClient(flags: ClientFlags, run: (client: OperatorClient) => Promise<void>): Promise<void> {
  const client = openClient(flags);
  try {
    await run(client);
  } finally {
    await client.close();
  }
}

function filterFrom(flags: Record<string, string | undefined>): DeadLetterFilter {
  const time = (v: string | undefined) =>
    v === undefined ? undefined : Number.isNaN(Number(v)) ? Date.parse(v) : Number(v);
  return {
    destination: flags.destination,
    type: flags.type,
    since: time(flags.since),
    until: time(flags.until),
  };
}

/** `status`, `stats` and `dlq list|show|replay|delete`: thin over the library or the HTTP API. */
export function registerOperate(program: Command): void {
  common(
    program.command('status <eventId>').description('show an event and the state of each delivery'),
  ).action((eventId: string, flags: OutputFlags) =>
    withClient(flags, async (client) => {
      const record = await client.getEvent(eventId);
      if (!record) {
        console.error(`no event ${eventId}`);
        process.exitCode = 1;
        return;
      }
      print(flags.json ?? false, record, () =>
        [
          `${record.event.type} ${record.event.eventId} (received ${record.event.receivedAt})`,
          table(
            record.deliveries.map((d) => ({
              destination: d.destination,
              state: d.state,
              attempts: d.attempts,
              next: iso(d.nextAttemptAt),
              'last error': d.lastError?.message ?? null,
            })),
          ),
        ].join('\n'),
      );
    }),
  );

  common(
    program.command('stats').description('queue depth, dead letters and per-destination figures'),
  ).action((flags: OutputFlags) =>
    withClient(flags, async (client) => {
      const stats = await client.stats();
      print(flags.json ?? false, stats, () => JSON.stringify(stats, null, 2));
    }),
  );

  const dlq = program.command('dlq').description('inspect, replay and delete dead letters');
  const withFilter = (c: Command) =>
    common(c)
      .option('--destination <name>')
      .option('--type <type>')
      .option('--since <time>', 'ISO-8601 or ms since the epoch')
      .option('--until <time>', 'ISO-8601 or ms since the epoch');

  withFilter(dlq.command('list').description('dead letters, newest first'))
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--cursor <cursor>', 'next page')
    .action((flags: OutputFlags & Record<string, string | undefined>) =>
      withClient(flags, async (client) => {
        const page = await client.listDeadLetters({
          ...filterFrom(flags),
          limit: Number(flags.limit),
          cursor: flags.cursor,
        });
        print(flags.json ?? false, page, () =>
          [
            table(
              page.items.map((d) => ({
                id: d.id,
                destination: d.destination,
                type: d.event.type,
                eventId: d.event.eventId,
                attempts: d.attempts,
                'dead at': iso(d.deadAt),
                error: d.error.message.slice(0, 60),
              })),
            ),
            page.nextCursor ? `next page: --cursor ${page.nextCursor}` : '',
          ].join('\n'),
        );
      }),
    );

  common(dlq.command('show <id>').description('one dead letter with every attempt')).action(
    (id: string, flags: OutputFlags) =>
      withClient(flags, async (client) => {
        const dead = await client.getDeadLetter(id);
        if (!dead) {
          console.error(`no dead letter ${id}`);
          process.exitCode = 1;
          return;
        }
        print(flags.json ?? false, dead, () => JSON.stringify(dead, null, 2));
      }),
  );

  const selection = (
    ids: string[],
    flags: Record<string, string | undefined> & { all?: boolean },
  ): DeadLetterSelector => {
    if (ids.length > 0) return ids;
    const filter = filterFrom(flags);
    if (!flags.all && Object.values(filter).every((v) => v === undefined)) {
      throw new Error('name dead-letter ids, a filter (--destination/--type/--since/--until), or --all');
    }
    return filter;
  };
  withFilter(dlq.command('replay [ids...]').description('put dead letters back in the queue'))
    .option('--all', 'every dead letter')
    .action((ids: string[], flags: OutputFlags & Record<string, string | undefined>) =>
      withClient(flags, async (client) => {
        const result = await client.replay(selection(ids, flags));
        print(flags.json ?? false, result, () => `replayed ${result.replayed}`);
      }),
    );
  withFilter(dlq.command('delete [ids...]').description('remove dead letters for good'))
    .option('--all', 'every dead letter')
    .action((ids: string[], flags: OutputFlags & Record<string, string | undefined>) =>
      withClient(flags, async (client) => {
        const result = await client.delete(selection(ids, flags));
        print(flags.json ?? false, result, () => `deleted ${result.deleted}`);
      }),
    );
}
