/**
 * The outcome of an operation whose failure is part of normal life (a lock out of range, a radio
 * unplugged): failure is a value, so the type checker makes every caller look at it. Exceptions stay
 * for programming errors (HubError).
 */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): Result<T, never> {
  return { ok: true, value };
}

export function err<E>(error: E): Result<never, E> {
  return { ok: false, error };
}

/** Success with nothing to return. */
export const OK: Result<void, never> = { ok: true, value: undefined };
