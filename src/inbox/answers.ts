import type { CmdResultPayload, SyncAckPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import type { ContractError } from '../contract/mqtt-validate.js';

/**
 * The answers every inbound message may get, whichever service handles it: a failure in the
 * contract's shape (code and message clipped to its limits), the refusal of a reused id, and an
 * answer read back from the inbox for a redelivery.
 */

export type Answer = CmdResultPayload | SyncAckPayload;
/** An error answer: valid on either result topic. */
export type Failure = { v: 1; id: string | null; ok: false; error: { code: string; message: string } };

const MAX_CODE = 64;
const MAX_MESSAGE = 1024;

export function failure(id: string | null, code: string, message: string): Failure {
  return {
    v: CONTRACT_VERSION,
    id,
    ok: false,
    error: { code: clip(code, MAX_CODE), message: clip(message, MAX_MESSAGE) },
  };
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

export function idReused(id: string, other: string): ContractError {
  return {
    code: 'payload.id-reused',
    message: `id ${id} was already used for a ${other} message; every cmd and sync needs its own id`,
  };
}

export function storedAnswer(text: string | null): Answer | undefined {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as Answer;
  } catch {
    return undefined;
  }
}
