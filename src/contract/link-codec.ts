import { HubError } from '../base/errors.js';
import type { Result } from '../base/result.js';
import {
  readCredential,
  readEvent,
  readRequest,
  readResult,
  writeCredential,
  writeEvent,
  writeRequest,
  writeResult,
} from './link-bodies.js';
import {
  ACCESS_REASONS,
  type LinkMessage,
  LOCK_ERROR_CODES,
  MAX_LINK_MESSAGE_LEN,
  MESSAGE_VERSION,
  type Operation,
  operationCode,
  operationOfCode,
} from './link-messages.js';
import { check, type FrameError, Malformed, Reader, Writer } from './link-wire.js';

/**
 * The application messages carried inside the sealed channel, in a compact binary form.
 * Header: version (u8) ‖ type (u8) ‖ request id (u32 BE); then a body whose layout the type fixes.
 * All integers are big-endian. Decoding checks every field, bounds every length and accepts
 * exactly one encoding per message (no trailing bytes), so decode(x) succeeds only if
 * encode(decode(x)) === x. Input comes from a radio: decoding never throws.
 */

const TYPE_EVENT = 0x40;
/** Lock → hub: may this credential open me? Answered by TYPE_ACCESS_ANSWER with the same id. */
const TYPE_ACCESS = 0x30;
const TYPE_ACCESS_ANSWER = 0x31;
const TYPE_OK = 0x80;
/** Set in a request's type when an event acknowledgement (ack u32) follows the header. */
const TYPE_ACK_FLAG = 0x40;
const TYPE_ERROR = 0xc0;

export type DecodeResult = Result<LinkMessage, FrameError>;

function opCode(op: Operation): number {
  const code = operationCode(op);
  check(code >= 1, 'type', 'unknown operation');
  return code;
}

/** Encodes one message. Throws HubError `frame.invalid` for a value out of range: a bug in the caller. */
export function encodeMessage(m: LinkMessage): Uint8Array {
  const w = new Writer();
  try {
    w.u8(MESSAGE_VERSION, 'version');
    if (m.type === 'event') {
      w.u8(TYPE_EVENT, 'type');
      w.u32(0, 'id');
      writeEvent(w, m.event);
    } else if (m.type === 'access') {
      w.u8(TYPE_ACCESS, 'type');
      w.u32(m.id, 'id', 1);
      writeCredential(w, m.credential);
    } else if (m.type === 'accessAnswer') {
      w.u8(TYPE_ACCESS_ANSWER, 'type');
      w.u32(m.id, 'id', 1);
      w.bool(m.grant, 'grant');
      w.choice(ACCESS_REASONS, m.reason, 'reason');
      check(m.grant === (m.reason === 'granted'), 'reason', 'granted exactly when grant is true');
      w.credentialId(m.credentialId, 'credentialId');
    } else if (m.type === 'ok') {
      w.u8(TYPE_OK | opCode(m.result.op), 'type');
      w.u32(m.id, 'id', 1);
      writeResult(w, m.result);
    } else if (m.type === 'error') {
      w.u8(TYPE_ERROR, 'type');
      w.u32(m.id, 'id', 1);
      w.choice(LOCK_ERROR_CODES, m.code, 'code');
    } else {
      const acked = m.ack !== undefined;
      check(!acked || m.type !== 'ackEvents', 'ack', 'not on ackEvents');
      w.u8(opCode(m.type) | (acked ? TYPE_ACK_FLAG : 0), 'type');
      w.u32(m.id, 'id', 1);
      if (acked) w.u32(m.ack as number, 'ack', 1);
      writeRequest(w, m);
    }
    return w.finish();
  } catch (e) {
    if (e instanceof Malformed) throw new HubError('frame.invalid', `Cannot encode link message: ${e.message}`);
    throw e;
  }
}

/** Decodes one message from untrusted bytes; never throws. */
export function decodeMessage(bytes: Uint8Array): DecodeResult {
  try {
    if (!(bytes instanceof Uint8Array)) throw new Malformed('invalid-field', 'input is not bytes');
    if (bytes.length > MAX_LINK_MESSAGE_LEN)
      throw new Malformed('oversize', `longer than ${MAX_LINK_MESSAGE_LEN} bytes`);
    const r = new Reader(bytes);
    const version = r.u8();
    if (version !== MESSAGE_VERSION) throw new Malformed('version', `version ${version} is not ${MESSAGE_VERSION}`);
    const type = r.u8();
    const id = r.u32('id');
    let message: LinkMessage;
    const op = operationOfCode(type & 0x3f);
    if (type === TYPE_EVENT) {
      check(id === 0, 'id', 'must be 0 for a pushed event');
      message = { type: 'event', event: readEvent(r) };
    } else if (type === TYPE_ACCESS) {
      check(id !== 0, 'id', 'must not be 0 in an access request');
      message = { type: 'access', id, credential: readCredential(r) };
    } else if (type === TYPE_ACCESS_ANSWER) {
      check(id !== 0, 'id', 'must not be 0 in an access answer');
      const grant = r.bool('grant');
      const reason = r.choice(ACCESS_REASONS, 'reason');
      check(grant === (reason === 'granted'), 'reason', 'granted exactly when grant is true');
      message = { type: 'accessAnswer', id, grant, reason, credentialId: r.credentialId('credentialId') };
    } else if (type === TYPE_ERROR) {
      check(id !== 0, 'id', 'must not be 0 in a response');
      message = { type: 'error', id, code: r.choice(LOCK_ERROR_CODES, 'code') };
    } else if (op !== undefined && (type & 0xc0) === TYPE_OK) {
      check(id !== 0, 'id', 'must not be 0 in a response');
      message = { type: 'ok', id, result: readResult(r, op) };
    } else if (op !== undefined && (type & 0xc0) === 0) {
      check(id !== 0, 'id', 'must not be 0 in a request');
      message = readRequest(r, op, id);
    } else if (op !== undefined && (type & 0xc0) === TYPE_ACK_FLAG) {
      // A request with the hub's event acknowledgement riding on it: ack u32 (≥ 1), then the body.
      check(id !== 0, 'id', 'must not be 0 in a request');
      check(op !== 'ackEvents', 'ack', 'not on ackEvents');
      const ack = r.u32('ack', 1);
      message = { ...readRequest(r, op, id), ack };
    } else {
      throw new Malformed('unknown-type', `unknown message type 0x${type.toString(16).padStart(2, '0')}`);
    }
    r.end();
    return { ok: true, value: message };
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, error: { code: e.code, message: e.message } };
    return { ok: false, error: { code: 'invalid-field', message: 'undecodable message' } };
  }
}
