import { closeSync, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { herdsmanLogger } from '../../../drivers/zigbee/herdsman-log.js';
import { routeConsole } from '../../../src/log/console.js';
import { Deduper } from '../../../src/log/dedupe.js';
import { prefixLines } from '../../../src/log/journal.js';
import { createLogger, type LogLevel, onJournal } from '../../../src/log/logger.js';
import { tempDir } from '../../helpers/tmp.js';

function capture(o: { journal?: boolean; pretty?: boolean; level?: LogLevel } = {}) {
  let out = '';
  const sink = new Writable({
    write(c, _e, done) {
      out += c.toString();
      done();
    },
  });
  const log = createLogger({
    level: o.level ?? 'trace',
    pretty: o.pretty ?? false,
    destination: sink,
    journal: o.journal ?? false,
  });
  return { log, lines: () => out.split('\n').filter(Boolean) };
}

const KEY_HEX = 'c0ffee00'.repeat(8);
const PIN = '739164';

describe('lines for the journal', () => {
  const fds: number[] = [];
  afterEach(() => {
    for (const fd of fds.splice(0)) closeSync(fd);
  });
  const fileFd = () => {
    const fd = openSync(join(tempDir(), 'out'), 'w');
    fds.push(fd);
    return fd;
  };

  it('stdout is the journal only when JOURNAL_STREAM names its very device and inode', () => {
    const fd = fileFd();
    const st = fstatSync(fd);
    expect(onJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
    // Inherited by a process whose stdout is another file: not the journal.
    expect(onJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fileFd())).toBe(false);
    expect(onJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd)).toBe(false);
    expect(onJournal({}, fd)).toBe(false);
    for (const bad of ['', 'x:y', `${st.dev}`, `${st.dev}:${st.ino}:1`, ` ${st.dev}:${st.ino}`, '-1:-1']) {
      expect(onJournal({ JOURNAL_STREAM: bad }, fd), bad).toBe(false);
    }
    // A closed descriptor is not the journal either (and does not throw).
    expect(onJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, 9999)).toBe(false);
  });

  it('each JSON line starts with its syslog priority: fatal <2>, error <3>, warn <4>, info <6>, debug and trace <7>', () => {
    const { log, lines } = capture({ journal: true });
    log.fatal('f');
    log.error('e');
    log.warn('w');
    log.info('i');
    log.debug('d');
    log.trace('t');
    log.child({ component: 'x' }).error({ lockId: 'L1' }, 'child');
    const got = lines();
    expect(got.map((l) => l.slice(0, 3))).toEqual(['<2>', '<3>', '<4>', '<6>', '<7>', '<7>', '<3>']);
    // What journald keeps as MESSAGE is still one JSON object.
    for (const l of got) expect(JSON.parse(l.slice(3))).toHaveProperty('msg');
  });

  it('no prefix when the output is not the journal', () => {
    const { log, lines } = capture({ journal: false });
    log.error('e');
    log.info('i');
    for (const l of lines()) expect(l.startsWith('{')).toBe(true);
  });

  it('the pretty format gets the prefix too, and a secret is redacted behind it', () => {
    const pretty = capture({ journal: true, pretty: true });
    pretty.log.error({ pin: PIN }, 'wrong');
    pretty.log.info('fine');
    expect(pretty.lines()[0]).toMatch(/^<3>.*ERROR.*wrong/);
    expect(pretty.lines()[1]).toMatch(/^<6>/);
    const json = capture({ journal: true });
    json.log.warn({ key: KEY_HEX, lock: { linkKey: KEY_HEX }, pin: PIN }, 'secrets');
    expect(json.lines()[0]?.startsWith('<4>')).toBe(true);
    expect(json.lines().join('\n')).not.toContain(KEY_HEX);
    expect(json.lines().join('\n')).not.toContain(PIN);
  });

  it('a start-up failure on stderr is an error line by line', () => {
    expect(prefixLines('iq-hub: cannot start: x\n  → do y\n', 3)).toBe('<3>iq-hub: cannot start: x\n<3>  → do y\n');
  });
});

describe('library chatter through the logger, once per change', () => {
  let restore: (() => void) | undefined;
  afterEach(() => {
    restore?.();
    restore = undefined;
  });

  it("noble's console warning printed 16 times is one line; after the quiet time once more with the count", () => {
    let now = 0;
    const { log, lines } = capture({ level: 'info' });
    const original = console.warn;
    restore = routeConsole(log, { now: () => now, quietMs: 60_000 });
    expect(console.warn).not.toBe(original);
    for (let i = 0; i < 16; i++) console.warn('noble warning: unknown peripheral %s', 'aabbccddeeff');
    console.warn('noble: something else');
    now = 61_000;
    console.warn('noble warning: unknown peripheral %s', 'aabbccddeeff');
    const got = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(got.map((r) => [r.level, r.component, r.msg, r.repeated])).toEqual([
      ['warn', 'console', 'noble warning: unknown peripheral aabbccddeeff', undefined],
      ['warn', 'console', 'noble: something else', undefined],
      ['warn', 'console', 'noble warning: unknown peripheral aabbccddeeff', 15],
    ]);
    restore();
    restore = undefined;
    expect(console.warn).toBe(original);
  });

  it('console output keeps its level (log/info → info, error → error, debug off at info) and no key material', () => {
    const { log, lines } = capture({ level: 'info' });
    restore = routeConsole(log);
    console.log('hello %d', 1);
    console.error(new Error(`bad key ${KEY_HEX}`));
    console.info('buffer', Buffer.from(KEY_HEX, 'hex'));
    console.debug('not at info');
    const text = lines().join('\n');
    const got = lines().map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(got.map((r) => r.level)).toEqual(['info', 'error', 'info']);
    expect(got[0]?.msg).toBe('hello 1');
    expect(text).not.toContain(KEY_HEX);
    expect(text).not.toContain('c0 ff ee 00 c0 ff ee 00');
    expect(text).toContain('[redacted]');
  });

  it("herdsman's repeated warning is written once; a different one gets through; keys scrubbed", () => {
    const { log, lines } = capture({ level: 'info' });
    let now = 0;
    const h = herdsmanLogger(log, () => [Buffer.from(KEY_HEX, 'hex')], new Deduper({ now: () => now }));
    for (let i = 0; i < 5; i++) h.warning('Coordinator not responding', 'zh:controller');
    h.warning(`network key ${KEY_HEX} differs`, 'zh:controller');
    h.error('Coordinator not responding', 'zh:controller');
    now = 11 * 60_000;
    h.warning('Coordinator not responding', 'zh:controller');
    const got = lines().map((l) => JSON.parse(l) as { level: string; msg: string; repeated?: number });
    expect(got.map((r) => [r.level, r.msg, r.repeated])).toEqual([
      ['warn', 'Coordinator not responding', undefined],
      ['warn', 'network key [redacted] differs', undefined],
      ['error', 'Coordinator not responding', undefined],
      ['warn', 'Coordinator not responding', 4],
    ]);
  });

  it('the deduper remembers a bounded number of messages', () => {
    const d = new Deduper({ now: () => 0 });
    expect(d.admit('first')).toEqual({ repeated: 0 });
    expect(d.admit('first')).toBeUndefined();
    for (let i = 0; i < 300; i++) d.admit(`m${i}`);
    // Forgotten (the oldest went first): written again.
    expect(d.admit('first')).toEqual({ repeated: 0 });
  });
});
