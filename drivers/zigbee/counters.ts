import type { RejectReason } from './link-cluster.js';

/**
 * What the driver counts, in one record the parts share: every refusal and failure is counted
 * rather than thrown, so these are how an operator (and a test) sees what the radio did.
 */

export interface ZigbeeCounters {
  advertisements: number;
  /** genBasic modelIds that are not an iq lock's (ignored). */
  foreignModelIds: number;
  joinsAccepted: number;
  /** Devices that announced themselves outside a join window and were told to leave. */
  joinsRefused: number;
  connects: number;
  connectFailures: number;
  fragmentsIn: number;
  fragmentsOut: number;
  framesIn: number;
  framesOut: number;
  /** Link-cluster frames refused: bad ZCL header, wrong manufacturer code, unknown command, or a bad fragment. */
  rejected: Record<RejectReason | 'bad-zcl' | 'unknown-command', number>;
  /** Fragments for an address with no open link. */
  withoutLink: number;
  /** Unfinished frames replaced by a newer one. */
  abandonedFrames: number;
  doorLockReports: number;
  backups: number;
  adapterLosses: number;
  adapterRecoveries: number;
  /** Errors herdsman threw at us (caught; the message went to the log, scrubbed). */
  herdsmanErrors: number;
  /** Install codes registered with the coordinator. */
  installCodesAdded: number;
  /** Install codes refused: malformed (never sent), or refused by the adapter. */
  installCodesRefused: number;
}

export function zeroCounters(): ZigbeeCounters {
  return {
    advertisements: 0,
    foreignModelIds: 0,
    joinsAccepted: 0,
    joinsRefused: 0,
    connects: 0,
    connectFailures: 0,
    fragmentsIn: 0,
    fragmentsOut: 0,
    framesIn: 0,
    framesOut: 0,
    rejected: {
      'short-fragment': 0,
      'bad-count': 0,
      'bad-index': 0,
      'count-mismatch': 0,
      'bad-fragment-size': 0,
      'duplicate-fragment': 0,
      'bad-zcl': 0,
      'unknown-command': 0,
    },
    withoutLink: 0,
    abandonedFrames: 0,
    doorLockReports: 0,
    backups: 0,
    adapterLosses: 0,
    adapterRecoveries: 0,
    herdsmanErrors: 0,
    installCodesAdded: 0,
    installCodesRefused: 0,
  };
}
