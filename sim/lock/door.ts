import type { Presentation } from '../../src/access/digital-key.js';
import type { AccessReason, DenyReason, LinkCredential } from '../../src/contract/link-messages.js';
import type { HubSessions } from './hub-sessions.js';
import type { LockMemory } from './memory.js';
import type { Relock } from './relock.js';

/**
 * The door's decision on a credential: the hub decides when it answers in time; without it, a PIN
 * or tag on the offline list is admitted within one of its windows and anything else is refused
 * `hub-unreachable` (a digital key always needs the hub). Every outcome is logged as an event,
 * so the hub learns of decisions the lock took alone.
 */

/** What happened at the door: opened or not, why, and whether the hub or the offline list decided. */
export interface DoorOutcome {
  opened: boolean;
  reason: AccessReason | DenyReason;
  credentialId: string | null;
  decidedBy: 'hub' | 'offline-list' | 'lock';
}

/** The phone's side at the door: answers a challenge for this lock (sim/phone's SimPhone does). */
export interface PhoneAtTheDoor {
  present(challenge: Uint8Array, lockId: string, keyId?: string): Presentation;
}

export interface DoorOptions {
  readonly memory: LockMemory;
  readonly sessions: HubSessions;
  readonly relock: Relock;
  /** How long the bolt stays drawn back after a granted credential, ms. */
  readonly grantOpenMs: number;
}

export class Door {
  readonly #o: DoorOptions;

  constructor(options: DoorOptions) {
    this.#o = options;
  }

  /**
   * Ask the bound hub (see HubSessions.askHub), else decide from the offline list; then log the
   * outcome as opened{by, credentialId} or denied{reason, credentialId}.
   */
  async decide(method: 'pin' | 'tag' | 'digitalKey', credential: LinkCredential): Promise<DoorOutcome> {
    const { memory, relock } = this.#o;
    const p = memory.running();
    const generation = memory.generation;
    let outcome: DoorOutcome;
    if (p.mode === 'locked') {
      outcome = { opened: false, reason: 'locked-mode', credentialId: null, decidedBy: 'lock' };
    } else {
      const answer = await this.#o.sessions.askHub(credential);
      if (answer) {
        outcome = {
          opened: answer.grant,
          reason: answer.reason,
          credentialId: answer.credentialId,
          decidedBy: 'hub',
        };
      } else {
        outcome = this.#offline(credential);
      }
    }
    if (!memory.alive(generation)) return { ...outcome, opened: false };
    if (outcome.opened) {
      memory.change((d, emit) => {
        d.bolt = 'unlocked';
        emit({ type: 'opened', by: method, credentialId: outcome.credentialId });
      });
      if (memory.running().mode === 'normal') relock.arm(this.#o.grantOpenMs);
    } else {
      const reason = (outcome.reason === 'granted' ? 'malformed' : outcome.reason) as DenyReason;
      memory.change((_d, emit) => emit({ type: 'denied', reason, credentialId: outcome.credentialId }));
    }
    return outcome;
  }

  #offline(credential: LinkCredential): DoorOutcome {
    if (credential.kind === 'digitalKey') {
      return { opened: false, reason: 'hub-unreachable', credentialId: null, decidedBy: 'lock' };
    }
    const memory = this.#o.memory;
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    // A PIN during a key overlap matches under either key the lock holds.
    const digests =
      credential.kind === 'pin'
        ? [hex(credential.verifier), ...(credential.previous ? [hex(credential.previous)] : [])]
        : [hex(credential.hash)];
    const now = memory.now();
    const entry = memory.running().offlineAccess.find((e) => e.kind === credential.kind && digests.includes(e.digest));
    if (!entry) return { opened: false, reason: 'hub-unreachable', credentialId: null, decidedBy: 'offline-list' };
    const admitted = entry.windows.some((w) => now >= w.from && now < w.until);
    return admitted
      ? { opened: true, reason: 'granted', credentialId: entry.credentialId, decidedBy: 'offline-list' }
      : { opened: false, reason: 'outside-schedule', credentialId: entry.credentialId, decidedBy: 'offline-list' };
  }
}
