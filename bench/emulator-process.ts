/**
 * The radio emulators in a process of their own, for benches whose daemon is a process too
 * (bench/zigbee-open.bench.ts): neither the emulated controllers nor the simulated locks they host
 * run on the daemon's event loop or in its CPU figures.
 *
 * `node dist/bench/emulator-process.js SPEC_JSON`, SPEC_JSON = { socat, seed, locks: SiteLockSpec[],
 * zigbeeAirDelayMs? } (sim/emu/site.ts: the HCI emulator behind a socat PTY, the ZNP emulator on TCP).
 * The emulators add no delay of their own: the ZNP emulator's air time is 0 unless the spec sets
 * `zigbeeAirDelayMs` (the site's default is 3 ms per data request), so what a bench measures past
 * the broker is the hub's (and the emulators' own CPU, reported apart). It prints one JSON line on stdout,
 * `{"ready":true,"radios":{…}}` (the daemon's `radios` section), then answers one JSON line per
 * line it reads on stdin:
 *   {"card":"<deviceId>"}   the lock's maintenance card (attach mode)  → {"ok":true}
 *   {"opens":"<deviceId>"}  opens the lock handled so far               → {"ok":true,"opens":N}
 *   {"quit":true}           stops the locks and both emulators, exits
 * Closing stdin quits too (the bench died: the emulators do not outlive it).
 *
 * IQHUB_EMULATOR_PROF=DIR (inherited from the bench's environment): V8 CPU profiles of this
 * process over each measured stretch — from the first `opens` question about a lock to the next
 * one, which is how bench/zigbee-open.bench.ts brackets its measured opens — written to
 * DIR/emulator-<radio>.cpuprofile, and DIR/emulator-windows.json for
 * `node dist/bench/profile-window.js DIR/emulator-zigbee.cpuprofile DIR/emulator-windows.json zigbee`
 * (ms per open of the emulators and the simulated lock). IQHUB_EMULATOR_PROF_INTERVAL_US sets the
 * sampling interval (default 200 µs).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type SiteLockSpec, startRadioSite } from '../sim/emu/site.js';

interface Spec {
  socat: string;
  seed: string;
  locks: SiteLockSpec[];
  zigbeeAirDelayMs?: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const site = await startRadioSite({
  socat: spec.socat,
  locks: spec.locks,
  seed: spec.seed,
  zigbeeAirDelayMs: spec.zigbeeAirDelayMs ?? 0,
});
const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
reply({ ready: true, radios: site.radios });

let closing = false;
const quit = async () => {
  if (closing) return;
  closing = true;
  await site.close();
  process.exit(0);
};
const profiler = emulatorProfiler(process.env.IQHUB_EMULATOR_PROF);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const m = JSON.parse(line) as { card?: string; opens?: string; quit?: boolean };
  const lock = site.locks.get(m.card ?? m.opens ?? '');
  if (m.quit) void quit();
  else if (!lock) reply({ ok: false, error: `no lock ${m.card ?? m.opens}` });
  else if (m.card) {
    lock.presentMaintenanceCard();
    reply({ ok: true });
  } else {
    const opens = lock.requestCounts().handled.open ?? 0;
    const radio = spec.locks.find((l) => l.deviceId === m.opens)?.radio ?? 'lock';
    // Answered after the profiler turned: the bench starts its measured opens on this answer.
    void profiler(radio, opens).then(() => reply({ ok: true, opens }));
  }
});
lines.on('close', () => void quit());

/**
 * The profiler of IQHUB_EMULATOR_PROF: the first call for a radio starts profiling, the second
 * stops it and writes the profile and the stretch (in the profile's clock) with the opens in it.
 */
function emulatorProfiler(dir: string | undefined): (radio: string, opens: number) => Promise<void> {
  if (!dir) return async () => {};
  const session = new Session();
  session.connect();
  const open = new Map<string, number>();
  const windows: Record<string, { fromUs: number; toUs: number; opens: number }> = {};
  const interval = Number(process.env.IQHUB_EMULATOR_PROF_INTERVAL_US ?? 200);
  return async (radio, opens) => {
    const from = open.get(radio);
    if (from === undefined) {
      open.set(radio, opens);
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval });
      await session.post('Profiler.start');
      return;
    }
    open.delete(radio);
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(dir, `emulator-${radio}.cpuprofile`), JSON.stringify(profile));
    windows[radio] = { fromUs: profile.startTime, toUs: profile.endTime, opens: opens - from };
    writeFileSync(join(dir, 'emulator-windows.json'), `${JSON.stringify(windows, null, 2)}\n`);
  };
}
