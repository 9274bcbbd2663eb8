import type { Clock } from '../../clock.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { Database } from './database.js';
import type { RegistryCache } from './registry.js';

/** What every PostgreSQL operation needs. */
export interface PgContext {
  readonly db: Database;
  /**
   * The pool for bookkeeping — claims, lease renewals, completions, retries, releases — whose
   * commits do not wait for the WAL flush (see `DatabaseOptions.synchronousCommit`). Ingest,
   * dead-lettering, replay and the registry always go through `db`.
   */
  readonly bookkeeping: Database;
  /** The schema holding every table (also namespaces the advisory locks and the channel). */
  readonly schema: string;
  readonly clock: Clock;
  readonly registry: RegistryCache;
  /** Where a write that notifies other processes itself (in its own statement) sends it. */
  readonly notify: { readonly channel: string; readonly origin: string };
}

/**
 * What a committed write changed, reported once it is durable: the destinations that may have
 * work now, and the deliveries that became claimable.
 */
export interface WriteEffects {
  readonly touched: readonly string[];
  readonly scheduled: readonly ScheduledDelivery[];
}

export const NO_EFFECTS: WriteEffects = { touched: [], scheduled: [] };

export function effectsOf(scheduled: readonly ScheduledDelivery[]): WriteEffects {
  return { touched: [...new Set(scheduled.map((s) => s.destination))], scheduled };
}
