import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, createForeignCa, issueClientCert } from '../../../provisioning/dev-pki.js';
import { HubError } from '../../../src/base/errors.js';
import { isDemoPartMissing, loadDemoPart } from '../../../src/cli/demo-package.js';
import { checkExternalBroker, startBrokerRelay } from '../../../src/demo/demo-broker.js';

/**
 * `iqhub demo --broker URL --broker-pki DIR` (src/demo/demo-broker.ts): the options are checked
 * before anything starts, and the relay that lets the demo cut the hub's line to a broker it does
 * not own. The demo itself against mosquitto: test/integration/demo-package.test.ts and, inside
 * the hub image, test/vm/boot.test.ts.
 */

let base = '';
let pkiDir = '';

function copyPki(to: string, files: Record<string, string>): string {
  mkdirSync(to, { recursive: true });
  for (const [from, name] of Object.entries(files)) copyFileSync(join(pkiDir, from), join(to, name));
  return to;
}

const FULL = {
  'ca.crt': 'ca.crt',
  'hub.crt': 'hub.crt',
  'hub.key': 'hub.key',
  'cloud.crt': 'cloud.crt',
  'cloud.key': 'cloud.key',
};

function refusal(f: () => unknown): HubError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HubError);
    return e as HubError;
  }
  throw new Error('not refused');
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'iqhub-demo-broker-'));
  pkiDir = join(base, 'pki');
  createDevPki({ dir: pkiDir, hubId: 'demo-hub-7', cloudId: 'demo-cloud' });
  issueClientCert({ dir: pkiDir, cn: 'demo-cloud', fileName: 'same-as-cloud' });
  createForeignCa(join(base, 'foreign'), 'demo-hub-7');
}, 60_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('iqhub demo --broker: the options', () => {
  it('a dev PKI directory and an mqtts URL: the ids are the certificates’ CNs, the port 8883 by default', () => {
    const b = checkExternalBroker({ url: 'mqtts://10.0.2.2:18883', pkiDir });
    expect(b).toMatchObject({ host: '10.0.2.2', port: 18883, hubId: 'demo-hub-7', cloudId: 'demo-cloud' });
    expect(b.serverName).toBe('localhost');
    expect(
      checkExternalBroker({ url: 'mqtts://broker.example', pkiDir, serverName: 'mqtt.example.com' }),
    ).toMatchObject({ host: 'broker.example', port: 8883, serverName: 'mqtt.example.com' });
  });

  it.each([
    ['not a URL', 'broker:1883', /is not an mqtts:\/\/ URL|is not a URL/],
    ['plain MQTT', 'mqtt://127.0.0.1:1883', /not an mqtts:\/\/ URL/],
    ['credentials in the URL', 'mqtts://user:pw@127.0.0.1:8883', /more than a host and a port/],
    ['a path', 'mqtts://127.0.0.1:8883/x', /more than a host and a port/],
  ])('refuses %s', (_what, url, message) => {
    const e = refusal(() => checkExternalBroker({ url, pkiDir }));
    expect(e.code).toBe('demo.broker');
    expect(e.message).toMatch(message);
    expect(e.message).toContain('--broker');
  });

  it('never echoes a password given in the URL', () => {
    for (const url of ['mqtts://user:s3cret-pw@127.0.0.1:8883', 'mqtt://user:s3cret-pw@127.0.0.1:1883']) {
      const e = refusal(() => checkExternalBroker({ url, pkiDir }));
      expect(`${e.message} ${e.hint}`).not.toContain('s3cret-pw');
      expect(e.message).toContain('127.0.0.1');
    }
  });

  it('refuses a server name that is not a host name', () => {
    const e = refusal(() => checkExternalBroker({ url: 'mqtts://127.0.0.1:1', pkiDir, serverName: 'a b/c' }));
    expect(e.message).toContain('--broker-server-name');
  });

  it('refuses a directory without the files, naming the file', () => {
    for (const missing of Object.keys(FULL)) {
      const files = { ...FULL } as Record<string, string>;
      delete files[missing];
      const dir = copyPki(join(base, `without-${missing}`), files);
      const e = refusal(() => checkExternalBroker({ url: 'mqtts://127.0.0.1:1', pkiDir: dir }));
      expect(e.code).toBe('demo.broker');
      expect(e.message).toContain(join(dir, missing));
    }
  });

  it('refuses a certificate that is not PEM, and a CA that is not a CA', () => {
    const dir = copyPki(join(base, 'garbage'), FULL);
    writeFileSync(join(dir, 'hub.crt'), 'not a certificate\n');
    expect(refusal(() => checkExternalBroker({ url: 'mqtts://h:1', pkiDir: dir })).message).toMatch(
      /hub\.crt is not a PEM certificate/,
    );
    const leafAsCa = copyPki(join(base, 'leaf-ca'), { ...FULL, 'hub.crt': 'ca.crt' });
    copyFileSync(join(pkiDir, 'hub.crt'), join(leafAsCa, 'hub.crt'));
    expect(refusal(() => checkExternalBroker({ url: 'mqtts://h:1', pkiDir: leafAsCa })).message).toMatch(
      /is not a CA certificate/,
    );
  });

  it('refuses a hub certificate from another CA (the broker would refuse it later, with less to say)', () => {
    const dir = copyPki(join(base, 'foreign-hub'), FULL);
    copyFileSync(join(base, 'foreign', 'foreign-client.crt'), join(dir, 'hub.crt'));
    copyFileSync(join(base, 'foreign', 'foreign-client.key'), join(dir, 'hub.key'));
    const e = refusal(() => checkExternalBroker({ url: 'mqtts://h:1', pkiDir: dir }));
    expect(e.message).toContain(`${join(dir, 'hub.crt')} was not issued by the CA`);
  });

  it('refuses a hub certificate for the cloud’s id (it would hold every hub’s topics)', () => {
    const dir = copyPki(join(base, 'hub-is-cloud'), {
      ...FULL,
      'same-as-cloud.crt': 'hub.crt',
      'same-as-cloud.key': 'hub.key',
    });
    const e = refusal(() => checkExternalBroker({ url: 'mqtts://h:1', pkiDir: dir }));
    expect(e.message).toMatch(/both for "demo-cloud"/);
  });

  it('never puts a key into a refusal', () => {
    const dir = copyPki(join(base, 'key-swap'), FULL);
    copyFileSync(join(pkiDir, 'hub.key'), join(dir, 'hub.crt'));
    const e = refusal(() => checkExternalBroker({ url: 'mqtts://h:1', pkiDir: dir }));
    expect(`${e.message} ${e.hint}`).not.toMatch(/PRIVATE KEY|MII/);
  });
});

describe('the broker relay: the line the demo cuts', () => {
  it('relays both ways; cut() drops every connection and the listener; restore() listens on the same port', async () => {
    const upstream = new Set<Socket>();
    const echo = createServer((s) => {
      upstream.add(s);
      s.on('close', () => upstream.delete(s));
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as { port: number }).port;
    const relay = await startBrokerRelay('127.0.0.1', port);
    try {
      expect(relay.url).toBe(`mqtts://127.0.0.1:${relay.port}`);
      const talk = async () => {
        const c = netConnect({ host: '127.0.0.1', port: relay.port });
        const closed = new Promise<void>((r) => c.on('close', () => r()));
        c.on('error', () => undefined);
        const got = await new Promise<string>((resolve, reject) => {
          c.once('data', (d) => resolve(d.toString()));
          c.once('error', reject);
          c.write('ping');
        });
        return { c, got, closed };
      };
      const first = await talk();
      expect(first.got).toBe('ping');
      expect(upstream.size).toBe(1);

      await relay.cut();
      await first.closed; // the hub's side is dropped...
      await expect.poll(() => upstream.size).toBe(0); // ...and so is the broker's: it sees the hub go
      await expect(talk()).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      await relay.restore();
      const again = await talk();
      expect(again.got).toBe('ping');
      again.c.destroy();
    } finally {
      await relay.close();
      await new Promise((r) => echo.close(r));
    }
  });
});

describe('a hub without the package iq-hub-demo', () => {
  const missing = (message: string) => Object.assign(new Error(message), { code: 'ERR_MODULE_NOT_FOUND' });

  it('names the package to install for `iqhub demo` and for simulation.enabled', async () => {
    const demo = missing(
      "Cannot find module '/usr/lib/iq-hub/dist/src/demo/demo.js' imported from /usr/lib/iq-hub/dist/src/cli/main.js",
    );
    const d = await loadDemoPart('demo', () => Promise.reject(demo)).catch((e: unknown) => e as HubError);
    expect(d).toMatchObject({ code: 'demo.not-installed' });
    expect(d.message).toContain('iq-hub-demo');
    expect(d.hint).toContain('iq-hub-demo');
    const s = await loadDemoPart('simulation', () => Promise.reject(demo)).catch((e: unknown) => e as HubError);
    expect(s).toMatchObject({ code: 'config.simulation' });
    expect(s.message).toContain('iq-hub-demo');
    expect(s.hint).toContain('simulation.enabled');
    const aedes = missing(
      "Cannot find package 'aedes' imported from /usr/lib/iq-hub/dist/sim/broker/embedded-broker.js",
    );
    expect(isDemoPartMissing(aedes)).toBe(true);
  });

  it('leaves every other failure as it is (a missing module of iq-hub itself is not the demo’s)', async () => {
    const own = missing(
      "Cannot find module '/usr/lib/iq-hub/dist/src/app/hub.js' imported from /usr/lib/iq-hub/dist/src/demo/demo.js",
    );
    expect(isDemoPartMissing(own)).toBe(false);
    await expect(loadDemoPart('demo', () => Promise.reject(own))).rejects.toBe(own);
    const other = new Error('boom');
    await expect(loadDemoPart('demo', () => Promise.reject(other))).rejects.toBe(other);
    await expect(loadDemoPart('demo', async () => 7)).resolves.toBe(7);
  });
});
