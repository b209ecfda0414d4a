import { HubError } from '../../src/base/errors.js';
import type { Secret } from '../../src/crypto/secret.js';
import type { Coordinator } from './coordinator.js';
import { parseInstallCodeText } from './install-code.js';

/**
 * Hands a lock's install code to the coordinator (the trust center), which derives the lock's link
 * key from it. Kept apart from the parser because this is the part that meets herdsman: its errors
 * quote the code, so while herdsman holds it the code is scrubbed from its log lines and only
 * Z-Stack's status name survives into our error; the code bytes are wiped once herdsman is done.
 */
export async function registerInstallCode(c: Coordinator, installCode: Secret): Promise<void> {
  const refuse = (reason: string, hint: string): HubError => {
    c.counters.installCodesRefused++;
    c.log.warn({ reason }, 'ZigBee: install code refused');
    return new HubError('attach.install-code', `the install code is not valid: ${reason}`, { hint });
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(installCode.reveal());
  } catch {
    throw refuse('it is not text (invalid UTF-8)', 'enter the code as printed on the lock or its QR label');
  }
  const parsed = parseInstallCodeText(text);
  if (!parsed.ok) throw refuse(parsed.reason, 'enter the code as printed on the lock or its QR label');
  const { ieee, code } = parsed.value;
  const controller = c.ready();
  if (!controller) {
    code.fill(0);
    c.counters.installCodesRefused++;
    throw new HubError(
      'attach.install-code',
      `the install code for ${ieee} was not registered: the ZigBee adapter is not ready (${c.reason()})`,
      { hint: 'retry once the ZigBee bearer is ready' },
    );
  }
  // herdsman's errors and log lines may spell the code (its refused-request error quotes the MT
  // payload): scrub it as a secret for as long as herdsman handles it.
  c.transientSecrets.add(code);
  try {
    await c.bounded(controller.addInstallCode(text.trim()), 10_000, 'registering the install code');
  } catch (e) {
    throw refuse(
      `the adapter refused it (${adapterReason(e)})`,
      'check the code against the lock label; a Z-Stack 3 coordinator takes 16-byte codes (36 hex digits with the CRC)',
    );
  } finally {
    c.transientSecrets.delete(code);
    code.fill(0);
  }
  c.counters.installCodesAdded++;
  c.log.info({ ieee }, 'ZigBee: install code registered');
}

/**
 * Why herdsman failed to register an install code, without the code: only Z-Stack's status name
 * (herdsman's error quotes the whole request, code included) or a timeout.
 */
function adapterReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  // herdsman: "--> 'SREQ: … {payload}' failed with status '(0x02: INVALID_PARAMETER)' (expected …)".
  const status = /failed with status '\((0x[0-9a-f]{2}): ([A-Z_]{1,40})\)'/.exec(message);
  if (status) return `status ${status[2]} ${status[1]}`;
  if (/took longer than/.test(message)) return 'no answer within 10 s';
  if (/ZStack 1\.2|ZStack12/i.test(message)) return 'a Z-Stack 1.2 coordinator has no install codes';
  return 'the request failed';
}
