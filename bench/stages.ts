/**
 * Diagnostic, not a benchmark: loaded into the daemon of `command.remoteOpen` when the bench runs
 * with IQHUB_BENCH_STAGES=1 (NODE_OPTIONS=--import), it times the stages of each remote open
 * inside the hub by wrapping a few methods of the compiled modules (the same module instances the
 * daemon uses) and writes the timings to IQHUB_BENCH_STAGES_FILE when the daemon exits. The
 * command bench turns them into `command.stage.*` medians (stageBreakdown). Wrapping costs a few
 * microseconds per call: the end-to-end figures of such a run are a little slower than without.
 * Times are wall-clock (timeOrigin + now), so that they compare with the bench process's.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

/** [start ms, duration ms, what, enclosing wrapped calls joined by '>', detail]. */
export type StageRecord = [number, number, string, string, string];

type Method = (...args: unknown[]) => unknown;

async function install(file: string): Promise<void> {
  const log: StageRecord[] = [];
  const stack: string[] = [];
  // Wall-clock milliseconds with sub-millisecond precision: comparable with the bench process's.
  const now = () => performance.timeOrigin + performance.now();
  const record = (what: string, t0: number, context: string, detail = '') =>
    log.push([t0, now() - t0, what, context, detail]);

  /**
   * Time the calls of `proto[name]` as `what`: until the call returns (calls made meanwhile record
   * it as their context), or with `settled` until the promise it returns settles.
   */
  const wrap = (
    proto: object,
    name: string,
    what: string,
    opts: { detail?: (args: unknown[]) => string; settled?: boolean } = {},
  ) => {
    const target = proto as Record<string, Method>;
    const original = target[name];
    if (typeof original !== 'function') throw new Error(`stages: no method ${name} to time`);
    target[name] = function (this: unknown, ...args: unknown[]) {
      const t0 = now();
      const context = stack.join('>');
      const done = () => record(what, t0, context, opts.detail?.(args) ?? '');
      if (opts.settled) {
        const r = original.apply(this, args);
        if (r instanceof Promise) r.then(done, done);
        return r;
      }
      stack.push(what);
      try {
        return original.apply(this, args);
      } finally {
        stack.pop();
        done();
      }
    };
  };

  const fsyncSync = fs.fsyncSync;
  fs.fsyncSync = (fd: number) => {
    const t0 = now();
    try {
      fsyncSync(fd);
    } finally {
      record('fsync', t0, stack.join('>'));
    }
  };
  syncBuiltinESMExports();
  // When the bytes of a publish reach the TLS socket (not when the client was asked to publish).
  const net = await import('node:net');
  const tls = await import('node:tls');
  const socket = net.Socket.prototype as unknown as Record<string, Method>;
  const writeGeneric = socket._writeGeneric;
  if (typeof writeGeneric !== 'function') throw new Error('stages: no net.Socket._writeGeneric to time');
  socket._writeGeneric = function (this: unknown, ...args: unknown[]) {
    if (this instanceof tls.TLSSocket) record('socketWrite', now(), stack.join('>'));
    return writeGeneric.apply(this, args);
  };

  const { Store } = await import('../src/store/store.js');
  const { PairingStore } = await import('../src/link/pairing.js');
  const { FileLockStorage } = await import('../sim/lock/storage.js');
  const { UplinkClient } = await import('../src/uplink/mqtt-client.js');
  const { Inbound } = await import('../src/app/inbound.js');
  const { LinkManager } = await import('../src/link/manager.js');
  wrap(Store.prototype, 'transaction', 'commit');
  // The group commit records a command's answer (with the lock's state and events) after it left.
  wrap(Store.prototype, 'flushGroup', 'commit');
  wrap(Store.prototype, 'lazyTransaction', 'lazyCommit');
  wrap(PairingStore.prototype, 'storeEvents', 'storeEvents', { settled: true });
  wrap(FileLockStorage.prototype, 'save', 'lockFlash');
  wrap(UplinkClient.prototype, 'publish', 'publish', { detail: (a) => String(a[0]) });
  wrap(Inbound.prototype, 'handle', 'inbound', { detail: (a) => String(a[0]) });
  const { CommandVerifier } = await import('../src/commands/verifier.js');
  wrap(CommandVerifier.prototype, 'verify', 'verifier');
  wrap(LinkManager.prototype, 'open', 'linkOpen', { settled: true });
  process.on('exit', () => fs.writeFileSync(file, JSON.stringify(log)));
}

/** When the cloud (the bench process) sent each command and got its answer, wall-clock ms (wallNow), by command index. */
export interface CloudTimes {
  sent: number[];
  answered: number[];
}

/** Wall-clock ms with sub-millisecond precision, as the daemon's records are stamped. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Per-command stage durations (ms) from a daemon's records, for the commands whose index (in
 * arrival order at the daemon) is in [from, to). With the cloud's times, also `toHub` (from the
 * cloud's publish of the signed envelope, through the broker, until the daemon handles the
 * command) and `toCloud` (from the daemon's publish of the result until it resolved at the cloud): the
 * two legs of what command.mqttRtt measures bare. `fromLock`: from the lock's flash write until
 * the result was published or recorded, whichever came first; `toPublish` only for results
 * recorded before they were published. `toSocket`: from that publish until its bytes
 * were handed to the TLS socket (a socket still finishing an earlier write holds them back).
 */
export function stageBreakdown(
  log: StageRecord[],
  from: number,
  to: number,
  cloud?: CloudTimes,
): Record<string, number[]> {
  const sorted = [...log].sort((a, b) => a[0] - b[0]);
  const starts = sorted.filter((r) => r[2] === 'inbound' && r[4] === 'cmd');
  const out: Record<string, number[]> = {};
  const add = (k: string, v: number) => {
    out[k] ??= [];
    out[k].push(v);
  };
  for (let i = from; i < Math.min(to, starts.length); i++) {
    const t0 = starts[i]?.[0] ?? 0;
    const t1 = starts[i + 1]?.[0] ?? Number.POSITIVE_INFINITY;
    const own = sorted.filter((r) => r[0] >= t0 && r[0] < t1);
    const claim = own.find((r) => r[2] === 'commit' && r[3] === 'inbound');
    const open = own.find((r) => r[2] === 'linkOpen');
    const flash = own.find((r) => r[2] === 'lockFlash' && open && r[0] < open[0] + open[1]);
    const finish = own.find((r) => r[2] === 'commit' && r[3] === '' && open && r[0] >= open[0] + open[1] - 0.001);
    const result = own.find((r) => r[2] === 'publish' && r[4] === 'cmd/result');
    if (!claim || !open || !finish || !result) continue;
    const end = (r: StageRecord) => r[0] + r[1];
    add('verify', claim[0] - t0);
    const verifier = own.find((r) => r[2] === 'verifier');
    if (verifier) {
      add('verify.parse', verifier[0] - t0);
      add('verify.verifier', verifier[1]);
    }
    add('claimCommit', claim[1]);
    // The answer is published ahead of its record when nothing queued waits (Inbox.finish),
    // else recorded first: fromLock ends at whichever came first.
    const first = result[0] < finish[0] ? result : finish;
    if (flash) {
      add('toLock', flash[0] - end(claim));
      add('lockFlash', flash[1]);
      add('fromLock', first[0] - end(flash));
    }
    add('resultCommit', finish[1]);
    if (first === finish) add('toPublish', result[0] - end(finish));
    const written = own.find((r) => r[2] === 'socketWrite' && r[0] >= result[0]);
    if (written) add('toSocket', written[0] - result[0]);
    add('hub', result[0] - t0);
    const fsyncs = own.filter((r) => r[2] === 'fsync' && r[0] < result[0]);
    add(
      'lockFsyncsBeforeResult',
      fsyncs.reduce((s, r) => s + r[1], 0),
    );
    const after = own.filter(
      (r) => r[0] >= result[0] && (r[2] === 'commit' || r[2] === 'lockFlash' || r[2] === 'lazyCommit'),
    );
    add(
      'afterResult',
      after.reduce((s, r) => s + r[1], 0),
    );
    const sent = cloud?.sent[i];
    const answered = cloud?.answered[i];
    if (sent !== undefined && answered !== undefined) {
      add('toHub', t0 - sent);
      add('toCloud', answered - result[0]);
    }
  }
  return out;
}

const file = process.env.IQHUB_BENCH_STAGES_FILE;
if (file && process.argv.includes('run')) await install(file);
