#!/bin/sh
# /usr/bin/iqhub: iq-hub's CLI and daemon (`iqhub run`). The .deb installs it (packaging/build-deb.sh),
# a hand install copies it (docs/installing.md).
#
# Node.js: the one the package carries (Debian's is too old), else the system's (a hand install).
# IQHUB_NODE_ARGS: node flags for node's command line, where NODE_OPTIONS refuses them (V8's
# --optimize-for-size, ...). The unit sets it for `iqhub run` (systemd/iq-hub.service, the one
# place the daemon's node flags live; docs/operations.md, "Memory"); a shell does not, so the
# CLI's calls run without them. Split on blanks and never globbed; anything but --flags is refused
# (exit 78, EX_CONFIG: the unit does not restart on it).
set -f
for arg in ${IQHUB_NODE_ARGS-}; do
  case $arg in
    --[a-z]*) ;;
    *)
      echo "iqhub: IQHUB_NODE_ARGS: '$arg' is not a node --flag; set only --flags there (systemd/iq-hub.service)" >&2
      exit 78
      ;;
  esac
done
NODE=/usr/lib/iq-hub/node/bin/node
[ -x "$NODE" ] || NODE=node
# shellcheck disable=SC2086 # word splitting of IQHUB_NODE_ARGS is wanted (set -f: no globbing)
exec "$NODE" ${IQHUB_NODE_ARGS-} /usr/lib/iq-hub/dist/src/cli/main.cjs "$@"
