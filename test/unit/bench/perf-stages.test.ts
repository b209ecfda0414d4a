import { describe, expect, it } from 'vitest';
import { latestMapEntries, parsePerfScript, STAGES } from '../../../bench/perf-stages.js';

const stageOf = (frames: string[]) => STAGES.find(([, test]) => test(frames))?.[0];

describe('bench/perf-stages', () => {
  it('reads perf script samples: frames leaf first, offsets dropped, the leaf DSO kept', () => {
    const text = [
      'node 22070 66718.850531:     250000 cpu-clock:ppp: ',
      '\t         14d084d Builtins_LoadIC+0xd (/usr/bin/node)',
      '\t    7f57c44dc509 JS:^#atomic file:///x/dist/src/store/store.js:318:12+0x209 (/tmp/perf-1.map)',
      '\t    7f57c44dc509 JS:^claim file:///x/dist/src/inbox/inbox.js:10:1+0x20 (/tmp/perf-1.map)',
      '',
      'node 22070 66718.850878:     250000 cpu-clock:ppp: ',
      '\t           f838f fsync+0x4f (/usr/lib/x86_64-linux-gnu/libc.so.6)',
      '\t    7f57c434c119 JS:^flushGroup file:///x/dist/src/store/store.js:225:15+0x4d9 (/tmp/perf-1.map)',
      '',
    ].join('\n');
    const samples = parsePerfScript(text);
    expect(samples).toHaveLength(2);
    expect(samples[0]?.frames[0]).toBe('Builtins_LoadIC');
    expect(samples[0]?.leafDso).toBe('/usr/bin/node');
    expect(stageOf(samples[0]?.frames ?? [])).toMatch(/claim commit/);
    expect(stageOf(samples[1]?.frames ?? [])).toMatch(/group commit/);
    expect(stageOf(['uv__io_poll'])).toBe('the rest');
  });

  it('keeps, for each address range, the name written last (V8 reuses code addresses)', () => {
    const map = [
      '1000 100 JS:~old a.js:1',
      '2000 10 JS:^keep b.js:1',
      '1080 100 JS:^new c.js:2',
      '1000 10 JS:^newer d.js:3',
    ];
    expect(latestMapEntries(map.join('\n'))).toBe(
      '1000 10 JS:^newer d.js:3\n1080 100 JS:^new c.js:2\n2000 10 JS:^keep b.js:1\n',
    );
  });
});
