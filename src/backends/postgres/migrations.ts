import { BackendError } from '../../errors.js';
import type { Database, Sql } from './database.js';

export interface Migration {
  readonly version: number;
  readonly sql: string;
}

/** Delivery states as stored. `blocked` = pending behind an earlier event of its key. */
export type StoredState =
  'pending' | 'blocked' | 'processing' | 'retrying' | 'succeeded' | 'dead' | 'discarded';

/** States a claim looks at: waiting their turn, retrying, or leased (due again once the lease ends). */
export const DUE_STATES_SQL = `('pending', 'retrying', 'processing')`;
/** States that keep later deliveries of the same key waiting (plus `dead` under the block policy). */
export const ACTIVE_STATES_SQL = `('pending', 'blocked', 'retrying', 'processing', 'dead')`;

/**
 * Forward-only schema migrations, applied in order inside the backend's schema. Never edit one
 * that has shipped: add the next number.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE meta (
        key   text PRIMARY KEY,
        value bigint NOT NULL
      );
      INSERT INTO meta (key, value) VALUES ('registry_version', 0);

      CREATE TABLE destinations (
        name           text PRIMARY KEY,
        types          text NOT NULL,
        ordered        boolean NOT NULL,
        on_dead_letter text NOT NULL CHECK (on_dead_letter IN ('skip', 'block')),
        created_at     bigint NOT NULL,
        updated_at     bigint NOT NULL,
        retired_at     bigint
      );

      CREATE TABLE events (
        seq            bigserial PRIMARY KEY,
        event_id       text NOT NULL,
        type           text NOT NULL,
        key            text,
        payload        text NOT NULL,
        occurred_at    text NOT NULL,
        correlation_id text NOT NULL,
        source         text,
        metadata       text NOT NULL,
        received_at    bigint NOT NULL
      );
      CREATE INDEX events_event_id ON events (event_id, seq);

      CREATE TABLE dedup (
        event_id text PRIMARY KEY,
        seen_at  bigint NOT NULL
      );
      CREATE INDEX dedup_seen_at ON dedup (seen_at);

      CREATE TABLE deliveries (
        id              bigserial PRIMARY KEY,
        event_seq       bigint NOT NULL,
        destination     text NOT NULL,
        order_key       text,
        state           text NOT NULL CHECK (state IN
                          ('pending', 'blocked', 'processing', 'retrying', 'succeeded', 'dead', 'discarded')),
        attempts        integer NOT NULL DEFAULT 0,
        total_attempts  integer NOT NULL DEFAULT 0,
        run_at          bigint NOT NULL,
        lease_token     text,
        started_at      bigint,
        duration_ms     integer,
        lease_expiries  integer NOT NULL DEFAULT 0,
        replays         integer NOT NULL DEFAULT 0,
        last_error      text,
        first_failed_at bigint,
        last_failed_at  bigint,
        created_at      bigint NOT NULL,
        updated_at      bigint NOT NULL,
        completed_at    bigint
      );
      -- What a claim reads: the due deliveries of one destination, oldest due first.
      CREATE INDEX deliveries_due ON deliveries (destination, run_at, id)
        WHERE state IN ${DUE_STATES_SQL};
      -- What the reconciler pages through: claimable deliveries by id.
      CREATE INDEX deliveries_due_by_id ON deliveries (id)
        WHERE state IN ${DUE_STATES_SQL};
      -- The line of each key of an ordered destination.
      CREATE INDEX deliveries_key ON deliveries (destination, order_key, id)
        WHERE order_key IS NOT NULL AND state IN ${ACTIVE_STATES_SQL};
      CREATE INDEX deliveries_event ON deliveries (event_seq);

      CREATE TABLE attempts (
        delivery_id bigint NOT NULL,
        number      integer NOT NULL,
        started_at  bigint NOT NULL,
        duration_ms integer,
        outcome     text NOT NULL,
        error       text,
        PRIMARY KEY (delivery_id, number)
      );

      CREATE TABLE dead_letters (
        seq           bigserial PRIMARY KEY,
        delivery_id   bigint NOT NULL UNIQUE,
        destination   text NOT NULL,
        event_type    text NOT NULL,
        event_key     text,
        error_message text NOT NULL,
        dead_at       bigint NOT NULL
      );
      CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at);
      CREATE INDEX dead_letters_destination ON dead_letters (destination, seq);
      CREATE INDEX dead_letters_type ON dead_letters (event_type, seq);

      -- Settles a batch of successful attempts in one round trip. For a delivery of an ordered
      -- key it then takes the key's lock (the one publish takes) and lets the next delivery of
      -- the key go; each statement here sees what committed before it, so a delivery published
      -- meanwhile is either promoted or saw the key free. Keys are locked in one global order.
      CREATE FUNCTION complete_deliveries(p_ids bigint[], p_tokens text[], p_started bigint[],
                                          p_durations integer[], p_now bigint, p_lock_prefix text)
      RETURNS TABLE (out_id bigint, out_destination text, out_promoted bigint)
      LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
      DECLARE
        r record;
        v_next bigint;
      BEGIN
        FOR r IN
          WITH done AS (
            UPDATE deliveries d SET state = 'succeeded', lease_token = NULL, completed_at = p_now,
              updated_at = p_now, started_at = c.started, duration_ms = c.duration
            FROM unnest(p_ids, p_tokens, p_started, p_durations) AS c(id, token, started, duration)
            WHERE d.id = c.id AND d.lease_token = c.token AND d.state = 'processing'
            RETURNING d.id, d.destination, d.order_key
          )
          SELECT done.*, hashtextextended(p_lock_prefix || done.destination || chr(31) || done.order_key, 0) AS lock_key
          FROM done ORDER BY lock_key NULLS FIRST, done.id
        LOOP
          v_next := NULL;
          IF r.order_key IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(r.lock_key);
            UPDATE deliveries d SET state = 'pending', run_at = p_now, updated_at = p_now
            WHERE d.id = (
              SELECT x.id FROM deliveries x
              WHERE x.destination = r.destination AND x.order_key = r.order_key
                AND x.state IN ${ACTIVE_STATES_SQL} AND x.state = 'blocked'
              ORDER BY x.id LIMIT 1)
            RETURNING d.id INTO v_next;
          END IF;
          out_id := r.id;
          out_destination := r.destination;
          out_promoted := v_next;
          RETURN NEXT;
        END LOOP;
      END
      $fn$;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the schema to the current version. Runs under a session advisory lock derived from the
 * schema name, so two processes opening at once take turns: the second finds the work done.
 * Each migration commits with its row in `schema_migrations`. Returns the versions applied.
 */
export async function migrate(
  db: Database,
  schema: string,
  now: number,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  return db.session(async (sql) => {
    await sql.query(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, [`steadfast:migrate:${schema}`]);
    try {
      return await applyPending(sql, schema, now, migrations);
    } finally {
      await sql.query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`steadfast:migrate:${schema}`]);
    }
  });
}

async function applyPending(
  sql: Sql,
  schema: string,
  now: number,
  migrations: readonly Migration[],
): Promise<number[]> {
  await sql.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await sql.query(
    `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
       version    integer PRIMARY KEY,
       applied_at bigint NOT NULL
     )`,
  );
  const rows = await sql.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`);
  const done = new Set(rows.map((r) => r.version));
  const newest = Math.max(0, ...done);
  if (newest > migrations.length) {
    throw new BackendError(
      `the schema ${schema} is at version ${newest}, newer than this Steadfast understands (${migrations.length})`,
    );
  }
  const applied: number[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    await sql.query('BEGIN');
    try {
      await sql.query(`SET LOCAL search_path TO ${schema}`);
      await sql.query(migration.sql);
      await sql.query(`INSERT INTO ${schema}.schema_migrations (version, applied_at) VALUES ($1, $2)`, [
        migration.version,
        now,
      ]);
      await sql.query('COMMIT');
    } catch (error) {
      await sql.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    applied.push(migration.version);
  }
  return applied;
}
