import { createHash } from 'node:crypto';
import type { JsonValue } from '../json.js';

/**
 * Serialises a JSON value canonically: object keys sorted recursively (by UTF-16 code units),
 * no whitespace, arrays kept in order, strings and numbers written as `JSON.stringify` writes
 * them. For the values a `JsonValue` can hold this is the JSON Canonicalization Scheme
 * (RFC 8785), so equal values always give the same text and the same hash.
 *
 * Throws `TypeError` for anything that is not JSON (`undefined`, functions, bigints, class
 * instances other than plain objects and arrays) and for numbers that are not finite, rather
 * than silently dropping or rewriting them as `JSON.stringify` would.
 */
export function canonicalJson(value: JsonValue): string {
  return write(value, '$');
}

function write(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${path} is not a finite number`);
      return JSON.stringify(value);
    case 'object':
      if (Array.isArray(value)) {
        return `[${value.map((item, i) => write(item, `${path}[${i}]`)).join(',')}]`;
      }
      if (!isPlainObject(value)) throw new TypeError(`canonicalJson: ${path} is not a plain object`);
      return `{${Object.keys(value)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${write(value[key], `${path}.${key}`)}`)
        .join(',')}}`;
    default:
      throw new TypeError(`canonicalJson: ${path} is not JSON (${typeof value})`);
  }
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** SHA-256 of the UTF-8 bytes of `text`, as 64 lowercase hex digits. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
