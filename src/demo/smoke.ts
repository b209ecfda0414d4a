import { statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { Writable } from 'node:stream';
import type { Hub } from '../app/hub.js';
import { HubError, type HubErrorCode } from '../base/errors.js';
import { parseConfig } from '../config/load.js';
import type { HubStatus } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';
import { Secret } from '../crypto/secret.js';
import { createLogger } from '../log/logger.js';
import { Store } from '../store/store.js';
import { check, type Step } from './scenario.js';

function expectHubError(fn: () => unknown, code: HubErrorCode): HubError {
  try {
    fn();
  } catch (e) {
    check(e instanceof HubError && e.code === code, `expected ${code}, got ${String((e as Error).message)}`);
    return e;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

async function rawRequest(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(line));
    c.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) {
        c.end();
        resolve(buf.trim());
      }
    });
    c.on('error', reject);
  });
}

/** Steps run against the first daemon of the smoke scenario. */
export function smokeSteps(hub: Hub, marker: string): Step[] {
  const socket = hub.control.path;
  return [
    {
      name: 'the store is open in WAL mode with synchronous=FULL and passed its integrity check',
      run() {
        const i = hub.store.info;
        check(i.integrity === 'ok', 'integrity check did not pass');
        check(i.journalMode === 'wal', `journal mode is ${i.journalMode}`);
        check(i.synchronous === '2', `synchronous is ${i.synchronous}, expected 2 (FULL)`);
      },
    },
    {
      name: 'the storage key is readable by the daemon only (mode 0600)',
      run() {
        const mode = statSync(hub.storageKey.path).mode & 0o777;
        check(mode === 0o600, `mode is ${mode.toString(8)}`);
      },
    },
    {
      name: 'a sealed secret opens in its own record and is refused in another',
      run() {
        const blob = hub.sealer.seal(new TextEncoder().encode('link key'), { purpose: 'demo', id: 'L1' });
        check(
          new TextDecoder().decode(hub.sealer.open(blob, { purpose: 'demo', id: 'L1' }).reveal()) === 'link key',
          'did not round-trip',
        );
        expectHubError(() => hub.sealer.open(blob, { purpose: 'demo', id: 'L2' }), 'seal.open');
      },
    },
    {
      name: 'the control socket answers `status`',
      async run() {
        const s = (await callDaemon(socket, 'status')) as HubStatus;
        check(s.pid === process.pid && s.store.ok, 'unexpected status');
        check(
          s.components.some((c) => c.name === 'control' && c.state === 'running'),
          'control not running',
        );
      },
    },
    {
      name: 'a malformed control request is refused and the daemon keeps serving',
      async run() {
        const reply = JSON.parse(await rawRequest(socket, '{"id": 7, "method": "status", "params": {"x": 1}}\n')) as {
          ok: boolean;
          error?: { code: string };
        };
        check(!reply.ok && reply.error?.code === 'control.bad-params', `reply was ${JSON.stringify(reply)}`);
        const garbage = JSON.parse(await rawRequest(socket, 'not json\n')) as { ok: boolean };
        check(!garbage.ok, 'garbage accepted');
        await callDaemon(socket, 'status');
      },
    },
    {
      name: 'a config with a typo is refused, naming the key',
      run() {
        const e = expectHubError(() => parseConfig('log:\n  levl: debug\n', 'config.yaml'), 'config.invalid');
        check(e.message.includes('`log.levl`') && e.message.includes('did you mean `log.level`'), e.message);
      },
    },
    {
      name: 'a PIN, a setup code and a key never reach the log',
      run() {
        let out = '';
        const sink = new Writable({
          write(c, _e, done) {
            out += c.toString();
            done();
          },
        });
        const log = createLogger({ level: 'info', pretty: false, destination: sink });
        log.info(
          { pin: '424242', lock: { setupCode: 'SETUP-9731' }, linkKey: new Secret(Buffer.from('k3y-material')) },
          'credential presented',
        );
        log.info({ user: { credential: { pin: '424242' } } }, 'nested');
        check(out.includes('credential presented'), 'log line missing');
        for (const s of ['424242', 'SETUP-9731', 'k3y-material']) check(!out.includes(s), `${s} leaked into the log`);
      },
    },
    {
      name: 'a second daemon on the same data directory is refused',
      run() {
        expectHubError(() => Store.open(hub.deps.config.dataDir), 'store.locked');
      },
    },
    {
      name: 'a committed write is recorded before the restart',
      run() {
        hub.store.journal('demo.marker', { marker }, hub.deps.clock.now());
      },
    },
  ];
}

/** Steps run against the second daemon, started on the same data directory after the first stopped. */
export function afterRestartSteps(hub: Hub, marker: string): Step[] {
  return [
    {
      name: 'after a restart the store opens, passes its integrity check and holds the committed write',
      run() {
        check(hub.store.info.integrity === 'ok', 'integrity');
        const row = hub.store.db
          .prepare("SELECT detail FROM journal WHERE kind = 'demo.marker' ORDER BY id DESC LIMIT 1")
          .get() as { detail: string } | undefined;
        check(
          row && (JSON.parse(row.detail) as { marker: string }).marker === marker,
          'the marker written before the restart is missing',
        );
      },
    },
  ];
}
