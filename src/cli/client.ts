import { pino } from 'pino';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterQuery,
  DeadLetterSelector,
  EventRecord,
} from '../backends/backend.js';
import { loadConfig, type ConfigFlags } from '../config/load.js';
import { readServiceSecrets } from '../config/secrets.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { createBackend } from '../service/backend.js';

/** What operator commands need, answered by the data directory or by a running service. */
export interface OperatorClient {
  getEvent(eventId: string): Promise<EventRecord | null>;
  stats(): Promise<unknown>;
  listDeadLetters(query: DeadLetterQuery): Promise<DeadLetterPage>;
  getDeadLetter(id: string): Promise<DeadLetter | null>;
  replay(selector: DeadLetterSelector): Promise<{ replayed: number }>;
  delete(selector: DeadLetterSelector): Promise<{ deleted: number }>;
  close(): Promise<void>;
}

export interface ClientFlags extends ConfigFlags {
  readonly url?: string;
}

/** Reads the store directly: works while the service runs (several processes may share the file). */
function localClient(processor: ReliableEventProcessor): OperatorClient {
  return {
    getEvent: (id) => processor.getEvent(id),
    stats: () => processor.getStats(),
    listDeadLetters: (q) => processor.deadLetters.list(q),
    getDeadLetter: (id) => processor.deadLetters.get(id),
    replay: (s) => processor.deadLetters.replay(s),
    delete: (s) => processor.deadLetters.delete(s),
    close: () => processor.stop({ timeoutMs: 0 }),
  };
}

/** `fetch`, with an error naming the URL and the cause when the service cannot be reached. */
export async function reach(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    const cause = (error as Error).cause as { code?: string; message?: string } | undefined;
    throw new Error(
      `cannot reach ${url.origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

export class HttpApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`the service answered ${status}: ${JSON.stringify(body)}`);
  }
}

/** Talks to a running service's HTTP API with the admin token. */
function httpClient(base: string, adminToken: string | null): OperatorClient {
  const call = async <T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: T }> => {
    const res = await reach(new URL(path, base), {
      method,
      headers: {
        ...(adminToken ? { authorization: `Bearer ${adminToken}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T;
    if (res.status >= 400 && res.status !== 404) throw new HttpApiError(res.status, json);
    return { status: res.status, json };
  };
  const selectorBody = (s: DeadLetterSelector) => (Array.isArray(s) ? { ids: s } : { filter: s });
  return {
    getEvent: async (id) => {
      const r = await call<EventRecord>('GET', `/events/${encodeURIComponent(id)}`);
      return r.status === 404 ? null : r.json;
    },
    stats: async () => (await call('GET', '/events/stats')).json,
    listDeadLetters: async (q) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
      return (await call<DeadLetterPage>('GET', `/events/failed?${params}`)).json;
    },
    getDeadLetter: async (id) => {
      const r = await call<DeadLetter>('GET', `/events/failed/${encodeURIComponent(id)}`);
      return r.status === 404 ? null : r.json;
    },
    replay: async (s) =>
      (await call<{ replayed: number }>('POST', '/events/dlq/replay', selectorBody(s))).json,
    delete: async (s) => (await call<{ deleted: number }>('DELETE', '/events/dlq', selectorBody(s))).json,
    close: async () => undefined,
  };
}

export function openClient(flags: ClientFlags): OperatorClient {
  const config = loadConfig({ flags });
  if (flags.url) {
    const adminToken = config.adminToken ?? readServiceSecrets(config.dataDir).adminToken;
    return httpClient(flags.url, adminToken);
  }
  // The configured store, whatever its kind: the SQLite file, or the shared PostgreSQL.
  const logger = pino({ level: 'silent' });
  return localClient(createProcessor({ backend: createBackend(config, logger), logger: false }));
}
