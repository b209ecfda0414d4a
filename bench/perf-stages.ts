/**
 * `node dist/bench/perf-stages.js PERF-SCRIPT.txt OPENS [MAP]`: the daemon's CPU per open by stage
 * of the open, from Linux perf samples over the measured opens of bench/zigbee-open.bench.ts
 * (docs/operations.md, "Where the CPU of an open goes, by stage"). Record with the unit's flags plus
 * `--perf-basic-prof --interpreted-frames-native-stack` in IQHUB_DAEMON_NODE_ARGS and
 * IQHUB_OPEN_BENCH_DURING='perf record -F 4000 -g -p $PID -o FILE'; then, given MAP (the daemon's
 * /tmp/perf-PID.map), this first rewrites it keeping the last name written for each address (V8
 * reuses the addresses of code it dropped; perf would take the first, a stale name); then run
 * `perf script -i FILE > PERF-SCRIPT.txt` and this. Each sample counts once, in the first stage
 * below found anywhere on its stack (without TurboFan the leaves are mostly the interpreter's
 * builtins, which say nothing of the stage). IQHUB_PERF_PERIOD_MS: the sampling period (0.25 ms
 * at -F 4000).
 */
import { readFileSync, writeFileSync } from 'node:fs';

type Rule = [name: string, test: (frames: string[]) => boolean];
const any = (re: RegExp) => (frames: string[]) => frames.some((f) => re.test(f));
const both = (a: RegExp, b: RegExp) => (frames: string[]) => any(a)(frames) && any(b)(frames);

export const STAGES: Rule[] = [
  [
    'the claim commit (store transaction under inbox/commands)',
    both(/#atomic .*store\.js/, /dist\/src\/(inbox|commands)\//),
  ],
  ['the group commit (answer, event, lock state, outbox rows)', any(/group-commit\.js|flushGroup/)],
  ['other store commits', any(/#atomic .*store\.js/)],
  ['verifying the command (canonical form, OCRA, counter)', any(/commands\/(verifier|otp)|crypto\/ocra|canonicalize/)],
  ['the inbox', any(/dist\/src\/inbox\//)],
  ['routing the command (inbound, remote-commands)', any(/commands\/remote-commands|app\/inbound|app\/remote-wiring/)],
  ['inbound contract checks', any(/contract\/mqtt-validat/)],
  [
    "herdsman's send path",
    any(/sendLinkCommand|leanWriteFrame|zStackAdapter\.js|znp\/znp\.js:2\d\d|waitress|utils\/queue/),
  ],
  [
    "herdsman's and the driver's receive path",
    any(
      /lean-unpi|onUnpiParsed|zpiObject|onZnpRecieved|drivers\/zigbee\/(link|links|bearer|link-cluster|herdsman-controller)\.js/,
    ),
  ],
  ['the link layer', any(/dist\/src\/link\//)],
  ['events (outbox, delivery, lock state)', any(/dist\/src\/events\//)],
  ["the uplink's publisher and service", any(/dist\/src\/uplink\//)],
  ['mqtt.js / mqtt-packet', any(/\/mqtt(-packet)?\//)],
  ['logging', any(/pino|sonic-boom|dist\/src\/log\//)],
  ["the TLS socket's read side", any(/TLSWrap/)],
  ['garbage collection', any(/Heap::|Scavenge|MarkCompact|GCTracer|Sweeper/)],
  ["node's timers, microtasks, streams", any(/node:/)],
  ['the rest', () => true],
];

interface Sample {
  frames: string[];
  leafDso: string;
}

/** Samples of `perf script` text: each a header line, then one frame a line ("addr symbol+off (dso)"). */
export function parsePerfScript(text: string): Sample[] {
  const samples: Sample[] = [];
  let frames: string[] | undefined;
  let leafDso = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (frames) samples.push({ frames, leafDso });
      frames = undefined;
      continue;
    }
    if (!/^\s/.test(line)) {
      frames = [];
      leafDso = '';
      continue;
    }
    const m = /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(line);
    if (!m || !frames) continue;
    if (frames.length === 0) leafDso = m[2] ?? '';
    frames.push((m[1] ?? '').replace(/\+0x[0-9a-f]+$/, ''));
  }
  if (frames) samples.push({ frames, leafDso });
  return samples;
}

/** A perf map with, for each address range, only the entry written last (later entries replace overlapping ones). */
export function latestMapEntries(text: string): string {
  const live = new Map<number, { end: number; line: string }>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (!m) continue;
    const start = Number.parseInt(m[1] ?? '', 16);
    const end = start + Number.parseInt(m[2] ?? '', 16);
    for (const [s, e] of live) if (s < end && e.end > start) live.delete(s);
    live.set(start, { end, line });
  }
  return `${[...live.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, e]) => e.line)
    .join('\n')}\n`;
}

function main(): void {
  const [scriptFile, opensArg, mapFile] = process.argv.slice(2);
  const opens = Number(opensArg);
  if (!scriptFile || !(opens > 0)) {
    console.error('usage: perf-stages PERF-SCRIPT.txt OPENS [PERF-MAP to rewrite first]');
    process.exit(2);
  }
  if (mapFile) {
    writeFileSync(mapFile, latestMapEntries(readFileSync(mapFile, 'utf8')));
    console.log(`${mapFile} rewritten: run perf script again, then this without the map`);
    return;
  }
  const period = Number(process.env.IQHUB_PERF_PERIOD_MS ?? 0.25);
  const samples = parsePerfScript(readFileSync(scriptFile, 'utf8'));
  const per = new Map<string, { n: number; kernel: number; sqlite: number }>();
  for (const s of samples) {
    const stage = STAGES.find(([, test]) => test(s.frames))?.[0] ?? 'the rest';
    const e = per.get(stage) ?? { n: 0, kernel: 0, sqlite: 0 };
    e.n++;
    if (s.leafDso.includes('kallsyms')) e.kernel++;
    if (s.leafDso.includes('sqlite')) e.sqlite++;
    per.set(stage, e);
  }
  const ms = (n: number) => ((n * period) / opens).toFixed(3);
  console.log(`${samples.length} samples, ${ms(samples.length)} ms of CPU per open`);
  for (const [name] of STAGES) {
    const e = per.get(name);
    if (e) console.log(`${ms(e.n).padStart(7)}  ${name.padEnd(58)} kernel ${ms(e.kernel)}, SQLite ${ms(e.sqlite)}`);
  }
}

if (process.argv[1]?.endsWith('perf-stages.js')) main();
