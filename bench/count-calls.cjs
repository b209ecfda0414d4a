// Counts what the daemon does per remote open: SQLite statements (by SQL text), exec/prepare/pragma
// calls, timers, JSON.parse/stringify, socket writes (by peer port) and flushes. Preloaded into the
// daemon with `--require`; the first SIGUSR2 starts counting, the second writes the counts since
// to $IQHUB_COUNT_DIR/count-PID.json (default /tmp). IQHUB_COUNT_STACK=1 adds a key per caller
// (three frames) for JSON and timer calls. With the zigbee bench (docs/operations.md, "Work per
// open, counted"):
//   IQHUB_DAEMON_NODE_ARGS="<the unit's flags> --require $PWD/bench/count-calls.cjs" \
//   IQHUB_OPEN_BENCH_DURING='sh -c "kill -USR2 $PID; trap \"kill -USR2 $PID; exit 0\" INT; while sleep 0.05; do :; done"' \
//   IQHUB_OPEN_BENCH_RADIOS=zigbee node dist/bench/run.js zigbee
// then divide by the measured opens (400). A measuring tool only: never in a production process.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const counts = new Map();
const inc = (k) => counts.set(k, (counts.get(k) ?? 0) + 1);
const stacks = process.env.IQHUB_COUNT_STACK === '1';
const where = (k) => {
  if (!stacks) return;
  const frames = (new Error().stack ?? '').split('\n').slice(3, 6);
  inc(`${k} @ ${frames.map((l) => l.trim().replace(/^at /, '')).join(' < ')}`);
};

let Database;
try {
  Database = require(require.resolve('better-sqlite3', { paths: [process.cwd(), path.join(__dirname, '..')] }));
} catch {
  Database = undefined;
}
if (Database) {
  const probe = new Database(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
  probe.close();
  for (const m of ['run', 'get', 'all', 'iterate']) {
    const original = statement[m];
    statement[m] = function (...a) {
      inc(`sql.${m}: ${this.source.replace(/\s+/g, ' ').slice(0, 100)}`);
      return original.apply(this, a);
    };
  }
  for (const m of ['exec', 'prepare', 'pragma']) {
    const original = Database.prototype[m];
    Database.prototype[m] = function (...a) {
      inc(`db.${m}: ${String(a[0]).replace(/\s+/g, ' ').slice(0, 60)}`);
      return original.apply(this, a);
    };
  }
}
for (const m of ['setTimeout', 'clearTimeout', 'setImmediate', 'setInterval', 'clearInterval', 'queueMicrotask']) {
  const original = globalThis[m];
  globalThis[m] = function (...a) {
    inc(`timer.${m}`);
    if (m !== 'queueMicrotask') where(`timer.${m}`);
    return original.apply(this, a);
  };
}
const { parse, stringify } = JSON;
JSON.parse = function (...a) {
  inc('json.parse');
  where('json.parse');
  return parse.apply(this, a);
};
JSON.stringify = function (...a) {
  inc('json.stringify');
  where('json.stringify');
  return stringify.apply(this, a);
};
const write = net.Socket.prototype.write;
net.Socket.prototype.write = function (...a) {
  inc(`socket.write ${this.constructor.name}:${this.remotePort ?? '?'}`);
  return write.apply(this, a);
};
const writeGeneric = net.Socket.prototype._writeGeneric;
net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
  inc(`socket.flush${writev ? 'v' : ''} ${this.constructor.name}:${this.remotePort ?? '?'}`);
  return writeGeneric.call(this, writev, data, encoding, cb);
};

let since;
process.on('SIGUSR2', () => {
  if (!since) {
    since = new Map(counts);
    return;
  }
  const out = {};
  for (const [k, v] of counts) {
    const d = v - (since.get(k) ?? 0);
    if (d) out[k] = d;
  }
  since = undefined;
  const dir = process.env.IQHUB_COUNT_DIR ?? '/tmp';
  fs.writeFileSync(path.join(dir, `count-${process.pid}.json`), stringify(out, null, 1));
});
