import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closest, loadConfig, parseConfig } from '../../../src/config/load.js';
import { DEFAULT_RUN_DIR } from '../../../src/config/paths.js';
import { configSchema } from '../../../src/config/schema.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

const rejected = (text: string) => refusal(() => parseConfig(text, 'config.yaml'));

describe('config', () => {
  it("the CLI's light default runDir is the one the loader gives a hub without a config file", () => {
    expect(loadConfig(null).config.runDir).toBe(DEFAULT_RUN_DIR);
  });

  it('an empty file gives the documented defaults', () => {
    expect(parseConfig('', 'config.yaml')).toEqual({
      dataDir: '/var/lib/iq-hub',
      runDir: '/run/iq-hub',
      log: { level: 'info', pretty: false },
      secrets: { storageKeyFile: null },
      shutdown: { timeoutMs: 8000 },
      store: { reserveMB: 2 },
      metrics: { listen: null, allowRemote: false },
      uplink: {
        enabled: false,
        url: null,
        caFile: null,
        certFile: null,
        keyFile: null,
        serverName: null,
        mqttVersion: '5',
        keepaliveSec: 30,
        sessionExpirySec: 604800,
        reconnectBaseMs: 1000,
        reconnectMaxMs: 60000,
        healthIntervalSec: 60,
        outboxMaxMB: 50,
        batchSize: 100,
        inflight: 8,
        eventAck: 'required',
        eventAckTimeoutSec: 60,
        eventAckFaultSec: 300,
        maxMessageBytes: 131072,
        syncPartsTimeoutSec: 600,
      },
      radios: {
        ble: { enabled: false, transport: 'hci', hciDevice: 0, uartPath: null, baudRate: 1000000, maxConnections: 4 },
        zigbee: {
          enabled: false,
          port: null,
          channel: 15,
          baudRate: 115200,
          rtscts: false,
          maxLinks: 32,
          backupIntervalMin: 360,
        },
      },
      access: {
        timeZone: 'UTC',
        cloudKeyFile: null,
        wrongPinLimit: 5,
        pinDisableSec: 60,
        offlineHorizonDays: 7,
        offlineCapacity: 500,
      },
      commands: {
        otpKeyFile: null,
        lockoutFailures: 5,
        lockoutWindowSec: 60,
        lockoutSec: 60,
        maxSkewSec: 30,
        counterWindow: 1000,
      },
      provisioning: {
        hubId: null,
        claimCertFile: null,
        claimKeyFile: null,
        claimCaFile: null,
        rotateAtFraction: 0.667,
      },
      simulation: {
        enabled: false,
        locks: 3,
        seed: 'iq-hub-demo',
        lossRate: 0,
        duplicateRate: 0,
        reorderRate: 0,
        latencyMs: 0,
        flashDurable: true,
      },
      backup: { recoveryPublicKey: null },
      firmware: { vendorKeys: [], maxImageBytes: 4194304, perRadio: 1, window: 2, attempts: 5, retryDelayMs: 2000 },
    });
  });

  it("backup.recoveryPublicKey takes the cloud's 32-byte key in base64url, nothing else", () => {
    const key = Buffer.alloc(32, 7).toString('base64url');
    expect(parseConfig(`backup:\n  recoveryPublicKey: ${key}\n`, 'config.yaml').backup.recoveryPublicKey).toBe(key);
    for (const bad of ['abc', `${key}A`, Buffer.alloc(32, 7).toString('base64')]) {
      expect(rejected(`backup:\n  recoveryPublicKey: "${bad}"\n`).code).toBe('config.invalid');
    }
  });

  it('a valid file is accepted with defaults filled in', () => {
    const c = parseConfig('dataDir: /srv/hub\nlog:\n  level: debug\n', 'config.yaml');
    expect(c.dataDir).toBe('/srv/hub');
    expect(c.log).toEqual({ level: 'debug', pretty: false });
  });

  it('a typo in a key is refused, naming the key, its line and the likely intended key', () => {
    const e = rejected('dataDir: /x\nlog:\n  levle: debug\n');
    expect(e.code).toBe('config.invalid');
    expect(e.message).toContain('config.yaml:3');
    expect(e.message).toContain('unknown key `log.levle`');
    expect(e.message).toContain('did you mean `log.level`?');
  });

  it('an unknown top-level key is refused', () => {
    const e = rejected('dataDir: /x\nmqttBroker: foo\n');
    expect(e.message).toContain('unknown key `mqttBroker`');
    expect(e.message).toContain('config.yaml:2');
  });

  it('a wrong type is refused, naming the key, the value and what is expected', () => {
    const e = rejected('log:\n  pretty: "yes"\n');
    expect(e.message).toContain('key `log.pretty` has value "yes", expected boolean');
    expect(e.message).toContain('config.yaml:2');
  });

  it('a value outside an enumeration lists the allowed values', () => {
    const e = rejected('log:\n  level: verbose\n');
    expect(e.message).toContain(
      'key `log.level` has value "verbose", expected one of: trace, debug, info, warn, error, fatal',
    );
  });

  it('a relative path and an out-of-range number are both reported at once', () => {
    const e = rejected('dataDir: relative/dir\nshutdown:\n  timeoutMs: 5\n');
    expect(e.message).toContain('2 problems');
    expect(e.message).toContain('key `dataDir` has value "relative/dir", expected an absolute path');
    expect(e.message).toContain('key `shutdown.timeoutMs` has value 5, expected a number must be >= 1000');
  });

  it('broken YAML is refused with its line', () => {
    const e = rejected('log:\n  level: [info\n');
    expect(e.code).toBe('config.syntax');
    expect(e.message).toMatch(/config\.yaml:\d+:\d+/);
  });

  it('a YAML alias bomb is refused with the file, the line of its first alias and the fix', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [name, prev] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
      ['e', 'd'],
    ]) {
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const e = rejected(`log:\n  level: info\n${levels.join('\n')}\n`);
    expect(e.code).toBe('config.yaml-aliases');
    expect(e.message).toMatch(/^config\.yaml:4: /);
    expect(e.hint).toContain('write the values out');
  });

  it('a few aliases are not a bomb: they reach validation as plain values', () => {
    const e = rejected('x: &v 1\ny: *v\n');
    expect(e.code).toBe('config.invalid');
  });

  it('a duplicated key is refused rather than silently taking the last one', () => {
    const e = rejected('dataDir: /a\ndataDir: /b\n');
    expect(e.code).toBe('config.syntax');
  });

  it('a document that is not a mapping is refused', () => {
    expect(rejected('- a\n- b\n').code).toBe('config.invalid');
  });

  it('an explicitly named file that does not exist is an error; the default path may be absent', () => {
    expect(() => loadConfig('/nonexistent/iq-hub.yaml')).toThrow(
      /cannot read config file \/nonexistent\/iq-hub.yaml: ENOENT/,
    );
  });

  it('an empty --config (`--config "$CONF"` with CONF unset) is refused as such, not read as a path', () => {
    expect(() => loadConfig('')).toThrow(
      expect.objectContaining({ code: 'config.unreadable', message: '--config was given an empty path' }),
    );
  });

  it('a file on disk is read and its path reported', () => {
    const dir = tempDir('iqhub-config-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'dataDir: /srv/x\n');
    const loaded = loadConfig(file);
    expect(loaded.source).toBe(file);
    expect(loaded.config.dataDir).toBe('/srv/x');
  });

  it('the documentation lists every key of the schema with its default', () => {
    const doc = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    const walk = (node: { properties?: Record<string, unknown> }, prefix: string): string[] =>
      Object.entries(node.properties ?? {}).flatMap(([k, v]) => {
        const child = v as { properties?: Record<string, unknown> };
        return child.properties ? walk(child, `${prefix}${k}.`) : [`${prefix}${k}`];
      });
    for (const key of walk(configSchema as never, '')) expect(doc).toContain(`\`${key}\``);
  });

  it('an enabled uplink needs its URL, which must be TLS; the certificate paths may stay null', () => {
    const e = rejected('uplink:\n  enabled: true\n  url: mqtt://broker:1883\n  caFile: /etc/iq-hub/ca.crt\n');
    expect(e.message).toContain(
      'key `uplink.url` has value "mqtt://broker:1883", expected an mqtts://host:port URL (TLS only)',
    );
    expect(e.message).toContain('1 problem');
    expect(rejected('uplink:\n  enabled: true\n').message).toContain(
      'key `uplink.url` is required when uplink.enabled is true',
    );
    expect(rejected('uplink:\n  enabled: true\n  url: null\n').message).toContain(
      'key `uplink.url` is required when uplink.enabled is true',
    );
    // Null certificate files: the identity installed with `iqhub provision` is used.
    const c = parseConfig('uplink:\n  enabled: true\n  url: mqtts://broker:8883\n', 'config.yaml');
    expect(c.uplink).toMatchObject({ enabled: true, caFile: null, certFile: null, keyFile: null });
  });

  it('provisioning: a hub id that cannot be a topic level and a rotation share out of range are refused', () => {
    const c = parseConfig(
      'provisioning:\n  hubId: hub-0001\n  claimCertFile: /etc/iq-hub/claim.crt\n  rotateAtFraction: 0.5\n',
      'config.yaml',
    );
    expect(c.provisioning).toMatchObject({
      hubId: 'hub-0001',
      claimCertFile: '/etc/iq-hub/claim.crt',
      rotateAtFraction: 0.5,
    });
    const e = rejected('provisioning:\n  hubId: a/b\n  claimKeyFile: claim.key\n  rotateAtFraction: 0.99\n');
    expect(e.message).toContain('3 problems');
    expect(e.message).toContain('key `provisioning.hubId` has value "a/b", expected a hub id');
    expect(e.message).toContain(
      'key `provisioning.claimKeyFile` has value "claim.key", expected an absolute path, or null',
    );
    expect(e.message).toContain(
      'key `provisioning.rotateAtFraction` has value 0.99, expected a number must be <= 0.95',
    );
  });

  // Issue 15, "Memory": the daemon reads its config once; yaml (~0.8 MB of heap with its source)
  // is required for the read and dropped from the module cache after it, so V8 can collect it.
  it('keeps no module of yaml loaded once a config is read, accepted or refused', () => {
    const req = createRequire(import.meta.url);
    const yamlDir = join(req.resolve('yaml/package.json'), '..') + sep;
    const yamlModules = () => Object.keys(req.cache).filter((k) => k.startsWith(yamlDir));
    expect(yamlModules(), 'yaml is loaded by the test itself: this proves nothing').toEqual([]);
    expect(parseConfig('log:\n  level: debug\n', 'config.yaml').log.level).toBe('debug');
    expect(yamlModules()).toEqual([]);
    expect(() => parseConfig('log: [\n', 'config.yaml')).toThrow(/not valid YAML/);
    expect(() => parseConfig('log:\n  level: loud\n', 'config.yaml')).toThrow(/config is invalid/);
    expect(yamlModules()).toEqual([]);
    // And it is whole again the next time (the key's line is found in yaml's document).
    expect(() => parseConfig('log:\n  level: info\nlogg: 1\n', 'config.yaml')).toThrow(
      /config\.yaml:3: unknown key `logg`/,
    );
    expect(yamlModules()).toEqual([]);
  });

  it('closest() suggests near keys only', () => {
    expect(closest('datadir', ['dataDir', 'runDir'])).toBe('dataDir');
    expect(closest('zzzzzz', ['dataDir', 'runDir'])).toBeUndefined();
  });
});
