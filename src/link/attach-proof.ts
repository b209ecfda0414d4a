import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../crypto/secret.js';

/**
 * The setup-code proofs of attach (docs/link-protocol.md §4) and the sealed messages that carry
 * them: the one part of the attach exchange that both sides compute byte for byte, kept apart from
 * the handshake flows in session.ts that send and check them.
 */

/** Attach exchange messages, carried sealed right after the XX handshake: 0xa7 ‖ kind ‖ proof. */
const ATTACH_MARK = 0xa7;
export const ATTACH = { LOCK_PROOF: 1, HUB_PROOF: 2, DONE: 3 } as const;
const PROOF_LEN = 32;

/** Setup codes are printed on the lock; people type them with dashes, spaces and in any case. */
export function normalizeSetupCode(code: string): string {
  return code.replace(/[\s-]/g, '').toUpperCase();
}

function setupKey(code: Secret): Buffer {
  const normal = normalizeSetupCode(new TextDecoder().decode(code.reveal()));
  return createHash('sha256').update('iq-link setup code v1\0').update(normal).digest();
}

/**
 * Each side proves it knows the setup code, bound to this very session (the handshake hash), the
 * lock's device id and both static keys: a proof cannot be replayed into another session or moved
 * to another lock. The lock proves first, so an impostor lock learns nothing from the hub.
 */
export function attachProof(
  role: 'lock' | 'hub',
  code: Secret,
  handshakeHash: Uint8Array,
  deviceId: string,
  lockStatic: Uint8Array,
  hubStatic: Uint8Array,
): Buffer {
  return createHmac('sha256', setupKey(code))
    .update(`iq-link attach ${role}\0`)
    .update(handshakeHash)
    .update(`${deviceId}\0`)
    .update(lockStatic)
    .update(hubStatic)
    .digest();
}

export function proofsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function attachMessage(kind: number, proof?: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + (proof?.length ?? 0));
  out[0] = ATTACH_MARK;
  out[1] = kind;
  if (proof) out.set(proof, 2);
  return out;
}

export interface AttachMessage {
  kind: number;
  proof?: Uint8Array;
}

export function parseAttachMessage(p: Uint8Array): AttachMessage | undefined {
  if (p.length < 2 || p[0] !== ATTACH_MARK) return undefined;
  const kind = p[1] ?? 0;
  if (kind === ATTACH.DONE) return p.length === 2 ? { kind } : undefined;
  if ((kind === ATTACH.LOCK_PROOF || kind === ATTACH.HUB_PROOF) && p.length === 2 + PROOF_LEN) {
    return { kind, proof: p.subarray(2) };
  }
  return undefined;
}
