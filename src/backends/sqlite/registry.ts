import type { DestinationRecord, DestinationSpec } from '../backend.js';
import type { SqliteContext } from './context.js';
import { toDestinationRecord, type DestinationRow } from './rows.js';

function bumpVersion(ctx: SqliteContext): void {
  ctx.sql.get(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'registry_version'`).run();
}

export function readRegistryVersion(ctx: SqliteContext): number {
  const row = ctx.sql.get(`SELECT value FROM meta WHERE key = 'registry_version'`).get() as
    { value: string } | undefined;
  return Number(row?.value ?? 0);
}

/** Inserts or updates a destination; a retired one declared again becomes active again. */
export function upsertDestination(ctx: SqliteContext, spec: DestinationSpec): void {
  const now = ctx.clock.now();
  const types = JSON.stringify(spec.types);
  const existing = ctx.sql.get(`SELECT * FROM destinations WHERE name = ?`).get(spec.name) as
    DestinationRow | undefined;
  if (
    existing &&
    existing.types === types &&
    existing.ordered === Number(spec.ordered) &&
    existing.on_dead_letter === spec.onDeadLetter &&
    existing.retired_at === null
  ) {
    return;
  }
  ctx.sql
    .get(
      `INSERT INTO destinations (name, types, ordered, on_dead_letter, created_at, updated_at, retired_at)
       VALUES (?, ?, ?, ?, ?, ?, NULL)
       ON CONFLICT (name) DO UPDATE SET types = excluded.types, ordered = excluded.ordered,
         on_dead_letter = excluded.on_dead_letter, updated_at = excluded.updated_at, retired_at = NULL`,
    )
    .run(spec.name, types, Number(spec.ordered), spec.onDeadLetter, now, now);
  bumpVersion(ctx);
}

export function retireDestination(ctx: SqliteContext, name: string): boolean {
  const result = ctx.sql
    .get(`UPDATE destinations SET retired_at = ?, updated_at = ? WHERE name = ? AND retired_at IS NULL`)
    .run(ctx.clock.now(), ctx.clock.now(), name);
  if (result.changes > 0) bumpVersion(ctx);
  return result.changes > 0;
}

export function listDestinations(ctx: SqliteContext): DestinationRecord[] {
  const rows = ctx.sql.get(`SELECT * FROM destinations ORDER BY name`).all() as DestinationRow[];
  return rows.map(toDestinationRecord);
}

export function findDestination(ctx: SqliteContext, name: string): DestinationRecord | null {
  const row = ctx.sql.get(`SELECT * FROM destinations WHERE name = ?`).get(name) as
    DestinationRow | undefined;
  return row ? toDestinationRecord(row) : null;
}

/**
 * The active destinations, re-read only when the registry version moves (one indexed read per
 * batch), so a process that only ingests still fans out to destinations other processes declared.
 */
export class RegistryCache {
  private version = -1;
  private active: DestinationRecord[] = [];
  private byName = new Map<string, DestinationRecord>();

  constructor(private readonly ctx: SqliteContext) {}

  current(): readonly DestinationRecord[] {
    this.refresh();
    return this.active;
  }

  get(name: string): DestinationRecord | undefined {
    this.refresh();
    return this.byName.get(name);
  }

  private refresh(): void {
    const version = readRegistryVersion(this.ctx);
    if (version === this.version) return;
    const all = listDestinations(this.ctx);
    this.byName = new Map(all.map((d) => [d.name, d]));
    this.active = all.filter((d) => d.retiredAt === null);
    this.version = version;
  }
}
