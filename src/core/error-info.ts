import type { ErrorInfo } from '../backends/backend.js';

const MAX_STACK = 4096;
const MAX_MESSAGE = 2048;

/** What is kept of a thrown value: name, code, message, stack (bounded in size). */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const own = codeOf(error);
    const cause = error.cause instanceof Error ? error.cause : null;
    const code = own ?? (cause ? codeOf(cause) : null);
    // fetch reports "fetch failed" and keeps the reason (ECONNREFUSED …) in its cause.
    const message =
      own === null && cause && code !== null ? `${error.message}: ${cause.message}` : error.message;
    return {
      name: error.name,
      code,
      message: message.slice(0, MAX_MESSAGE),
      stack: error.stack ? error.stack.slice(0, MAX_STACK) : null,
    };
  }
  return { name: 'NonError', code: null, message: String(error).slice(0, MAX_MESSAGE), stack: null };
}

function codeOf(error: Error): string | null {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : typeof code === 'number' ? String(code) : null;
}
