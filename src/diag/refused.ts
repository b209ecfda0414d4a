import type { VerifierStats } from '../contract/control-socket.js';

// Apart from checks.ts (which reaches the store's files): the CLI's formatting needs only this.
/** Remote commands refused since start-up, for people: `3 refused (expired 1, otp_mismatch 2)` (codes in order, none with 0). */
export function refusedSummary(refused: VerifierStats['refused']): string {
  const counted = Object.entries(refused)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const total = counted.reduce((sum, [, n]) => sum + (n ?? 0), 0);
  const byCode = counted.length > 0 ? ` (${counted.map(([code, n]) => `${code} ${n}`).join(', ')})` : '';
  return `${total} refused${byCode}`;
}
