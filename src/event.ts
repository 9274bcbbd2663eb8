import { z } from 'zod';
import { ValidationError, type FieldIssue } from './errors.js';
import { newEventId } from './ids.js';
import type { JsonObject, JsonValue } from './json.js';

/** What a producer passes to `addEvent`. Only `type` and `payload` are required. */
export interface EventInput {
  /** Unique id; a second event with the same id inside the dedup window is a duplicate. UUIDv7 if absent. */
  eventId?: string;
  type: string;
  payload: JsonValue;
  /** Ordering key: an `ordered` destination handles events with the same key one at a time, in order. */
  key?: string | null;
  /** ISO-8601 time the fact happened; defaults to the time it was accepted. */
  occurredAt?: string;
  /** Carried into every log line about the event; defaults to the event id. */
  correlationId?: string;
  source?: string;
  metadata?: JsonObject;
}

/** An accepted event, as handlers and queries see it. Immutable once stored. */
export interface SteadfastEvent<P extends JsonValue = JsonValue> {
  readonly eventId: string;
  readonly type: string;
  readonly payload: P;
  readonly key: string | null;
  readonly occurredAt: string;
  readonly receivedAt: string;
  readonly correlationId: string;
  readonly source: string | null;
  readonly metadata: JsonObject;
}

/** A validated event ready to store: the payload is already serialised. */
export interface EventEnvelope {
  readonly eventId: string;
  readonly type: string;
  readonly key: string | null;
  readonly payloadJson: string;
  readonly occurredAt: string;
  readonly correlationId: string;
  readonly source: string | null;
  readonly metadataJson: string;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** The event a handler receives, from the envelope just stored (as a backend would read it back). */
export function eventFromEnvelope(envelope: EventEnvelope, receivedAt: number): SteadfastEvent {
  return {
    eventId: envelope.eventId,
    type: envelope.type,
    payload: JSON.parse(envelope.payloadJson) as JsonValue,
    key: envelope.key,
    occurredAt: envelope.occurredAt,
    receivedAt: new Date(receivedAt).toISOString(),
    correlationId: envelope.correlationId,
    source: envelope.source,
    metadata: JSON.parse(envelope.metadataJson) as JsonObject,
  };
}

const idString = z.string().min(1).max(200);

const eventInputSchema = z.strictObject({
  eventId: idString.optional(),
  type: z.string().min(1).max(200),
  payload: z.json(),
  key: z.string().min(1).max(200).nullable().optional(),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  correlationId: idString.optional(),
  source: z.string().min(1).max(200).optional(),
  metadata: z.record(z.string(), z.json()).optional(),
});

function toIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join('.') : '(event)',
    message: issue.message,
  }));
}

/**
 * Validates and normalises one event. Throws `ValidationError` naming the first bad field.
 * `index` is the position in a batch, used in the message.
 */
export function toEnvelope(
  input: unknown,
  options: { maxPayloadBytes?: number; index?: number; now: number },
): EventEnvelope {
  const parsed = eventInputSchema.safeParse(input);
  if (!parsed.success) {
    throw new ValidationError(toIssues(parsed.error), { index: options.index });
  }
  const event = parsed.data;
  const payloadJson = JSON.stringify(event.payload);
  const limit = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (Buffer.byteLength(payloadJson) > limit) {
    throw new ValidationError([{ field: 'payload', message: `larger than ${limit} bytes` }], {
      index: options.index,
    });
  }
  const eventId = event.eventId ?? newEventId();
  return {
    eventId,
    type: event.type,
    key: event.key ?? null,
    payloadJson,
    occurredAt: event.occurredAt ?? new Date(options.now).toISOString(),
    correlationId: event.correlationId ?? eventId,
    source: event.source ?? null,
    metadataJson: JSON.stringify(event.metadata ?? {}),
  };
}

/** Does `type` match a destination's type filter (`'*'`, exact names, or `prefix.*` patterns)? */
export function typeMatches(filter: readonly string[] | '*', type: string): boolean {
  if (filter === '*') return true;
  for (const pattern of filter) {
    if (pattern === '*' || pattern === type) return true;
    if (pattern.endsWith('*') && type.startsWith(pattern.slice(0, -1))) return true;
  }
  return false;
}
