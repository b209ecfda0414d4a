// node packaging/demo-modules.mjs ROOT_DEP... — prints, one per line, the node_modules paths (as in
// package-lock.json: node_modules/x, node_modules/x/node_modules/y) that the package iq-hub-demo
// carries: everything the given dependencies (devDependencies the demo needs at run time, e.g.
// aedes) load that the production install (`npm prune --omit=dev`) does not already have.
// A path inside another listed path is left out (copied with it). Fails if a root is not in the
// lock file or is a production dependency (it would then be in both packages).
import { readFileSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const P = lock.packages;
const roots = process.argv.slice(2);
if (roots.length === 0) throw new Error('demo-modules: name at least one dependency');

/** Where Node finds `name` from the package at `from` (its own node_modules, then its parents'). */
function resolve(from, name) {
  let p = from;
  for (;;) {
    const c = `${p ? `${p}/` : ''}node_modules/${name}`;
    if (P[c]) return c;
    if (!p) return undefined;
    const i = p.lastIndexOf('/node_modules/');
    p = i < 0 ? '' : p.slice(0, i);
  }
}

function closure(start) {
  const seen = new Set();
  const todo = [start];
  while (todo.length) {
    const p = todo.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    const e = P[p];
    for (const d of Object.keys({ ...e.dependencies, ...e.optionalDependencies })) {
      const r = resolve(p, d);
      if (r) todo.push(r);
      else if (!e.optionalDependencies?.[d])
        throw new Error(`demo-modules: ${p} needs ${d}, which the lock file does not have`);
    }
  }
  return seen;
}

const out = new Set();
for (const root of roots) {
  const path = `node_modules/${root}`;
  if (!P[path]) throw new Error(`demo-modules: ${root} is not in package-lock.json`);
  if (!P[path].dev) throw new Error(`demo-modules: ${root} is a production dependency; move it to devDependencies`);
  // In the demo package: what only the dev tree has (`dev: true`), i.e. what --omit=dev prunes.
  for (const p of closure(path)) if (P[p].dev) out.add(p);
}
const sorted = [...out].sort();
for (const p of sorted) {
  if (!sorted.some((q) => q !== p && p.startsWith(`${q}/`))) console.log(p);
}
