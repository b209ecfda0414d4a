import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Libraries the hub uses require, when they are loaded, modules they need only on a path the hub
 * does not take, or takes rarely (issue 15, "Memory"; docs/operations.md, "Memory"): zigbee-herdsman
 * loads mDNS discovery (bonjour-service) and zigbee-on-host's frame code for Green Power frames,
 * mqtt a browser's worker timers, noble's HCI UART driver the whole `async` library for one queue.
 * Each costs V8 heap for as long as the process runs (their source text, their objects).
 *
 * `deferModule` puts a stand-in into CommonJS's module cache under the file the library's
 * `require` resolves to: the library gets the stand-in, and the real module is loaded on the first
 * use of any of its exports (a property read, `in`, a key listing) — the behaviour is unchanged,
 * only the moment of loading moves. `partial` serves some exports, until the module is loaded,
 * without loading it (from a smaller module of the same package, or as a wrapper that calls `load`).
 *
 * A stand-in only for a module whose exports are an object (not a function or class: a stand-in
 * cannot be called), and only while the module is not loaded yet (otherwise there is nothing to
 * gain, and nothing is done). test/unit/base/deferred-modules.test.ts; the production daemon's
 * module graph is checked by test/integration/production-modules.test.ts.
 */

/** Marks a stand-in in the module cache (the module recorder of the tests skips those). */
export const DEFERRED = Symbol.for('iqhub.deferredModule');

type Exports = Record<PropertyKey, unknown>;

/**
 * Stands in for `specifier` as required from the file `from`. Returns whether a stand-in was put
 * in place (false: already loaded, or not found — then the library's own require does as before).
 */
export function deferModule(
  specifier: string,
  from: string,
  partial: Record<string, (load: () => Exports) => unknown> = {},
): boolean {
  const req = createRequire(from);
  let file: string;
  try {
    file = req.resolve(specifier);
  } catch {
    return false;
  }
  const cache = req.cache;
  if (cache[file]) return false;
  let real: Exports | undefined;
  const load = (): Exports => {
    if (real === undefined) {
      if (cache[file] === standIn) delete cache[file];
      real = req(file) as Exports;
    }
    return real;
  };
  const served = (p: PropertyKey): p is string =>
    typeof p === 'string' && Object.hasOwn(partial, p) && real === undefined;
  const exports = new Proxy({} as Exports, {
    get: (_t, p) => (served(p) ? partial[p]?.(load) : Reflect.get(load(), p)),
    has: (_t, p) => Reflect.has(load(), p),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (_t, p) => {
      const d = Reflect.getOwnPropertyDescriptor(load(), p);
      // A proxy may not report a property its (empty) target lacks as non-configurable.
      return d === undefined ? undefined : { ...d, configurable: true };
    },
    set: (_t, p, v) => Reflect.set(load(), p, v),
    defineProperty: (_t, p, d) => Reflect.defineProperty(load(), p, d),
    deleteProperty: (_t, p) => Reflect.deleteProperty(load(), p),
    getPrototypeOf: () => Reflect.getPrototypeOf(load()),
  });
  const standIn = new Module(file) as Module & { [DEFERRED]?: true };
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = exports;
  standIn[DEFERRED] = true;
  cache[file] = standIn;
  return true;
}

/** The name and version in the package.json of the package a module file belongs to. */
function packageOf(file: string): string | undefined {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name && pkg.version) return `${pkg.name}@${pkg.version}`;
    } catch {
      // no package.json here (or one without a name: a folder's `type` marker): look further up.
    }
  }
  return undefined;
}

/**
 * npm installs a package twice when two dependents need a version the top level does not have
 * (mqtt and mqtt-packet each have their own readable-stream 4.8.0): two copies of the same code,
 * both loaded. Makes `specifier` as required from `from` the module it resolves to from `shareFrom`
 * — only when both are the same package at the same version, and the first is not loaded yet.
 * Returns whether it did.
 */
export function shareModule(specifier: string, from: string, shareFrom: string): boolean {
  const req = createRequire(from);
  const shared = createRequire(shareFrom);
  let file: string;
  let target: string;
  try {
    file = req.resolve(specifier);
    target = shared.resolve(specifier);
  } catch {
    return false;
  }
  if (file === target || req.cache[file]) return false;
  const a = packageOf(file);
  if (a === undefined || a !== packageOf(target)) return false;
  const alias = new Module(file);
  alias.filename = file;
  alias.exports = shared(target);
  alias.loaded = true;
  req.cache[file] = alias;
  return true;
}

const here = createRequire(import.meta.url);
const packageFile = (from: string, name: string, path: string): string | undefined => {
  try {
    return join(dirname(createRequire(from).resolve(`${name}/package.json`)), path);
  } catch {
    return undefined;
  }
};

/**
 * Before zigbee-herdsman is loaded: its mDNS adapter discovery (bonjour-service, dns-packet,
 * multicast-dns: for an `mdns://` adapter path, which the hub's configuration does not take) and
 * zigbee-on-host's ZigBee frame code (AES-CCM* for a Green Power frame, which a door lock does not
 * send) and its OTA client are loaded when herdsman first uses them. drivers/zigbee/bearer.ts
 * requires herdsman (an `import()` would read every export of its index, the OTA client's too).
 */
export function deferHerdsmanExtras(): void {
  const discovery = packageFile(import.meta.url, 'zigbee-herdsman', 'dist/adapter/adapterDiscovery.js');
  const greenPower = packageFile(import.meta.url, 'zigbee-herdsman', 'dist/controller/greenPower.js');
  if (discovery) deferModule('bonjour-service', discovery);
  if (greenPower) deferModule('zigbee-on-host/dist/zigbee/zigbee', greenPower);
  // Its OTA client (a device's firmware update through herdsman; locks update through the hub's
  // own relay) and node's perf_hooks with it: the index and each device require it at load.
  const index = packageFile(import.meta.url, 'zigbee-herdsman', 'dist/index.js');
  if (index) deferModule('./controller/helpers/ota', index);
}

/**
 * Before noble is loaded: its HCI UART driver (@stoprocent/bluetooth-hci-socket, lib/uart.js)
 * requires the whole `async` library (220 KB of source) for `async.queue`; the queue comes from
 * `async/queue` (the same code, one module of the same package), the rest only if it is used.
 * Likewise `serialport`'s SerialPort without its parsers.
 */
export function deferNobleExtras(): void {
  const noble = packageFile(import.meta.url, '@stoprocent/noble', 'index.js');
  const uart = noble && packageFile(noble, '@stoprocent/bluetooth-hci-socket', 'lib/uart.js');
  if (!uart) return;
  const fromUart = createRequire(uart);
  deferModule('async', uart, { queue: () => fromUart('async/queue') });
  // `serialport` re-exports its ten stream parsers and a mock port beside the port itself: the
  // driver takes only SerialPort, from the package's own module of it.
  deferModule('serialport', uart, {
    SerialPort: () => (fromUart(join(dirname(fromUart.resolve('serialport')), 'serialport.js')) as Exports).SerialPort,
  });
}

/**
 * Before mqtt is loaded: its timers for a browser's web worker (worker-timers, and its broker,
 * @babel/runtime helpers) are loaded only if the client is told to use them (`timerVariant:
 * 'worker'`, which the hub never does; in node, 'auto' is node's own timers). mqtt reads the two
 * functions when it is loaded: they are served as wrappers that load the module when called.
 * Likewise lru-cache, for topic aliases the hub does not use. And mqtt-packet's copy of readable-stream is mqtt's (`shareModule`), and that copy serves
 * node's own streams (READABLE_STREAM=disable, below).
 */
export function deferMqttExtras(): void {
  // readable-stream 4 is node 18's streams republished for browsers and old nodes; with this
  // documented switch its index exports node's `stream` (loaded by every node process anyway)
  // instead of loading its own copy: 24 modules, ~0.2 MB of source and ~0.9 MB of heap fewer
  // (issue 15; docs/operations.md, "Memory"). A value set by the environment is left as it is.
  process.env.READABLE_STREAM ??= 'disable';
  let mqttMain: string;
  try {
    mqttMain = here.resolve('mqtt');
  } catch {
    return;
  }
  const getTimer = join(dirname(mqttMain), 'lib', 'get-timer.js');
  const call =
    (name: string) =>
    (load: () => Exports) =>
    (...a: unknown[]): unknown =>
      (load()[name] as (...a: unknown[]) => unknown)(...a);
  deferModule('worker-timers', getTimer, { setInterval: call('setInterval'), clearInterval: call('clearInterval') });
  // The LRU cache of outgoing topic aliases (MQTT 5 topicAliasMaximum, which the hub does not set):
  // lru-cache, 55 KB of source, is loaded when a client makes one.
  deferModule('lru-cache', join(dirname(mqttMain), 'lib', 'topic-alias-send.js'));
  // mqtt-packet's parser (through bl) uses the same readable-stream as mqtt: one copy loaded.
  const packetMain = packageFile(mqttMain, 'mqtt-packet', 'mqtt.js');
  const bl = packetMain && packageFile(packetMain, 'bl', 'bl.js');
  if (bl) shareModule('readable-stream', bl, join(dirname(mqttMain), 'lib', 'client.js'));
}
