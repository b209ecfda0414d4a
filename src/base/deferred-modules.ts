import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, isAbsolute, join, relative } from 'node:path';

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
 * without loading it (from a smaller module of the same package, or as a wrapper that calls `load`);
 * if serving one throws (that smaller module is gone in another version), the real export is read.
 *
 * A stand-in only for a module whose exports are an object (not a function or class: a stand-in
 * cannot be called; the first use of one says so), and only while the module is not in the cache
 * yet (otherwise there is nothing to gain, and nothing is done). test/unit/base/deferred-modules.test.ts; the production daemon's
 * module graph is checked by test/integration/production-modules.test.ts.
 */

/** Marks a stand-in in the module cache (the module recorder of the tests skips those). */
export const DEFERRED = Symbol.for('iqhub.deferredModule');

type Exports = Record<PropertyKey, unknown>;
type CachedModule = Module & { [DEFERRED]?: true };

/**
 * The error of a deferred module that fails to load on its first use: where the failure is (the
 * module, its file, that it was loaded late), the real error as `cause` and its `code` kept (so a
 * library that tests for MODULE_NOT_FOUND still sees it).
 */
function loadError(specifier: string, file: string, e: unknown): Error {
  const err = new Error(
    `${specifier} (${file}), whose loading src/base/deferred-modules.ts put off until its first use, failed to load: ${
      e instanceof Error ? e.message : String(e)
    }`,
    { cause: e },
  ) as Error & { code?: unknown };
  if (e instanceof Error && 'code' in e) err.code = e.code;
  return err;
}

/**
 * The modules that required the stand-in list it among their `children`: each gets the real module
 * in its place, once it is loaded (or loses the entry, if the real one is not in the cache).
 */
function replaceInParents(cache: NodeJS.Dict<NodeJS.Module>, standIn: Module, file: string, real: unknown): void {
  const loaded = cache[file]?.exports === real ? cache[file] : undefined;
  for (const m of Object.values(cache)) {
    const children = m?.children;
    if (!children) continue;
    for (let i = children.indexOf(standIn); i !== -1; i = children.indexOf(standIn)) {
      if (loaded && !children.includes(loaded)) children[i] = loaded;
      else children.splice(i, 1);
    }
  }
}

/**
 * Stands in for `specifier` as required from the file `from`. Returns whether a stand-in was put
 * in place (false: already in the module cache — loaded, or being loaded — or not found, or a
 * built-in module — then the library's own require does as before).
 *
 * The stand-in is a Proxy over an empty object (or function) that forwards every operation to the real exports,
 * loaded by the first one: property reads and writes (a getter runs on the real exports), `in`, key
 * listings, descriptors (a non-configurable property of the real exports is mirrored onto the
 * target, as the Proxy invariants require), the prototype, extensibility (`Object.freeze` of the
 * stand-in freezes the real exports, and the target takes their shape). The exports of a module
 * whose exports are a function or class are stood in for by a function (`kind` 'function': a call,
 * `new`, `instanceof` and `extends` reach the real one; `typeof` is right); a mismatch with `kind`,
 * or exports that are a primitive, make its first use throw an error that says so. A promise resolved with the stand-in reads its `then` — that loads
 * the module, and (the real exports having no `then`) resolves to the stand-in itself. An ESM
 * `import` of the module gets the names cjs-module-lexer finds in its source, and the values of
 * the real exports (node's translator reads them through the stand-in, which loads it).
 */
export function deferModule(
  specifier: string,
  from: string,
  partial: Record<string, (load: () => Exports) => unknown> = {},
  kind: 'object' | 'function' = 'object',
): boolean {
  const req = createRequire(from);
  let file: string;
  try {
    file = req.resolve(specifier);
  } catch {
    return false;
  }
  // A built-in resolves to its own name, which require never looks up in the cache.
  if (!isAbsolute(file)) return false;
  const cache = req.cache;
  if (cache[file]) return false;
  let real: Exports | undefined;
  const load = (): Exports => {
    if (real !== undefined) return real;
    if (cache[file] === standIn) delete cache[file];
    let loaded: unknown;
    try {
      loaded = req(file);
    } catch (e) {
      // node took the failed module out of the cache: a later require tries again, as without the
      // stand-in; so does the next use of the stand-in.
      throw loadError(specifier, file, e);
    }
    // The real module is in the cache now: its parents list it, whatever it exports.
    replaceInParents(cache, standIn, file, loaded);
    if (typeof loaded !== kind || loaded === null) {
      const is = loaded === null ? 'null' : typeof loaded;
      throw new TypeError(
        `${specifier} (${file}) exports a ${is}, where its stand-in of src/base/deferred-modules.ts is a${kind === 'object' ? 'n object' : ' function'}: ${
          is === 'object' || is === 'function' ? `pass '${is}' as its deferModule kind` : 'remove its deferModule call'
        }`,
      );
    }
    real = loaded as Exports;
    return real;
  };
  const served = (p: PropertyKey): p is string =>
    typeof p === 'string' && Object.hasOwn(partial, p) && real === undefined;
  /** A non-configurable property of the real exports must be one of the target too. */
  const mirror = (t: Exports, p: PropertyKey): PropertyDescriptor | undefined => {
    const d = Reflect.getOwnPropertyDescriptor(load(), p);
    if (d !== undefined && !d.configurable) Reflect.defineProperty(t, p, d);
    return d;
  };
  /** Non-extensible real exports: the target takes their shape, and is made so too. */
  const settle = (t: Exports): boolean => {
    const r = load();
    if (Reflect.isExtensible(r)) return true;
    if (Reflect.isExtensible(t)) {
      for (const k of Reflect.ownKeys(r)) Reflect.defineProperty(t, k, Reflect.getOwnPropertyDescriptor(r, k) ?? {});
      Reflect.setPrototypeOf(t, Reflect.getPrototypeOf(r));
      Reflect.preventExtensions(t);
    }
    return false;
  };
  // A function's stand-in is a function (typeof, a call, `new`, `instanceof`, `extends`): a bound
  // one — constructible, yet with no own `prototype` (which an ordinary function has, fixed), so that
  // the real one's, a class's read-only one or none at all (an arrow function's), is mirrored onto it.
  // biome-ignore lint/complexity/useArrowFunction: an arrow function cannot be a constructor's stand-in.
  const target = (kind === 'function' ? function () {}.bind(null) : {}) as Exports;
  const exports: Exports = new Proxy(target, {
    get: (_t, p, receiver) => {
      if (served(p)) {
        try {
          return partial[p]?.(load);
        } catch {
          // The smaller module is not there (another version of the package): the real export.
        }
      }
      return Reflect.get(load(), p, receiver === exports ? real : receiver);
    },
    has: (_t, p) => Reflect.has(load(), p),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (t, p) => mirror(t, p),
    set: (_t, p, v, receiver) => Reflect.set(load(), p, v, receiver === exports ? real : receiver),
    defineProperty: (t, p, d) => {
      const ok = Reflect.defineProperty(load(), p, d);
      if (ok) mirror(t, p);
      return ok;
    },
    deleteProperty: (t, p) => {
      const ok = Reflect.deleteProperty(load(), p);
      if (ok) Reflect.deleteProperty(t, p);
      return ok;
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(load()),
    setPrototypeOf: (_t, proto) => Reflect.setPrototypeOf(load(), proto),
    isExtensible: (t) => settle(t),
    preventExtensions: (t) => {
      Reflect.preventExtensions(load());
      return !settle(t);
    },
    apply: (_t, self, args) => Reflect.apply(load() as unknown as (...a: unknown[]) => unknown, self, args),
    construct: (_t, args, newTarget) => {
      const r = load() as unknown as new (...a: unknown[]) => object;
      return Reflect.construct(r, args, newTarget === (exports as unknown) ? r : newTarget);
    },
  });
  const standIn = new Module(file) as CachedModule;
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = exports;
  standIn[DEFERRED] = true;
  cache[file] = standIn;
  return true;
}

/** The name and version in the package.json of the package a module file belongs to, and its folder. */
function packageRoot(file: string): { id: string; dir: string } | undefined {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (typeof pkg.name === 'string' && typeof pkg.version === 'string' && pkg.name && pkg.version) {
        return { id: `${pkg.name}@${pkg.version}`, dir };
      }
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
  if (file === target || !isAbsolute(file) || req.cache[file]) return false;
  const a = packageRoot(file);
  const b = packageRoot(target);
  // The same package, the same version, and the same file of it.
  if (a === undefined || b === undefined || a.id !== b.id) return false;
  if (relative(a.dir, file) !== relative(b.dir, target)) return false;
  let exports: unknown;
  try {
    exports = shared(target);
  } catch {
    // Left as it is: the library's own require meets the failure, as it would have.
    return false;
  }
  const alias = new Module(file);
  alias.filename = file;
  alias.exports = exports;
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
  // bonjour-service's exports are its Bonjour class (with Bonjour, Service, Browser as statics).
  if (discovery) deferModule('bonjour-service', discovery, {}, 'function');
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
