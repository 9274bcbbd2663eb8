import type { Clock } from '../../clock.js';
import type { SqliteDatabase, StatementCache } from './database.js';

/** What every SQLite operation needs: the connection, its statement cache and the clock. */
export interface SqliteContext {
  readonly db: SqliteDatabase;
  readonly sql: StatementCache;
  readonly clock: Clock;
}

/** Delivery states as stored. `blocked` = pending behind an earlier event of its key. */
export type StoredState =
  'pending' | 'blocked' | 'processing' | 'retrying' | 'succeeded' | 'dead' | 'discarded';

/** States that keep later deliveries of the same key waiting (plus `dead` under the block policy). */
export const ACTIVE_STATES_SQL = `('pending', 'blocked', 'retrying', 'processing', 'dead')`;
export const DUE_STATES_SQL = `('pending', 'retrying', 'processing')`;
