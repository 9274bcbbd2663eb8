import { z } from 'zod';
import { ValidationError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import type { JsonObject, JsonValue } from '../json.js';
import { canonicalJson, sha256Hex } from './canonical-json.js';

/** Sensitivity levels of an audit record, as in the reference `audit_log.data_classification`. */
export const DATA_CLASSIFICATIONS = ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI'] as const;
export type DataClassification = (typeof DATA_CLASSIFICATIONS)[number];

/** The only hash algorithm records are written with. */
export const AUDIT_HASH_ALGORITHM = 'SHA-256';

/** Values used when the event's payload does not carry the field. */
export const AUDIT_RECORD_DEFAULTS = {
  status: 'success',
  dataClassification: 'INTERNAL',
  retentionPolicy: 'standard',
  eventVersion: '1.0',
} as const satisfies {
  status: string;
  dataClassification: DataClassification;
  retentionPolicy: string;
  eventVersion: string;
};

/**
 * The fields of an audit record covered by its hash: everything that says what happened.
 * Changing any of them after the fact makes `verify` fail.
 */
export interface AuditRecordContent {
  /** The Steadfast event id; one record per event. */
  readonly eventId: string;
  /** When it happened: `event.occurredAt`, normalised to UTC ISO-8601 with milliseconds. */
  readonly timestamp: string;
  /** What happened: `event.type`. */
  readonly action: string;
  readonly principalId: string | null;
  readonly organizationId: string | null;
  readonly targetResourceType: string | null;
  readonly targetResourceId: string | null;
  /** default `'success'` */
  readonly status: string;
  readonly outcomeDescription: string | null;
  /** `event.correlationId`. */
  readonly correlationId: string;
  /** default `'INTERNAL'` */
  readonly dataClassification: DataClassification;
  /** default `'standard'` */
  readonly retentionPolicy: string;
  /** default `'1.0'` */
  readonly eventVersion: string;
  readonly sessionContext: JsonObject | null;
  /**
   * `{ payload, metadata }`: the payload without the audit fields above, and `event.metadata`.
   * Kept apart so a payload key can never collide with a metadata key.
   */
  readonly details: JsonObject;
}

/** One row of the audit log. */
export interface AuditRecord extends AuditRecordContent {
  /** Handling time minus `event.receivedAt`, in ms (never negative); not covered by the hash. */
  readonly processingLatencyMs: number | null;
  /** When the record was archived; `null` until then. Not covered by the hash. */
  readonly archivedAt: string | null;
  /** `sha256Hex(canonicalJson(auditHashContent(record)))`. */
  readonly hash: string;
  /** `'SHA-256'` for every record this version writes. */
  readonly hashAlgorithm: string;
}

const text = z.string().min(1);

/** The audit fields a payload may carry. `null` means absent: the default applies. */
const auditFieldsSchema = z.object({
  principalId: text.nullish(),
  organizationId: text.nullish(),
  targetResourceType: text.nullish(),
  targetResourceId: text.nullish(),
  status: text.nullish(),
  outcomeDescription: z.string().nullish(),
  dataClassification: z.enum(DATA_CLASSIFICATIONS).nullish(),
  retentionPolicy: text.nullish(),
  eventVersion: text.nullish(),
  sessionContext: z.record(z.string(), z.json()).nullish(),
});

type AuditFieldName = keyof z.infer<typeof auditFieldsSchema>;
const AUDIT_FIELD_NAMES = Object.keys(auditFieldsSchema.shape) as AuditFieldName[];

function isJsonObject(value: JsonValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function normaliseTimestamp(occurredAt: string): string {
  const ms = Date.parse(occurredAt);
  if (Number.isNaN(ms)) {
    throw new ValidationError([
      { field: 'occurredAt', message: `not an ISO-8601 time: ${JSON.stringify(occurredAt)}` },
    ]);
  }
  return new Date(ms).toISOString();
}

/**
 * Maps an event to its audit record. The payload must be a JSON object; the audit fields are
 * read from it under their camelCase names and the rest goes to `details.payload`.
 *
 * Throws `ValidationError` naming the field (e.g. `payload.dataClassification`) when the
 * payload is not an object or an audit field has the wrong type or value.
 *
 * @param now handling time, ms since epoch, for `processingLatencyMs`.
 */
export function toAuditRecord(event: SteadfastEvent, now: number): AuditRecord {
  const payload = event.payload;
  if (!isJsonObject(payload)) {
    throw new ValidationError([
      { field: 'payload', message: 'an audit event payload must be a JSON object' },
    ]);
  }
  const parsed = auditFieldsSchema.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(
      parsed.error.issues.map((issue) => ({
        field: ['payload', ...issue.path.map(String)].join('.'),
        message: issue.message,
      })),
    );
  }
  const fields = parsed.data;
  const rest: JsonObject = {};
  for (const [key, value] of Object.entries(payload)) {
    if (!(AUDIT_FIELD_NAMES as string[]).includes(key)) rest[key] = value;
  }
  const content: AuditRecordContent = {
    eventId: event.eventId,
    timestamp: normaliseTimestamp(event.occurredAt),
    action: event.type,
    principalId: fields.principalId ?? null,
    organizationId: fields.organizationId ?? null,
    targetResourceType: fields.targetResourceType ?? null,
    targetResourceId: fields.targetResourceId ?? null,
    status: fields.status ?? AUDIT_RECORD_DEFAULTS.status,
    outcomeDescription: fields.outcomeDescription ?? null,
    correlationId: event.correlationId,
    dataClassification: fields.dataClassification ?? AUDIT_RECORD_DEFAULTS.dataClassification,
    retentionPolicy: fields.retentionPolicy ?? AUDIT_RECORD_DEFAULTS.retentionPolicy,
    eventVersion: fields.eventVersion ?? AUDIT_RECORD_DEFAULTS.eventVersion,
    sessionContext: (fields.sessionContext as JsonObject | null | undefined) ?? null,
    details: { payload: rest, metadata: event.metadata },
  };
  const receivedAt = Date.parse(event.receivedAt);
  return {
    ...content,
    processingLatencyMs: Number.isNaN(receivedAt) ? null : Math.max(0, Math.round(now - receivedAt)),
    archivedAt: null,
    hash: auditHash(content),
    hashAlgorithm: AUDIT_HASH_ALGORITHM,
  };
}

/**
 * The object a record's hash is computed over: the content fields only, by their camelCase
 * names, `null` for absent ones. Processing latency, `archivedAt`, the hash and its algorithm
 * are left out, so archiving a record does not change its hash.
 */
export function auditHashContent(record: AuditRecordContent): JsonObject {
  return {
    eventId: record.eventId,
    timestamp: record.timestamp,
    action: record.action,
    principalId: record.principalId,
    organizationId: record.organizationId,
    targetResourceType: record.targetResourceType,
    targetResourceId: record.targetResourceId,
    status: record.status,
    outcomeDescription: record.outcomeDescription,
    correlationId: record.correlationId,
    dataClassification: record.dataClassification,
    retentionPolicy: record.retentionPolicy,
    eventVersion: record.eventVersion,
    sessionContext: record.sessionContext,
    details: record.details,
  };
}

/** SHA-256 (hex) of the canonical JSON of a record's content fields. */
export function auditHash(record: AuditRecordContent): string {
  return sha256Hex(canonicalJson(auditHashContent(record)));
}
