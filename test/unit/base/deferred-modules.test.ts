import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { Duplex, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  DEFERRED,
  deferHerdsmanExtras,
  deferModule,
  deferMqttExtras,
  deferNobleExtras,
  shareModule,
} from '../../../src/base/deferred-modules.js';
import { tempDir } from '../../helpers/tmp.js';

const here = createRequire(import.meta.url);
const cache = here.cache;
const isStandIn = (file: string) => Boolean((cache[file] as { [DEFERRED]?: true } | undefined)?.[DEFERRED]);

/** A package `lib` whose index requires `dep`; `dep` counts its loads in globalThis[counter]. */
function twoPackages(counter: string): { lib: string; dep: string } {
  const root = join(tempDir(), 'node_modules');
  const lib = join(root, 'lib', 'index.js');
  const dep = join(root, 'dep', 'index.js');
  mkdirSync(dirname(lib), { recursive: true });
  mkdirSync(dirname(dep), { recursive: true });
  writeFileSync(lib, "const dep = require('dep');\nmodule.exports = { dep, twice: (n) => dep.double(n) };\n");
  writeFileSync(
    dep,
    `globalThis[${JSON.stringify(counter)}] = (globalThis[${JSON.stringify(counter)}] ?? 0) + 1;\n` +
      'module.exports = { answer: 42, double: (n) => 2 * n, small: "the full module" };\n',
  );
  return { lib, dep };
}
const loads = (counter: string) => (globalThis as Record<string, unknown>)[counter] ?? 0;

describe('a deferred module', () => {
  it('is loaded on the first use of its exports, not when the library requires it, and then is the real module', () => {
    const { lib, dep } = twoPackages('deferLoads1');
    expect(deferModule('dep', lib)).toBe(true);
    const l = here(lib) as { dep: Record<string, unknown>; twice: (n: number) => number };
    expect(loads('deferLoads1')).toBe(0);
    expect(isStandIn(dep)).toBe(true);
    // Every way of looking at the exports loads it, once, and sees the real values.
    expect(l.twice(21)).toBe(42);
    expect(loads('deferLoads1')).toBe(1);
    expect(l.dep.answer).toBe(42);
    expect('double' in l.dep).toBe(true);
    expect(Object.keys(l.dep)).toEqual(['answer', 'double', 'small']);
    expect({ ...l.dep }).toMatchObject({ answer: 42 });
    expect(loads('deferLoads1')).toBe(1);
    // The cache now holds the real module: a later require gets its exports, not the stand-in.
    expect(isStandIn(dep)).toBe(false);
    expect(createRequire(lib)('dep')).toEqual({ answer: 42, double: expect.any(Function), small: 'the full module' });
    expect(loads('deferLoads1')).toBe(1);
  });

  it('a key listing or `in` loads it too (a library that copies the exports at require time gets them all)', () => {
    const { lib } = twoPackages('deferLoads2');
    deferModule('dep', lib);
    const { dep } = here(lib) as { dep: Record<string, unknown> };
    expect(Object.getOwnPropertyNames(dep)).toContain('answer');
    expect(loads('deferLoads2')).toBe(1);
  });

  it('serves the partial exports without loading it, and the real ones once it is loaded', () => {
    const { lib } = twoPackages('deferLoads3');
    deferModule('dep', lib, {
      small: () => 'served',
      double: (load) => (n: number) => (load().double as (n: number) => number)(n),
    });
    const { dep } = here(lib) as { dep: Record<string, unknown> };
    expect(dep.small).toBe('served');
    const double = dep.double as (n: number) => number;
    expect(loads('deferLoads3')).toBe(0);
    // A served wrapper loads the module when called.
    expect(double(4)).toBe(8);
    expect(loads('deferLoads3')).toBe(1);
    expect(dep.small).toBe('the full module');
  });

  it('does nothing for a module already loaded or one that cannot be found (the library requires it as before)', () => {
    const { lib, dep } = twoPackages('deferLoads4');
    here(dep);
    expect(deferModule('dep', lib)).toBe(false);
    expect(isStandIn(dep)).toBe(false);
    expect(deferModule('no-such-package-here', lib)).toBe(false);
    expect(() => createRequire(lib)('no-such-package-here')).toThrow(/Cannot find module/);
  });

  it('a failure of the real module surfaces on first use, as it would have on require', () => {
    const { lib, dep } = twoPackages('deferLoads5');
    writeFileSync(dep, "throw new Error('dep is broken');\n");
    deferModule('dep', lib);
    const { dep: d } = here(lib) as { dep: Record<string, unknown> };
    expect(() => d.answer).toThrow('dep is broken');
    expect(cache[dep]).toBeUndefined();
  });
});

describe('a module installed twice', () => {
  /** Two copies of `dep` under two packages, `one` and `two`, at the versions given. */
  function twoCopies(v1: string, v2: string) {
    const root = join(tempDir(), 'node_modules');
    const files: Record<string, string> = {};
    for (const [pkg, version] of [
      ['one', v1],
      ['two', v2],
    ] as const) {
      const dir = join(root, pkg, 'node_modules', 'dep');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'dep', version }));
      writeFileSync(join(dir, 'index.js'), `module.exports = { copy: ${JSON.stringify(pkg)} };\n`);
      const index = join(root, pkg, 'index.js');
      writeFileSync(index, "module.exports = require('dep');\n");
      files[pkg] = index;
    }
    return files as { one: string; two: string };
  }

  it('is loaded once when both copies are the same version: the second is the first', () => {
    const { one, two } = twoCopies('4.8.0', '4.8.0');
    expect(shareModule('dep', two, one)).toBe(true);
    expect(here(two)).toBe(here(one));
    expect((here(two) as { copy: string }).copy).toBe('one');
  });

  it('is left as it is when the versions differ, or the copy is loaded already', () => {
    const a = twoCopies('4.8.0', '4.7.0');
    expect(shareModule('dep', a.two, a.one)).toBe(false);
    expect((here(a.two) as { copy: string }).copy).toBe('two');
    const b = twoCopies('1.0.0', '1.0.0');
    here(b.two);
    expect(shareModule('dep', b.two, b.one)).toBe(false);
    expect((here(b.two) as { copy: string }).copy).toBe('two');
  });
});

describe('the libraries the daemon loads (issue 15, "Memory")', () => {
  const resolveFrom = (from: string, spec: string) => createRequire(from).resolve(spec);

  it('zigbee-herdsman: mDNS discovery and zigbee-on-host wait for their first use; the controller is whole', () => {
    const index = here.resolve('zigbee-herdsman');
    expect(cache[index], 'herdsman was loaded before this test').toBeUndefined();
    deferHerdsmanExtras();
    const herdsman = here('zigbee-herdsman') as { Controller: unknown };
    expect(typeof herdsman.Controller).toBe('function');
    const discovery = join(dirname(index), 'adapter', 'adapterDiscovery.js');
    const greenPower = join(dirname(index), 'controller', 'greenPower.js');
    const bonjour = resolveFrom(discovery, 'bonjour-service');
    const zoh = resolveFrom(greenPower, 'zigbee-on-host/dist/zigbee/zigbee');
    expect(isStandIn(bonjour)).toBe(true);
    expect(isStandIn(zoh)).toBe(true);
    // Used: the real code (herdsman reads these when it discovers an adapter or decrypts a GP frame).
    expect(typeof (createRequire(discovery)('bonjour-service') as { Bonjour: unknown }).Bonjour).toBe('function');
    expect(typeof (createRequire(greenPower)(zoh) as { aes128CcmStar: unknown }).aes128CcmStar).toBe('function');
    expect(isStandIn(bonjour) || isStandIn(zoh)).toBe(false);
  });

  it("zigbee-herdsman's OTA client waits for its first use, through the index and through a device", () => {
    const index = here.resolve('zigbee-herdsman');
    const ota = join(dirname(index), 'controller', 'helpers', 'ota.js');
    // Loaded by the test above (require, as drivers/zigbee/bearer.ts does): the stand-in is in place.
    const herdsman = here('zigbee-herdsman') as Record<string, unknown>;
    expect(isStandIn(ota)).toBe(true);
    const device = join(dirname(index), 'controller', 'model', 'device.js');
    expect(createRequire(device)('../helpers/ota')).toBe(cache[ota]?.exports);
    // Used: the real functions, and the cache holds the real module from then on.
    expect(typeof herdsman.parseOtaHeader).toBe('function');
    expect(isStandIn(ota)).toBe(false);
    expect(typeof (createRequire(device)('../helpers/ota') as { OtaSession: unknown }).OtaSession).toBe('function');
  });

  it("noble's HCI UART driver gets a working async.queue without the whole async library", async () => {
    const nobleIndex = here.resolve('@stoprocent/noble');
    const uart = join(dirname(resolveFrom(nobleIndex, '@stoprocent/bluetooth-hci-socket')), 'lib', 'uart.js');
    const asyncMain = resolveFrom(uart, 'async');
    expect(cache[asyncMain], 'async was loaded before this test').toBeUndefined();
    deferNobleExtras();
    const async = createRequire(uart)('async') as {
      queue: (w: (t: number, cb: () => void) => void, c: number) => { push(t: number): void; drain(): Promise<void> };
    };
    const seen: number[] = [];
    const q = async.queue((t, cb) => {
      seen.push(t);
      cb();
    }, 1);
    q.push(1);
    q.push(2);
    await q.drain();
    expect(seen).toEqual([1, 2]);
    expect(isStandIn(asyncMain)).toBe(true);
    // serialport: the driver's SerialPort is the package's own, and its parsers are not loaded.
    const serialportMain = resolveFrom(uart, 'serialport');
    const { SerialPort } = createRequire(uart)('serialport') as { SerialPort: unknown };
    expect(SerialPort).toBe(
      (here(join(dirname(serialportMain), 'serialport.js')) as { SerialPort: unknown }).SerialPort,
    );
    expect(typeof SerialPort).toBe('function');
    expect(isStandIn(serialportMain)).toBe(true);
    // (herdsman and @serialport/bindings-cpp have copies of two parsers of their own: not these.)
    const parsers = join(dirname(dirname(dirname(serialportMain))), '@serialport', 'parser-');
    expect(Object.keys(cache).filter((k) => k.startsWith(parsers))).toEqual([]);
  });

  it("mqtt's worker timers wait for a client that asks for them; 'auto' in node is node's own timers", () => {
    const mqttMain = here.resolve('mqtt');
    const getTimerFile = join(dirname(mqttMain), 'lib', 'get-timer.js');
    const workerTimers = resolveFrom(getTimerFile, 'worker-timers');
    expect(cache[workerTimers], 'worker-timers was loaded before this test').toBeUndefined();
    deferMqttExtras();
    here('mqtt');
    const getTimer = (here(getTimerFile) as { default: (v: string) => { set: unknown } }).default;
    expect(getTimer('auto')).toBe(getTimer('native'));
    expect(typeof getTimer('worker').set).toBe('function');
    expect(isStandIn(workerTimers)).toBe(true);
    // lru-cache waits for a client that sends with topic aliases; one that does gets the real cache.
    const aliasSend = join(dirname(mqttMain), 'lib', 'topic-alias-send.js');
    const lru = resolveFrom(aliasSend, 'lru-cache');
    expect(isStandIn(lru)).toBe(true);
    const TopicAliasSend = (
      here(aliasSend) as {
        default: new (
          max: number,
        ) => { put(t: string, a: number): boolean; getAliasByTopic(t: string): number | undefined };
      }
    ).default;
    const aliases = new TopicAliasSend(4);
    expect(aliases.put('a/b', 1)).toBe(true);
    expect(aliases.getAliasByTopic('a/b')).toBe(1);
    expect(isStandIn(lru)).toBe(false);
    // mqtt's readable-stream serves node's own streams (READABLE_STREAM=disable): none of its copy's code.
    expect(process.env.READABLE_STREAM).toBe('disable');
    const streams = createRequire(getTimerFile)('readable-stream') as { Duplex: unknown; Writable: unknown };
    expect(streams.Duplex).toBe(Duplex);
    expect(streams.Writable).toBe(Writable);
    expect(Object.keys(cache).filter((k) => k.includes(`${sep}readable-stream${sep}lib${sep}internal${sep}`))).toEqual(
      [],
    );
    // mqtt-packet's parser streams through bl on mqtt's readable-stream: its own copy is not loaded.
    const bl = join(dirname(resolveFrom(mqttMain, 'mqtt-packet')), 'node_modules', 'bl', 'bl.js');
    here(resolveFrom(mqttMain, 'mqtt-packet'));
    const shared = createRequire(getTimerFile)('readable-stream');
    expect(createRequire(bl)('readable-stream')).toBe(shared);
    // Its copy's entry in the cache is that alias; none of its files is loaded.
    const ownCopy = join(dirname(resolveFrom(mqttMain, 'mqtt-packet')), 'node_modules', 'readable-stream') + sep;
    expect(Object.keys(cache).filter((k) => k.startsWith(ownCopy) && cache[k]?.exports !== shared)).toEqual([]);
  });
});
