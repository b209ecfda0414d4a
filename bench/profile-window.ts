/**
 * `node dist/bench/profile-window.js PROFILE.cpuprofile WINDOWS.json NAME [TOP]`: the V8 CPU
 * profile of a daemon (`--cpu-prof`) read over one measured stretch of bench/zigbee-open.bench.ts
 * (WINDOWS.json, written with IQHUB_OPEN_BENCH_PROF): per open, the self time of the TOP heaviest
 * functions, then the time grouped by where the code lives (our modules, herdsman, mqtt, node
 * internals, GC, idle), in ms per open.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [profileFile, windowsFile, name, topArg] = process.argv.slice(2);
if (!profileFile || !windowsFile || !name) {
  console.error('usage: profile-window PROFILE.cpuprofile WINDOWS.json NAME [TOP]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
const windows = JSON.parse(readFileSync(windowsFile, 'utf8')) as Record<
  string,
  { fromUs: number; toUs: number; opens: number }
>;
const w = windows[name];
if (!w) throw new Error(`no window ${name} in ${windowsFile}`);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Where a function's code lives, as a group name. */
function group(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)' || fn === '(program)' || fn === '(root)') return fn;
  if (url.includes('zigbee-herdsman')) return 'zigbee-herdsman';
  if (url.includes('@abandonware') || url.includes('noble')) return 'noble';
  if (url.includes('node_modules/mqtt') || url.includes('mqtt-packet')) return 'mqtt.js';
  if (url.includes('node_modules/')) return `npm:${url.split('node_modules/').pop()?.split('/')[0]}`;
  const m = /dist\/((?:src|drivers)\/[^/]+)/.exec(url);
  if (m) return m[1] ?? url;
  if (url.startsWith('node:') || url === '') return fn.startsWith('(') ? fn : 'node internals / native';
  return url;
}

const self = new Map<number, number>();
let t = profile.startTime;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  if (t < w.fromUs || t > w.toUs) continue;
  // The sample's time is the gap to the next sample; the delta before it is a close stand-in.
  const id = profile.samples[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
}
const perOpen = (us: number) => (us / 1000 / w.opens).toFixed(3);
const byFunction = new Map<string, number>();
const byGroup = new Map<string, number>();
/** Inclusive time of our own top-level areas: the first frame of ours up the stack, per sample. */
const inclusive = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const { functionName, url, lineNumber } = n.callFrame;
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const g = group(url, functionName);
  byGroup.set(g, (byGroup.get(g) ?? 0) + us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const c = byId.get(cur);
    if (!c) break;
    const cg = group(c.callFrame.url, c.callFrame.functionName);
    if (!seen.has(cg)) {
      seen.add(cg);
      inclusive.set(cg, (inclusive.get(cg) ?? 0) + us);
    }
  }
}
const top = Number(topArg ?? 40);
console.log(`${name}: ${w.opens} opens, ${perOpen(total)} ms of samples per open (idle included)\n`);
console.log('self time by group, ms per open');
for (const [g, us] of [...byGroup].sort((a, b) => b[1] - a[1])) console.log(`  ${perOpen(us).padStart(7)}  ${g}`);
console.log('\ninclusive time by group (a sample counts once for each group on its stack), ms per open');
for (const [g, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(`  ${perOpen(us).padStart(7)}  ${g}`);
console.log(`\ntop ${top} functions by self time, ms per open`);
for (const [f, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`  ${perOpen(us).padStart(7)}  ${f}`);

/** IQHUB_PROFILE_CALLERS=fn1,fn2: the stacks (6 frames up) under which those functions spent their self time. */
for (const target of (process.env.IQHUB_PROFILE_CALLERS ?? '').split(',').filter(Boolean)) {
  const stacks = new Map<string, number>();
  for (const [id, us] of self) {
    if (byId.get(id)?.callFrame.functionName !== target) continue;
    const frames: string[] = [];
    for (let cur = parent.get(id); cur !== undefined && frames.length < 8; cur = parent.get(cur)) {
      const c = byId.get(cur);
      if (!c) break;
      frames.push(
        `${c.callFrame.functionName || '(anon)'}@${c.callFrame.url.split('/').pop()}:${c.callFrame.lineNumber + 1}`,
      );
    }
    const key = frames.join(' < ');
    stacks.set(key, (stacks.get(key) ?? 0) + us);
  }
  console.log(`\ncallers of ${target}, ms per open`);
  for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 8))
    console.log(`  ${perOpen(us).padStart(7)}  ${k}`);
}

/** IQHUB_PROFILE_INCLUSIVE=fn1,fn2: each function's inclusive time (a sample counts once however deep it recurses). */
const inclusiveOf = (process.env.IQHUB_PROFILE_INCLUSIVE ?? '').split(',').filter(Boolean);
if (inclusiveOf.length > 0) {
  const sums = new Map<string, number>(inclusiveOf.map((f) => [f, 0]));
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const fn = byId.get(cur)?.callFrame.functionName ?? '';
      if (sums.has(fn) && !seen.has(fn)) {
        seen.add(fn);
        sums.set(fn, (sums.get(fn) ?? 0) + us);
      }
    }
  }
  console.log('\ninclusive time of the named functions, ms per open');
  for (const [fn, us] of sums) console.log(`  ${perOpen(us).padStart(7)}  ${fn}`);
}
