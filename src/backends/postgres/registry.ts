import type { DestinationRecord, DestinationSpec } from '../backend.js';
import type { Sql } from './database.js';
import { toDestinationRecord, type DestinationRow } from './rows.js';
import { prepared } from './statements.js';

const REGISTRY_VERSION = prepared(`SELECT value FROM meta WHERE key = 'registry_version'`);

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
  return rows.map(toDestinationRecord);
}

/** The registry as of one version: read in one statement, so the list matches the version. */
export interface RegistrySnapshot {
  readonly version: number;
  /** The active destinations, by name. */
  readonly active: readonly DestinationRecord[];
  readonly byName: ReadonlyMap<string, DestinationRecord>;
}

const LOAD_REGISTRY = prepared(
  `SELECT m.value AS version, d.name, d.types, d.ordered, d.on_dead_letter, d.created_at, d.updated_at, d.retired_at
   FROM meta m LEFT JOIN destinations d ON true
   WHERE m.key = 'registry_version'
   ORDER BY d.name`,
);

/**
 * The destinations, re-read only when the registry version moves (one indexed read per batch),
 * so a process that only ingests still fans out to destinations other processes declared.
 */
export class RegistryCache {
  private snapshot: RegistrySnapshot | null = null;

  /** The active destinations, as committed when `sql`'s current statement began. */
  async current(sql: Sql): Promise<readonly DestinationRecord[]> {
    return (await this.refresh(sql)).active;
  }

  /** A destination by name, retired ones included. */
  async get(sql: Sql, name: string): Promise<DestinationRecord | undefined> {
    return (await this.refresh(sql)).byName.get(name);
  }

  /**
   * The registry last read, without a round trip (null before the first read). A statement that
   * relies on it checks `version` against the committed one in its own snapshot.
   */
  cached(): RegistrySnapshot | null {
    return this.snapshot;
  }

  /** Reads the registry (version and destinations in one statement). */
  async load(sql: Sql): Promise<RegistrySnapshot> {
    const rows = await sql.query<Omit<DestinationRow, 'name'> & { version: number; name: string | null }>(
      LOAD_REGISTRY,
    );
    const all = rows
      .filter((r): r is typeof r & { name: string } => r.name !== null)
      .map(toDestinationRecord);
    const snapshot: RegistrySnapshot = {
      version: rows[0]?.version ?? 0,
      active: all.filter((d) => d.retiredAt === null),
      byName: new Map(all.map((d) => [d.name, d])),
    };
    this.snapshot = snapshot;
    return snapshot;
  }

  private async refresh(sql: Sql): Promise<RegistrySnapshot> {
    const [row] = await sql.query<{ value: number }>(REGISTRY_VERSION);
    const version = row?.value ?? 0;
    if (this.snapshot && this.snapshot.version === version) return this.snapshot;
    return this.load(sql);
  }
}
