import { createHash } from 'node:crypto';

/**
 * A statement PostgreSQL parses and plans once per connection: pg sends it by name, and each
 * connection keeps the parsed statement (and, once PostgreSQL settles on it, a generic plan).
 */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

const byText = new Map<string, Statement>();

/**
 * The named statement of this text. The name is derived from the text, so one name always
 * stands for one text (pg refuses a name reused with another text on the same connection).
 */
export function prepared(text: string): Statement {
  let statement = byText.get(text);
  if (!statement) {
    statement = { name: `sf_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`, text };
    byText.set(text, statement);
  }
  return statement;
}
