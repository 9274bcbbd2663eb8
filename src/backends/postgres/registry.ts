import type { DestinationRecord, DestinationSpec } from '../backend.js';
import type { Sql } from './database.js';

interface DestinationRow {
  name: string;
  types: string;
  ordered: boolean;
  on_dead_letter: 'skip' | 'block';
  created_at: number;
  updated_at: number;
  retired_at: number | null;
}

function toRecord(row: DestinationRow): DestinationRecord {
  return {
    name: row.name,
    types: JSON.parse(row.types) as string[] | '*',
    ordered: row.ordered,
    onDeadLetter: row.on_dead_letter,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    retiredAt: row.retired_at,
  };
}

const BUMP_VERSION = `UPDATE meta SET value = value + 1 WHERE key = 'registry_version'`;

/** Inserts or updates a destination; a retired one declared again becomes active again. */
export async function upsertDestination(sql: Sql, spec: DestinationSpec, now: number): Promise<void> {
  const changed = await sql.query(
    `INSERT INTO destinations AS d (name, types, ordered, on_dead_letter, created_at, updated_at, retired_at)
     VALUES ($1, $2, $3, $4, $5, $5, NULL)
     ON CONFLICT (name) DO UPDATE SET types = excluded.types, ordered = excluded.ordered,
       on_dead_letter = excluded.on_dead_letter, updated_at = excluded.updated_at, retired_at = NULL
     WHERE d.types <> excluded.types OR d.ordered <> excluded.ordered
       OR d.on_dead_letter <> excluded.on_dead_letter OR d.retired_at IS NOT NULL
     RETURNING name`,
    [spec.name, JSON.stringify(spec.types), spec.ordered, spec.onDeadLetter, now],
  );
  if (changed.length > 0) await sql.query(BUMP_VERSION);
}

export async function retireDestination(sql: Sql, name: string, now: number): Promise<boolean> {
  const retired = await sql.query(
    `UPDATE destinations SET retired_at = $1, updated_at = $1 WHERE name = $2 AND retired_at IS NULL
     RETURNING name`,
    [now, name],
  );
  if (retired.length > 0) await sql.query(BUMP_VERSION);
  return retired.length > 0;
}

export async function listDestinations(sql: Sql): Promise<DestinationRecord[]> {
  const rows = await sql.query<DestinationRow>(`SELECT * FROM destinations ORDER BY name`);
  return rows.map(toRecord);
}

/**
 * The destinations, re-read only when the registry version moves (one indexed read per batch),
 * so a process that only ingests still fans out to destinations other processes declared.
 */
export class RegistryCache {
  private version = -1;
  private all: DestinationRecord[] = [];
  private active: DestinationRecord[] = [];
  private byName = new Map<string, DestinationRecord>();

  /** The active destinations, as committed when `sql`'s current statement began. */
  async current(sql: Sql): Promise<readonly DestinationRecord[]> {
    await this.refresh(sql);
    return this.active;
  }

  /** A destination by name, retired ones included. */
  async get(sql: Sql, name: string): Promise<DestinationRecord | undefined> {
    await this.refresh(sql);
    return this.byName.get(name);
  }

  private async refresh(sql: Sql): Promise<void> {
    const [row] = await sql.query<{ value: number }>(`SELECT value FROM meta WHERE key = 'registry_version'`);
    const version = row?.value ?? 0;
    if (version === this.version) return;
    this.all = await listDestinations(sql);
    this.byName = new Map(this.all.map((d) => [d.name, d]));
    this.active = this.all.filter((d) => d.retiredAt === null);
    this.version = version;
  }
}
