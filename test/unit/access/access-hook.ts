import type { AccessDecider } from '../../../src/access/decide.js';
import type { Hub } from '../link/manager/site.js';

/**
 * The hub's access requests answered by a decider given later (it reads the store the next
 * restart opens): call this before the restart, then the returned function with the decider.
 * A request before that is an error.
 */
export function answerAccessWith(hub: Hub): (decider: AccessDecider) => void {
  let decide: AccessDecider | undefined;
  hub.access = (lockId, credential) => {
    if (!decide) throw new Error('no decider yet');
    const d = decide.verifyAccess(lockId, credential);
    return { grant: d.grant, reason: d.reason, credentialId: d.credentialId };
  };
  return (decider) => {
    decide = decider;
  };
}
