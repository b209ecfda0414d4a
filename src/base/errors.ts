import { ERROR_CODES, type HubErrorCode } from './error-codes.js';

export { type HubErrorCode, isHubErrorCode } from './error-codes.js';

/**
 * Errors are values with a stable code and a message a person can act on: what went wrong,
 * where, and what to do. `hint` carries the "what to do" part: the throw site's when it gives one
 * (it knows the file, the lock, the option), else the general one of the code's entry in
 * error-codes.ts, so no error leaves a person without a next step.
 */
export class HubError extends Error {
  readonly code: HubErrorCode;
  readonly hint: string;

  constructor(code: HubErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    // An empty hint says nothing: the code's own hint takes its place.
    this.hint = options.hint || ERROR_CODES[code];
  }

  /** The message with its hint, as shown to a person. */
  get explanation(): string {
    return `${this.message}\n  → ${this.hint}`;
  }
}

export function isHubError(e: unknown): e is HubError {
  return e instanceof HubError;
}

/** A message for any thrown value, without stack or cause chains that could carry secrets. */
export function describeError(e: unknown): string {
  if (e instanceof HubError) return e.explanation;
  if (e instanceof Error) return e.message;
  return String(e);
}
