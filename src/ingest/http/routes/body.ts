import type { FastifyRequest } from 'fastify';
import { HttpError } from '../http-errors.js';

/** Parses the raw JSON body kept by the content-type parser; 400 `invalid_json` if it is not JSON. */
export function parseJsonBody(request: FastifyRequest): unknown {
  const raw = request.rawBody;
  if (raw === undefined || raw.length === 0) {
    throw new HttpError('invalid_json', 'the body is empty; send a JSON object');
  }
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch (error) {
    throw new HttpError('invalid_json', `the body is not valid JSON: ${(error as Error).message}`);
  }
}
