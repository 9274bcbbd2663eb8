import { describe, expect, it } from 'vitest';
import { toErrorInfo } from './error-info.js';

describe('toErrorInfo', () => {
  it('keeps name, code, message and stack', () => {
    const info = toErrorInfo(Object.assign(new RangeError('too big'), { code: 'E_BIG' }));
    expect(info).toMatchObject({ name: 'RangeError', code: 'E_BIG', message: 'too big' });
    expect(info.stack).toContain('too big');
  });

  it('reads the code and reason of a wrapped cause, as fetch reports refused connections', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    const info = toErrorInfo(new TypeError('fetch failed', { cause: refused }));
    expect(info).toMatchObject({
      name: 'TypeError',
      code: 'ECONNREFUSED',
      message: 'fetch failed: connect ECONNREFUSED 127.0.0.1:9',
    });
  });

  it('describes thrown non-errors', () => {
    expect(toErrorInfo('just a string')).toEqual({
      name: 'NonError',
      code: null,
      message: 'just a string',
      stack: null,
    });
  });
});
