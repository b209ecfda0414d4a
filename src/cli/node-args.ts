/**
 * The unit's IQHUB_NODE_ARGS (V8 memory flags NODE_OPTIONS refuses) reach node only through the
 * launcher, packaging/iqhub.sh: a daemon started another way (a hand install's symlink to
 * dist/src/cli/main.cjs) runs without them, with more memory. Say so once, on stderr (the journal), and run.
 */
export function warnUnappliedNodeArgs(): void {
  const missing = (process.env.IQHUB_NODE_ARGS ?? '')
    .split(/[ \t]+/)
    .filter((a) => a !== '' && !process.execArgv.includes(a));
  if (missing.length === 0) return;
  process.stderr.write(
    `iqhub run: IQHUB_NODE_ARGS ${missing.join(' ')} did not reach node's command line; start iqhub through ` +
      'its launcher (/usr/bin/iqhub, packaging/iqhub.sh; docs/installing.md) to run with them\n',
  );
}
