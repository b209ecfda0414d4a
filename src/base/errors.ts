/**
 * Errors are values with a stable code and a message a person can act on: what went wrong,
 * where, and what to do. `hint` carries the "what to do" part when it is not in the message.
 */
export class HubError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    this.hint = options.hint;
  }

  /** The message with its hint, as shown to a person. */
  get explanation(): string {
    return this.hint ? `${this.message}\n  → ${this.hint}` : this.message;
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
