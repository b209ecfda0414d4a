/**
 * `node dist/bench/radio-site-process.js SOCAT SEED LOCKS_JSON BLE_MAX`: both emulated radio
 * controllers (sim/emu/site.ts) with the SimLocks of LOCKS_JSON (SiteLockSpec[]) in a process of
 * their own, so that a benchmark measures a daemon that shares nothing with them. Prints one line,
 * `{"radios": …}` (the daemon's `radios` section), once they are up; then reads commands on stdin,
 * one a line, and answers each on stdout:
 *   card DEVICE_ID   → the lock's maintenance card (attach mode) → `ok card DEVICE_ID`
 *   offline DEVICE_ID → `ok offline DEVICE_ID N` (entries in the lock's own offline list)
 * The end of stdin (the benchmark gone) or SIGTERM closes the site and exits.
 */
import { createInterface } from 'node:readline';
import { type SiteLockSpec, startRadioSite } from '../sim/emu/site.js';

const [socat, seed, locksJson, bleMax] = process.argv.slice(2);
if (!socat || !seed || !locksJson) {
  process.stderr.write('usage: radio-site-process.js SOCAT SEED LOCKS_JSON [BLE_MAX_CONNECTIONS]\n');
  process.exit(2);
}
const specs = JSON.parse(locksJson) as SiteLockSpec[];
const site = await startRadioSite({
  socat,
  seed,
  locks: specs,
  ...(bleMax ? { bleMaxConnections: Number(bleMax) } : {}),
});
let closing: Promise<void> | undefined;
const close = () => {
  closing ??= site.close().finally(() => process.exit(0));
  return closing;
};
process.on('SIGTERM', () => void close());
process.stdout.write(`${JSON.stringify({ radios: site.radios })}\n`);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [cmd, id = ''] = line.trim().split(/\s+/);
  const lock = site.locks.get(id);
  if (!lock) {
    process.stdout.write(`error no lock ${id}\n`);
    return;
  }
  if (cmd === 'card') {
    lock.presentMaintenanceCard();
    process.stdout.write(`ok card ${id}\n`);
  } else if (cmd === 'offline') {
    process.stdout.write(`ok offline ${id} ${lock.offlineAccess().length}\n`);
  } else {
    process.stdout.write(`error unknown command ${cmd}\n`);
  }
});
lines.on('close', () => void close());
