import type { X509Certificate } from 'node:crypto';
import { HubError } from '../src/base/errors.js';
import { ID_PATTERN } from '../src/contract/mqtt-topics.js';
import { cnOf } from './certificate.js';
import { validateIdentity } from './identity-rule.js';

/**
 * One rule for the hub id wherever it enters (a command's option, a CSR, a certificate's CN),
 * because the same id is a certificate CN, an MQTT user name and a topic level.
 */

/**
 * The hub id as the uplink uses it: a certificate CN, an MQTT user name and a topic level
 * (1-64 of A-Z a-z 0-9 . _ : -, starting with a letter or digit).
 */
export function validateHubId(hubId: string): void {
  validateIdentity(hubId, 'hub id');
  if (!new RegExp(ID_PATTERN).test(hubId)) {
    throw new HubError('provision.bad-hub-id', `The hub id ${JSON.stringify(hubId)} is refused.`, {
      hint: 'A hub id is 1-64 of A-Z a-z 0-9 . _ : - and starts with a letter or digit (e.g. "hub-0001").',
    });
  }
}

/**
 * The hub id a certificate names (its CN), refused (`<prefix>.hub-id`) unless it is a valid topic
 * segment. The prefix is a union so that each resulting code is one of error-codes.ts.
 */
export function hubIdOfCertificate(x509: X509Certificate, codePrefix: 'identity' | 'uplink'): string {
  const hubId = cnOf(x509.subject) ?? '';
  if (!new RegExp(ID_PATTERN).test(hubId)) {
    throw new HubError(
      `${codePrefix}.hub-id`,
      `the hub certificate's CN ${JSON.stringify(hubId)} is not a valid hub id`,
      {
        hint: 'the CN is the hub id and an MQTT topic segment: 1-64 of A-Z a-z 0-9 . _ : - (no / + #)',
      },
    );
  }
  return hubId;
}
