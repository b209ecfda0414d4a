import { readFirmwareRequest, readFirmwareResult, writeFirmwareRequest, writeFirmwareResult } from './link-firmware.js';
import {
  BOLT_STATES,
  CHALLENGE_LEN,
  CREDENTIAL_WIRE_KINDS,
  DENY_REASONS,
  DIGEST_LEN,
  type LinkCredential,
  LOCK_MODES,
  type LockEvent,
  type LockState,
  MAX_EVENTS_PER_ANSWER,
  MAX_EVENTS_PER_BATCH,
  MAX_OPEN_MS,
  MAX_PIN_KEY_VERSION,
  MAX_PRESENTATION_LEN,
  OPEN_METHODS,
  type Operation,
  type OpResult,
  PIN_KEY_LEN,
  type Request,
} from './link-messages.js';
import { readOffline, writeOffline } from './link-offline.js';
import { check, type Reader, type Writer } from './link-wire.js';

/**
 * The body layout of each message type, after the header. One writer and one reader per body
 * side by side, so a field added to one is seen missing from the other; link-codec.ts only picks
 * the body from the header's type.
 */

// Wire codes are the index in the list: append only, never reorder.
const EVENT_TYPES = ['opened', 'denied', 'door', 'battery', 'tamper'] as const;

function writeState(w: Writer, s: LockState): void {
  w.choice(BOLT_STATES, s.bolt, 'state.bolt');
  w.choice(LOCK_MODES, s.mode, 'state.mode');
  w.bool(s.doorOpen, 'state.doorOpen');
  w.u8(s.batteryPercent, 'state.batteryPercent');
  check(s.batteryPercent <= 100, 'state.batteryPercent', 'must be at most 100');
  w.u32(s.lastSeq, 'state.lastSeq');
  w.u64(s.time, 'state.time');
}

function readState(r: Reader): LockState {
  const bolt = r.choice(BOLT_STATES, 'state.bolt');
  const mode = r.choice(LOCK_MODES, 'state.mode');
  const doorOpen = r.bool('state.doorOpen');
  const batteryPercent = r.u8();
  check(batteryPercent <= 100, 'state.batteryPercent', 'must be at most 100');
  return { bolt, mode, doorOpen, batteryPercent, lastSeq: r.u32('state.lastSeq'), time: r.u64('state.time') };
}

export function writeEvent(w: Writer, e: LockEvent): void {
  w.choice(EVENT_TYPES, e.type, 'event.type');
  w.u32(e.seq, 'event.seq', 1);
  w.u64(e.at, 'event.at');
  switch (e.type) {
    case 'opened':
      w.choice(OPEN_METHODS, e.by, 'event.by');
      w.credentialId(e.credentialId, 'event.credentialId');
      break;
    case 'denied':
      w.choice(DENY_REASONS, e.reason, 'event.reason');
      w.credentialId(e.credentialId, 'event.credentialId');
      break;
    case 'door':
      w.bool(e.open, 'event.open');
      break;
    case 'battery':
      check(e.percent <= 100, 'event.percent', 'must be at most 100');
      w.u8(e.percent, 'event.percent');
      break;
    case 'tamper':
      break;
  }
}

export function readEvent(r: Reader): LockEvent {
  const type = r.choice(EVENT_TYPES, 'event.type');
  const seq = r.u32('event.seq', 1);
  const at = r.u64('event.at');
  switch (type) {
    case 'opened':
      return {
        seq,
        at,
        type,
        by: r.choice(OPEN_METHODS, 'event.by'),
        credentialId: r.credentialId('event.credentialId'),
      };
    case 'denied': {
      const reason = r.choice(DENY_REASONS, 'event.reason');
      return { seq, at, type, reason, credentialId: r.credentialId('event.credentialId') };
    }
    case 'door':
      return { seq, at, type, open: r.bool('event.open') };
    case 'battery': {
      const percent = r.u8();
      check(percent <= 100, 'event.percent', 'must be at most 100');
      return { seq, at, type, percent };
    }
    case 'tamper':
      return { seq, at, type };
  }
}

export function writeRequest(w: Writer, m: Request): void {
  switch (m.type) {
    case 'open':
      w.u32(m.durationMs, 'durationMs', 1, MAX_OPEN_MS);
      break;
    case 'setMode':
      w.choice(LOCK_MODES, m.mode, 'mode');
      break;
    case 'getEvents':
      w.u32(m.sinceSeq, 'sinceSeq');
      break;
    case 'ackEvents':
      w.u32(m.uptoSeq, 'uptoSeq');
      break;
    case 'setTime':
      w.u64(m.unixMs, 'unixMs');
      break;
    case 'setOffline':
      writeOffline(w, m);
      break;
    case 'setPinKey':
      w.u32(m.version, 'version', 1, MAX_PIN_KEY_VERSION);
      w.bytes(m.key, PIN_KEY_LEN, 'key');
      w.u64(m.previousUntil, 'previousUntil');
      break;
    case 'lock':
    case 'getState':
    case 'detach':
      break;
    default:
      writeFirmwareRequest(w, m);
  }
}

export function writeCredential(w: Writer, c: LinkCredential): void {
  if (c.kind === 'pin' && c.previous !== undefined) {
    w.choice(CREDENTIAL_WIRE_KINDS, 'pinOverlap', 'credential.kind');
    w.bytes(c.verifier, DIGEST_LEN, 'credential.verifier');
    w.bytes(c.previous, DIGEST_LEN, 'credential.previous');
    return;
  }
  w.choice(CREDENTIAL_WIRE_KINDS, c.kind, 'credential.kind');
  switch (c.kind) {
    case 'pin':
      w.bytes(c.verifier, DIGEST_LEN, 'credential.verifier');
      break;
    case 'tag':
      w.bytes(c.hash, DIGEST_LEN, 'credential.hash');
      break;
    case 'digitalKey':
      w.bytes(c.challenge, CHALLENGE_LEN, 'credential.challenge');
      check(c.presentation instanceof Uint8Array, 'credential.presentation', 'must be bytes');
      w.u16(c.presentation.length, 'credential.presentation.length', 1, MAX_PRESENTATION_LEN);
      w.bytes(c.presentation, c.presentation.length, 'credential.presentation');
      break;
  }
}

export function readCredential(r: Reader): LinkCredential {
  const kind = r.choice(CREDENTIAL_WIRE_KINDS, 'credential.kind');
  switch (kind) {
    case 'pin':
      return { kind, verifier: r.bytes(DIGEST_LEN, 'credential.verifier') };
    case 'pinOverlap': {
      const verifier = r.bytes(DIGEST_LEN, 'credential.verifier');
      return { kind: 'pin', verifier, previous: r.bytes(DIGEST_LEN, 'credential.previous') };
    }
    case 'tag':
      return { kind, hash: r.bytes(DIGEST_LEN, 'credential.hash') };
    case 'digitalKey': {
      const challenge = r.bytes(CHALLENGE_LEN, 'credential.challenge');
      const length = r.u16('credential.presentation.length', 1, MAX_PRESENTATION_LEN);
      return { kind, challenge, presentation: r.bytes(length, 'credential.presentation') };
    }
  }
}

export function readRequest(r: Reader, type: Operation, id: number): Request {
  switch (type) {
    case 'open':
      return { type, id, durationMs: r.u32('durationMs', 1, MAX_OPEN_MS) };
    case 'setMode':
      return { type, id, mode: r.choice(LOCK_MODES, 'mode') };
    case 'getEvents':
      return { type, id, sinceSeq: r.u32('sinceSeq') };
    case 'ackEvents':
      return { type, id, uptoSeq: r.u32('uptoSeq') };
    case 'setTime':
      return { type, id, unixMs: r.u64('unixMs') };
    case 'setOffline':
      return readOffline(r, id);
    case 'setPinKey': {
      const version = r.u32('version', 1, MAX_PIN_KEY_VERSION);
      const key = r.bytes(PIN_KEY_LEN, 'key');
      return { type, id, version, key, previousUntil: r.u64('previousUntil') };
    }
    case 'lock':
    case 'getState':
    case 'detach':
      return { type, id };
    default:
      return readFirmwareRequest(r, type, id);
  }
}

/**
 * The events an `open` answer carries: count u8 (0…MAX_EVENTS_PER_ANSWER), then the events, their
 * sequence numbers strictly increasing and the last at most the state's lastSeq (a lock cannot
 * have logged an event beyond its own newest).
 */
function checkCarried(events: LockEvent[], state: LockState): void {
  for (let i = 1; i < events.length; i++) {
    check((events[i] as LockEvent).seq > (events[i - 1] as LockEvent).seq, 'events', 'sequence numbers must increase');
  }
  const last = events[events.length - 1];
  check(last === undefined || last.seq <= state.lastSeq, 'events', "beyond the state's lastSeq");
}

export function writeResult(w: Writer, result: OpResult): void {
  switch (result.op) {
    case 'open':
      writeState(w, result.state);
      check(Array.isArray(result.events), 'events', 'must be an array');
      check(
        result.events.length <= MAX_EVENTS_PER_ANSWER,
        'events',
        () => `at most ${MAX_EVENTS_PER_ANSWER} per answer`,
      );
      w.u8(result.events.length, 'events.length');
      for (const e of result.events) writeEvent(w, e);
      checkCarried(result.events, result.state);
      break;
    case 'lock':
    case 'setMode':
    case 'getState':
      writeState(w, result.state);
      break;
    case 'getEvents':
      check(Array.isArray(result.events), 'events', 'must be an array');
      w.u8(result.events.length, 'events.length');
      check(result.events.length <= MAX_EVENTS_PER_BATCH, 'events', () => `at most ${MAX_EVENTS_PER_BATCH} per batch`);
      w.bool(result.more, 'more');
      for (const e of result.events) writeEvent(w, e);
      break;
    case 'setOffline':
      w.u16(result.held, 'held');
      w.u16(result.capacity, 'capacity');
      check(result.held <= result.capacity, 'held', 'must not exceed capacity');
      w.bytes(result.digest, DIGEST_LEN, 'digest');
      break;
    case 'setPinKey':
      w.u32(result.version, 'version');
      w.u32(result.previous, 'previous');
      check(result.previous < result.version || result.previous === 0, 'previous', 'must be below version, or 0');
      break;
    case 'ackEvents':
    case 'setTime':
    case 'detach':
      break;
    default:
      writeFirmwareResult(w, result);
  }
}

export function readResult(r: Reader, op: Operation): OpResult {
  switch (op) {
    case 'open': {
      const state = readState(r);
      const count = r.u8();
      check(count <= MAX_EVENTS_PER_ANSWER, 'events', () => `at most ${MAX_EVENTS_PER_ANSWER} per answer`);
      const events: LockEvent[] = [];
      for (let i = 0; i < count; i++) events.push(readEvent(r));
      checkCarried(events, state);
      return { op, state, events };
    }
    case 'lock':
    case 'setMode':
    case 'getState':
      return { op, state: readState(r) };
    case 'getEvents': {
      const count = r.u8();
      check(count <= MAX_EVENTS_PER_BATCH, 'events', () => `at most ${MAX_EVENTS_PER_BATCH} per batch`);
      const more = r.bool('more');
      const events: LockEvent[] = [];
      for (let i = 0; i < count; i++) events.push(readEvent(r));
      return { op, events, more };
    }
    case 'setOffline': {
      const held = r.u16('held');
      const capacity = r.u16('capacity');
      check(held <= capacity, 'held', 'must not exceed capacity');
      return { op, held, capacity, digest: r.bytes(DIGEST_LEN, 'digest') };
    }
    case 'setPinKey': {
      const version = r.u32('version');
      const previous = r.u32('previous');
      check(previous < version || previous === 0, 'previous', 'must be below version, or 0');
      return { op, version, previous };
    }
    case 'ackEvents':
    case 'setTime':
    case 'detach':
      return { op };
    default:
      return readFirmwareResult(r, op);
  }
}
