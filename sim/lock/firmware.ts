import { sha256 } from '@noble/hashes/sha2.js';
import { isHubError } from '../../src/base/errors.js';
import type { FirmwareOutcome, FirmwareRequest, FirmwareVersion, Response } from '../../src/contract/link-messages.js';
import {
  decodeManifest,
  equalBytes,
  type FirmwareRefusal,
  formatVersion,
  parseVersion,
  verifyManifest,
} from '../../src/firmware/image.js';
import type { LockMemory } from './memory.js';
import type { FirmwareStaging } from './storage.js';

/**
 * The lock's bootloader side of a firmware update: it checks the signed manifest against its own
 * pinned vendor keys, its model and its running version before it takes a block; it writes the
 * blocks to its staging area in flash (so a transfer resumes after a lost link, a hub restart or
 * its own power cut); and at fwFinish it checks the SHA-256 of what it holds and the signature
 * again, then installs. An install that fails leaves the old firmware running and the staged
 * image in place, so the hub may try fwFinish again or begin another image.
 */

export interface LockFirmwareOptions {
  readonly memory: LockMemory;
  /** The model this lock is (firmware for another model is refused). */
  readonly model: string;
  /** The version it left the factory with, when its flash has none yet. */
  readonly factoryVersion: FirmwareVersion;
  /** The vendor's Ed25519 public keys in its boot ROM. */
  readonly vendorKeys: readonly Uint8Array[];
  /** The staging area's size, bytes. */
  readonly capacity: number;
  /** A fault to inject: true makes the next install fail (the old firmware keeps running). */
  failNextInstall(): boolean;
}

const REFUSAL_OUTCOME: Record<FirmwareRefusal, FirmwareOutcome> = {
  malformed: 'malformed',
  forged: 'forged',
  truncated: 'incomplete',
  'digest-mismatch': 'digest-mismatch',
  'wrong-model': 'wrong-model',
  downgrade: 'downgrade',
  'too-large': 'too-large',
};

function outcomeOf(e: unknown): FirmwareOutcome {
  if (isHubError(e) && e.code.startsWith('firmware.')) {
    return REFUSAL_OUTCOME[e.code.slice('firmware.'.length) as FirmwareRefusal] ?? 'malformed';
  }
  throw e;
}

export class LockFirmware {
  readonly #o: LockFirmwareOptions;

  constructor(options: LockFirmwareOptions) {
    this.#o = options;
  }

  /** The version running now. */
  version(): FirmwareVersion {
    const saved = this.#o.memory.running().firmware?.version;
    return (saved === undefined ? undefined : parseVersion(saved)) ?? this.#o.factoryVersion;
  }

  staging(): FirmwareStaging | null {
    return this.#o.memory.running().firmware?.staging ?? null;
  }

  execute(id: number, request: FirmwareRequest): Response {
    switch (request.type) {
      case 'fwStatus':
        return this.#status(id);
      case 'fwBegin':
        return this.#begin(id, request.manifest, request.signature);
      case 'fwBlock':
        return this.#block(id, request.offset, request.data);
      case 'fwFinish':
        return this.#finish(id);
    }
  }

  #status(id: number): Response {
    const staging = this.staging();
    return {
      type: 'ok',
      id,
      result: {
        op: 'fwStatus',
        model: this.#o.model,
        version: this.version(),
        staged: staging ? new Uint8Array(Buffer.from(staging.sha256, 'hex')) : null,
        offset: staging ? stagedBytes(staging).length : 0,
      },
    };
  }

  #begin(id: number, manifestBytes: Uint8Array, signature: Uint8Array): Response {
    const answer = (outcome: FirmwareOutcome, offset = 0): Response => ({
      type: 'ok',
      id,
      result: { op: 'fwBegin', outcome, offset },
    });
    let sha: string;
    try {
      const m = verifyManifest(manifestBytes, signature, {
        vendorKeys: this.#o.vendorKeys,
        model: this.#o.model,
        running: this.version(),
        maxSize: this.#o.capacity,
      });
      sha = Buffer.from(m.sha256).toString('hex');
    } catch (e) {
      return answer(outcomeOf(e));
    }
    const staging = this.staging();
    // The same image begun before: resume where the flash stopped.
    if (staging && staging.sha256 === sha && staging.manifest === hexOf(manifestBytes))
      return answer('accepted', stagedBytes(staging).length);
    this.#setStaging({ sha256: sha, manifest: hexOf(manifestBytes), signature: hexOf(signature), data: '' });
    return answer('accepted', 0);
  }

  #block(id: number, offset: number, data: Uint8Array): Response {
    const staging = this.staging();
    if (!staging) return { type: 'error', id, code: 'bad-request' };
    const held = stagedBytes(staging);
    const size = decodeManifest(Buffer.from(staging.manifest, 'hex')).size;
    // Only the next bytes are taken; anything else is answered with where the lock stands, so
    // the hub resumes from there (a repeat, a block that overtook another, a hub that restarted).
    if (offset === held.length && held.length + data.length <= size) {
      const next = new Uint8Array(held.length + data.length);
      next.set(held);
      next.set(data, held.length);
      this.#setStaging({ ...staging, data: Buffer.from(next).toString('base64') });
      return { type: 'ok', id, result: { op: 'fwBlock', offset: next.length } };
    }
    return { type: 'ok', id, result: { op: 'fwBlock', offset: held.length } };
  }

  #finish(id: number): Response {
    const answer = (outcome: FirmwareOutcome): Response => ({
      type: 'ok',
      id,
      result: { op: 'fwFinish', outcome, version: this.version() },
    });
    const staging = this.staging();
    if (!staging) return answer('no-transfer');
    const manifestBytes = new Uint8Array(Buffer.from(staging.manifest, 'hex'));
    const held = stagedBytes(staging);
    let version: FirmwareVersion;
    try {
      // Checked again from flash: the staging area is not trusted across a power cut.
      const m = verifyManifest(manifestBytes, new Uint8Array(Buffer.from(staging.signature, 'hex')), {
        vendorKeys: this.#o.vendorKeys,
        model: this.#o.model,
        running: this.version(),
        maxSize: this.#o.capacity,
      });
      if (held.length < m.size) return answer('incomplete');
      if (!equalBytes(sha256(held), m.sha256)) {
        // What it holds cannot become that image: start again from nothing.
        this.#setStaging(null);
        return answer('digest-mismatch');
      }
      version = m.version;
    } catch (e) {
      return answer(outcomeOf(e));
    }
    if (this.#o.failNextInstall()) return answer('install-failed');
    this.#o.memory.change((d) => {
      d.firmware = { version: formatVersion(version), staging: null };
    });
    return answer('installed');
  }

  #setStaging(staging: FirmwareStaging | null): void {
    const version = formatVersion(this.version());
    this.#o.memory.change((d) => {
      d.firmware = { version, staging };
    });
  }
}

function stagedBytes(s: FirmwareStaging): Uint8Array {
  return new Uint8Array(Buffer.from(s.data, 'base64'));
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
