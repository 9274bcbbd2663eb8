import type { ErrorInfo } from '../backends/backend.js';

const MAX_STACK = 4096;
const MAX_MESSAGE = 2048;

/** What is kept of a thrown value: name, code, message, stack (bounded in size). */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      code: typeof code === 'string' ? code : typeof code === 'number' ? String(code) : null,
      message: error.message.slice(0, MAX_MESSAGE),
      stack: error.stack ? error.stack.slice(0, MAX_STACK) : null,
    };
  }
  return { name: 'NonError', code: null, message: String(error).slice(0, MAX_MESSAGE), stack: null };
}
