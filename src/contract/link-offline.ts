import { HubError } from '../base/errors.js';
import { sha256 } from '../base/sha256.js';
import {
  DIGEST_LEN,
  MAX_OFFLINE_PER_REQUEST,
  MAX_OFFLINE_REMOVALS,
  MAX_OFFLINE_WINDOWS,
  type OfflineItem,
  type Request,
} from './link-messages.js';
import { check, Malformed, type Reader, Writer } from './link-wire.js';

/**
 * The offline list on the wire: the setOffline body and the digest of a whole list. Both use the
 * same item encoding, so the digest a lock reports matches the one the hub computes only if they
 * agree on every byte; keeping them side by side keeps that true.
 */

export function writeOffline(w: Writer, m: Extract<Request, { type: 'setOffline' }>): void {
  w.bool(m.reset, 'reset');
  check(
    Array.isArray(m.remove) && m.remove.length <= MAX_OFFLINE_REMOVALS,
    'remove',
    `at most ${MAX_OFFLINE_REMOVALS}`,
  );
  w.u8(m.remove.length, 'remove.length');
  for (const id of m.remove) {
    check(id !== null, 'remove', 'a credential id');
    w.credentialId(id, 'remove');
  }
  check(
    Array.isArray(m.upsert) && m.upsert.length <= MAX_OFFLINE_PER_REQUEST,
    'upsert',
    `at most ${MAX_OFFLINE_PER_REQUEST}`,
  );
  w.u8(m.upsert.length, 'upsert.length');
  for (const item of m.upsert) writeOfflineItem(w, item);
}

/** One offline item as it travels in a setOffline upsert (and is hashed by offlineListDigest). */
function writeOfflineItem(w: Writer, item: OfflineItem): void {
  w.choice(['pin', 'tag'] as const, item.kind, 'upsert.kind');
  check(item.credentialId !== null, 'upsert.credentialId', 'required');
  w.credentialId(item.credentialId, 'upsert.credentialId');
  w.bytes(item.digest, DIGEST_LEN, 'upsert.digest');
  check(
    Array.isArray(item.windows) && item.windows.length >= 1 && item.windows.length <= MAX_OFFLINE_WINDOWS,
    'upsert.windows',
    `1 to ${MAX_OFFLINE_WINDOWS}`,
  );
  w.u8(item.windows.length, 'upsert.windows.length');
  for (const win of item.windows) {
    w.u64(win.from, 'window.from');
    w.u64(win.until, 'window.until');
    check(win.until > win.from, 'window', 'until must be after from');
  }
}

/**
 * SHA-256 of an offline list: its items in credential-id order, each encoded as in a setOffline
 * upsert. A lock answers every setOffline with the digest of what it then holds; the hub compares
 * it with the digest of the list it wants, so after a restart (when it does not know what a lock
 * holds) it sends nothing to a lock that is already up to date. Throws HubError `frame.invalid`
 * for an item that could not be sent.
 */
export function offlineListDigest(items: readonly OfflineItem[]): Uint8Array {
  const sorted = [...items].sort((a, b) =>
    a.credentialId < b.credentialId ? -1 : a.credentialId > b.credentialId ? 1 : 0,
  );
  const w = new Writer();
  try {
    for (const item of sorted) writeOfflineItem(w, item);
  } catch (e) {
    if (e instanceof Malformed) throw new HubError('frame.invalid', `Cannot hash the offline list: ${e.message}`);
    throw e;
  }
  return sha256(w.finish(Number.POSITIVE_INFINITY));
}

export function readOffline(r: Reader, id: number): Request {
  const reset = r.bool('reset');
  const removals = r.u8();
  check(removals <= MAX_OFFLINE_REMOVALS, 'remove', () => `at most ${MAX_OFFLINE_REMOVALS}`);
  const remove: string[] = [];
  for (let i = 0; i < removals; i++) {
    const c = r.credentialId('remove');
    check(c !== null, 'remove', 'a credential id');
    remove.push(c as string);
  }
  const count = r.u8();
  check(count <= MAX_OFFLINE_PER_REQUEST, 'upsert', () => `at most ${MAX_OFFLINE_PER_REQUEST}`);
  const upsert: OfflineItem[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.choice(['pin', 'tag'] as const, 'upsert.kind');
    const credentialId = r.credentialId('upsert.credentialId');
    check(credentialId !== null, 'upsert.credentialId', 'required');
    const digest = r.bytes(DIGEST_LEN, 'upsert.digest');
    const n = r.u8();
    check(n >= 1 && n <= MAX_OFFLINE_WINDOWS, 'upsert.windows', () => `1 to ${MAX_OFFLINE_WINDOWS}`);
    const windows: { from: number; until: number }[] = [];
    for (let j = 0; j < n; j++) {
      const from = r.u64('window.from');
      const until = r.u64('window.until');
      check(until > from, 'window', 'until must be after from');
      windows.push({ from, until });
    }
    upsert.push({ kind, credentialId: credentialId as string, digest, windows });
  }
  return { type: 'setOffline', id, reset, remove, upsert };
}
