import { HubError } from '../base/errors.js';
import { sha256 } from '../base/sha256.js';
import {
  DIGEST_LEN,
  MAX_LINK_MESSAGE_LEN,
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
    w.u32(wireSeconds(win.from, 'window.from'), 'window.from', 0, MAX_WIRE_SECONDS);
    w.u32(win.until === OPEN_UNTIL ? WIRE_OPEN_UNTIL : wireSeconds(win.until, 'window.until'), 'window.until');
    check(win.until > win.from, 'window', 'until must be after from');
  }
}

/**
 * The end of a window that has none (a credential without validUntil): Number.MAX_SAFE_INTEGER in
 * memory (lock time, Unix ms), 0xFFFFFFFF on the wire.
 */
export const OPEN_UNTIL = Number.MAX_SAFE_INTEGER;
const WIRE_OPEN_UNTIL = 0xffff_ffff;
/** The last second a window's bound can name on the wire (2106-02-07T06:28:14Z). */
const MAX_WIRE_SECONDS = 0xffff_fffe;

/** A window's bound (Unix ms) as the wire carries it: whole seconds, u32. */
function wireSeconds(ms: number, field: string): number {
  check(
    Number.isSafeInteger(ms) && ms >= 0 && ms % 1000 === 0 && ms / 1000 <= MAX_WIRE_SECONDS,
    field,
    'must be whole seconds (Unix ms divisible by 1000) before 2106',
  );
  return ms / 1000;
}

/**
 * A credential's window `[from, until)` (Unix ms) as an offline item can carry it: whole seconds,
 * the start rounded up and the end rounded down, so the lock never admits for longer than the
 * credential allows; an end past 2106 ends then, an open end (OPEN_UNTIL) stays open. Undefined
 * when nothing of the window is left.
 */
export function wireWindow(from: number, until: number): { from: number; until: number } | undefined {
  const f = Math.ceil(Math.max(0, from) / 1000) * 1000;
  const u = until >= OPEN_UNTIL ? OPEN_UNTIL : Math.min(Math.floor(until / 1000), MAX_WIRE_SECONDS) * 1000;
  if (f / 1000 > MAX_WIRE_SECONDS || u <= f) return undefined;
  return { from: f, until: u };
}

/**
 * Bytes of a setOffline besides its removals and upserts: the message head (version, type, id), an
 * acknowledgement riding on it, the reset flag and the two counts.
 */
const SET_OFFLINE_HEAD = 6 + 4 + 3;

/** Bytes `write` puts on the wire: measured by the encoder itself, so the sizes cannot drift from it. */
function encodedLength(write: (w: Writer) => void): number {
  const w = new Writer();
  write(w);
  return w.length;
}
const removalBytes = (id: string) => encodedLength((w) => w.credentialId(id, 'remove'));
const itemBytes = (i: OfflineItem) => encodedLength((w) => writeOfflineItem(w, i));

/**
 * The next setOffline's share of a change, spliced from the front of `remove` and `upsert`:
 * removals first (a revoked credential leaves before anything is added: no upsert rides with a
 * removal that had to wait), then upserts, as many as the counts allow (MAX_OFFLINE_REMOVALS,
 * MAX_OFFLINE_PER_REQUEST) and the message can hold (MAX_LINK_MESSAGE_LEN; at least one of either,
 * which always fits). Fewer, fuller requests: fewer answers from a battery lock.
 */
export function takeOfflineRequest(
  remove: string[],
  upsert: OfflineItem[],
): { remove: string[]; upsert: OfflineItem[] } {
  try {
    return takeFitting(remove, upsert);
  } catch (e) {
    if (e instanceof Malformed) throw new HubError('frame.invalid', `Cannot send the offline list: ${e.message}`);
    throw e;
  }
}

function takeFitting(remove: string[], upsert: OfflineItem[]): { remove: string[]; upsert: OfflineItem[] } {
  let room = MAX_LINK_MESSAGE_LEN - SET_OFFLINE_HEAD;
  let removals = 0;
  while (removals < remove.length && removals < MAX_OFFLINE_REMOVALS) {
    const bytes = removalBytes(remove[removals] as string);
    if (removals > 0 && bytes > room) break;
    room -= bytes;
    removals++;
  }
  const r = remove.splice(0, removals);
  if (remove.length > 0) return { remove: r, upsert: [] };
  let upserts = 0;
  while (upserts < upsert.length && upserts < MAX_OFFLINE_PER_REQUEST) {
    const bytes = itemBytes(upsert[upserts] as OfflineItem);
    if ((removals > 0 || upserts > 0) && bytes > room) break;
    room -= bytes;
    upserts++;
  }
  return { remove: r, upsert: upsert.splice(0, upserts) };
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
      const from = r.u32('window.from', 0, MAX_WIRE_SECONDS) * 1000;
      const untilSeconds = r.u32('window.until');
      const until = untilSeconds === WIRE_OPEN_UNTIL ? OPEN_UNTIL : untilSeconds * 1000;
      check(until > from, 'window', 'until must be after from');
      windows.push({ from, until });
    }
    upsert.push({ kind, credentialId: credentialId as string, digest, windows });
  }
  return { type: 'setOffline', id, reset, remove, upsert };
}
