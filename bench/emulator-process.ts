/**
 * The radio emulators in a process of their own, for benches whose daemon is a process too
 * (bench/zigbee-open.bench.ts): neither the emulated controllers nor the simulated locks they host
 * run on the daemon's event loop or in its CPU figures.
 *
 * `node dist/bench/emulator-process.js SPEC_JSON`, SPEC_JSON = { socat, seed, locks: SiteLockSpec[] }
 * (sim/emu/site.ts: the HCI emulator behind a socat PTY, the ZNP emulator on TCP). It prints one JSON line on stdout,
 * `{"ready":true,"radios":{…}}` (the daemon's `radios` section), then answers one JSON line per
 * line it reads on stdin:
 *   {"card":"<deviceId>"}   the lock's maintenance card (attach mode)  → {"ok":true}
 *   {"opens":"<deviceId>"}  opens the lock handled so far               → {"ok":true,"opens":N}
 *   {"quit":true}           stops the locks and both emulators, exits
 * Closing stdin quits too (the bench died: the emulators do not outlive it).
 */
import { createInterface } from 'node:readline';
import { type SiteLockSpec, startRadioSite } from '../sim/emu/site.js';

interface Spec {
  socat: string;
  seed: string;
  locks: SiteLockSpec[];
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const site = await startRadioSite({ socat: spec.socat, locks: spec.locks, seed: spec.seed });
const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
reply({ ready: true, radios: site.radios });

let closing = false;
const quit = async () => {
  if (closing) return;
  closing = true;
  await site.close();
  process.exit(0);
};
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const m = JSON.parse(line) as { card?: string; opens?: string; quit?: boolean };
  const lock = site.locks.get(m.card ?? m.opens ?? '');
  if (m.quit) void quit();
  else if (!lock) reply({ ok: false, error: `no lock ${m.card ?? m.opens}` });
  else if (m.card) {
    lock.presentMaintenanceCard();
    reply({ ok: true });
  } else reply({ ok: true, opens: lock.requestCounts().handled.open ?? 0 });
});
lines.on('close', () => void quit());
