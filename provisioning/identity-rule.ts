import { HubError } from '../src/base/errors.js';

/**
 * The identity rule on its own (no node-forge): provisioning/hub-id.ts checks every hub id with it
 * and is loaded by the daemon, which must not load provisioning/dev-pki.ts (and node-forge with
 * it, ~2 MB of heap for the daemon's whole life) for it (docs/operations.md, "Memory").
 */

const MAX_ID_CHARS = 64;

/**
 * A certificate CN that becomes an MQTT user name and a topic level (`ks/hubs/{id}/...`):
 * not empty, at most 64 characters, no `+`, `#` or `/`, no control characters.
 */
export function validateIdentity(id: string, what = 'hub id'): void {
  const refuse = (rule: string): never => {
    throw new HubError('pki.bad-identity', `The ${what} ${JSON.stringify(id)} is refused: ${rule}.`, {
      hint: `Choose a ${what} of 1-${MAX_ID_CHARS} printable characters without '+', '#' or '/' (e.g. "hub-0001").`,
    });
  };
  const chars = [...id];
  if (chars.length === 0) refuse('it is empty');
  if (chars.length > MAX_ID_CHARS) refuse(`it has ${chars.length} characters, more than ${MAX_ID_CHARS}`);
  for (const c of ['+', '#', '/']) {
    if (id.includes(c)) refuse(`it contains '${c}', which is an MQTT wildcard or topic separator`);
  }
  const isControl = (n: number) => n < 0x20 || (n >= 0x7f && n <= 0x9f);
  if (chars.some((c) => isControl(c.codePointAt(0) ?? 0))) refuse('it contains a control character');
}
